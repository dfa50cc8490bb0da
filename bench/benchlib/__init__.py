"""The benchmarks' own library (``bench/`` is on ``sys.path`` when a script runs).

- :mod:`benchlib.procs`: processes seen through ``/proc`` (memory, CPU, descendants) and
  polling;
- :mod:`benchlib.servers`: launching ``twistd -n ipytwist`` and jupyter_server;
- :mod:`benchlib.messages`, :mod:`benchlib.frames`: kernel messages and their WebSocket
  frames;
- :mod:`benchlib.wsclient`, :mod:`benchlib.aclient`: kernel WebSocket clients
  (blocking, and on asyncio);
- :mod:`benchlib.widgetcount`: what a client saw of a widget's updates (the widget
  benchmark's tally);
- :mod:`benchlib.results`: where and how results are saved;
- :mod:`benchlib.chromium`: how Chromium is launched;
- :mod:`benchlib.nbrun`, :mod:`benchlib.nbcompare`: a notebook executed with nbclient on
  a kernelspec, and two executed notebooks compared (outputs masked, widget state);
- :mod:`benchlib.scenarios`: the reliability scenarios, run long by
  ``bench/reliability.py`` and short by ``tests/reliability``.

The tests import this library where they need the same thing; it imports nothing from
``tests/``.
"""
