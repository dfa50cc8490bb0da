"""Kept only for tests/test_browser.py, which still imports these names from here: how
Chromium is launched lives in bench/benchlib/chromium.py.  Remove this module once that
file imports them from there; add nothing to it."""

from benchlib.chromium import CHROMIUM, CHROMIUM_ARGS

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]
