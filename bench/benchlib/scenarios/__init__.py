"""The reliability scenarios, one copy of each: ``bench/reliability.py`` runs them long and
prints the figures, ``tests/reliability`` runs them with CI durations and asserts on them.

Each scenario is a plain function that drives a running
:class:`~benchlib.servers.Service` and returns what it measured: :mod:`.crashes`,
:mod:`.vanish` (clients that vanish), :mod:`.sigterm` (SIGTERM under output) and
:mod:`.soak`.  Process figures come from ``/proc`` (:mod:`benchlib.procs`).
"""
