"""Hostile input for the reliability tests (test_fuzz.py, test_attacks.py).

Hostile input is drawn from a :class:`~support.fuzz.hostile.Pool` (JSON values, byte
strings and texts drawn by hypothesis) and a ``random.Random`` seeded by hypothesis, so
a batch of a few hundred messages costs hypothesis one small example.  Every payload
carries :data:`~support.fuzz.hostile.MARKER`, which must never reach the service's log.
Requests that reach the worker run nothing but ``1`` or a string literal: code of any
other type, and ``user_expressions`` that are not a dict, are refused before anything
runs.

- :mod:`.hostile`: what hypothesis draws, and hostile message content from it;
- :mod:`.zmq_fuzzer`, :mod:`.ws_fuzzer`: hostile messages and frames per transport;
- :mod:`.watch`: the service's log and a round trip after the fuzz.
"""
