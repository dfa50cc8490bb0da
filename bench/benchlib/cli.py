"""What the benchmark scripts' command lines share: the servers to run, whether to save
the results, and a scratch directory for the servers' state and logs."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager


def comma_list(choices: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated selection of ``choices``."""

    def parse(text: str) -> list[str]:
        items = text.split(",")
        for item in items:
            if item not in choices:
                raise argparse.ArgumentTypeError(f"unknown {what} {item!r}")
        return items

    return parse


def add_common_options(p: argparse.ArgumentParser, servers: Sequence[str]) -> None:
    """``--servers`` (some of ``servers``, all by default), ``--no-save`` and
    ``--keep-logs``."""
    p.add_argument(
        "--servers",
        type=comma_list(servers, "server"),
        default=list(servers),
        help="comma-separated: " + ",".join(servers),
    )
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    p.add_argument("--keep-logs", action="store_true", help="keep server logs (temp dir)")


@contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[str]:
    """A temporary directory, removed afterwards unless ``keep`` (then it says where)."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield tmp
    finally:
        if keep:
            print("logs kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
