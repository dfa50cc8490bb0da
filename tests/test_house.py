"""The house rules of the code base, checked: rooms layered, no import cycle, small
modules and functions (tests/ and bench/ too), docstrings, a reason for every
``type: ignore``, bench/ apart from tests/, and what CI checks besides the tests.
(How the code is read: tests/support/house.py.)"""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
from support.house import (
    commands,
    import_cycles,
    importable_names,
    imported_rooms,
    long_functions,
    public_without_docstring,
    room_of,
    script_modules,
    taken_from_tests,
    unexplained_ignores,
)

PACKAGE = Path(__file__).resolve().parent.parent / "ipytwist"

#: Each room and its layer: a module may import from its own room and from lower layers.
LAYERS: dict[str, int] = {
    # pure building blocks
    "wire": 0,
    "framing": 0,
    "pipesync": 0,  # output pipes and events in order (the kernel's, later the keeper's)
    "link": 0,  # the worker link's frames, handshake and ends (docs/durable-kernels.md)
    "dap": 0,  # the Debug Adapter Protocol's framing, and the cell files' names
    "errors": 0,
    "loglimit": 0,
    "pacing": 0,
    "paths": 0,
    "private": 0,
    "statedir": 0,  # the state directory: its lock, and the service tree that holds it
    "tokenfile": 0,  # the token kept in the state directory
    "announce": 0,  # what the service says when it listens (the token masked)
    "kernelspec": 0,
    "transport": 3,  # the seam between the host and its transports (knows the kernel)
    "worker": 1,  # the child process: IPython, no Jupyter messages
    "kernel": 2,  # one kernel: scheduler, supervisor, output log, transcript
    "config": 3,
    "zmq": 4,  # transports
    "host": 4,
    "web": 5,  # the site needs the host
    "hub": 5,  # JupyterHub's auth (a web authenticator) and activity reports (the host's)
    # composition roots and clients
    "tap": 6,
    "standalone": 6,
    "singleuser": 6,  # `ipytwist singleuser`: twistd ipytwist with the hub's environment
    "console": 6,
    "__main__": 6,
    "__init__": 0,  # the package: __version__, and lazy exports that import nothing
}
#: Entry points outside the layering: ``python -m ipytwist.kernel`` runs the standalone.
ENTRY_SHIMS = {"kernel/__main__.py"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "static" not in p.parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_room_imports_one_above_it(path: Path) -> None:
    relative = str(path.relative_to(PACKAGE))
    if relative in ENTRY_SHIMS:
        return
    room = room_of(relative)
    assert room in LAYERS, f"{relative}: add its room to LAYERS"
    imported = imported_rooms(path, PACKAGE, set(LAYERS))
    above = sorted(r for r in imported if r != room and LAYERS[r] > LAYERS[room])
    assert not above, f"{relative} ({room}, layer {LAYERS[room]}) imports {above} above it"


def test_the_layering_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check above can fail: a kernel module importing the host is caught."""
    bad = PACKAGE / "kernel" / "core.py"
    source = bad.read_text() + "\nfrom ..host import KernelHost\n"
    fake = tmp_path / "ipytwist" / "kernel" / "core.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(source)
    rooms = imported_rooms(fake, tmp_path / "ipytwist", set(LAYERS))
    assert "host" in rooms and LAYERS["host"] > LAYERS["kernel"]


def test_no_module_imports_one_that_imports_it_back() -> None:
    """No import cycle, not even one hidden under ``if TYPE_CHECKING:``."""
    assert import_cycles(PACKAGE) == []


def test_the_cycle_check_sees_a_cycle_under_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "ipytwist"
    (package / "kernel").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "kernel" / "__init__.py").write_text("from .core import Kernel\n")
    (package / "kernel" / "core.py").write_text("from .stdin import InputRouter\n")
    (package / "kernel" / "stdin.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .core import Kernel\n"
    )
    assert import_cycles(package) == [["ipytwist.kernel.core", "ipytwist.kernel.stdin"]]


#: The request scheduler stays small: comms, the debugger and durable workers each
#: get a room of their own beside it, not a share of it.
SCHEDULER_MAX_LINES = 300


def test_the_scheduler_leaves_room_to_grow() -> None:
    lines = (PACKAGE / "kernel" / "core.py").read_text().count("\n")
    assert lines <= SCHEDULER_MAX_LINES, f"kernel/core.py: {lines} lines"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_are_small(path: Path) -> None:
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name}: over {MAX_MODULE_LINES} lines"
    long = long_functions(source, MAX_FUNCTION_LINES)
    assert not long, f"{path.name}: {long}"


DOCUMENTED_ROOMS = {"kernel", "web", "zmq", "host"}


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if room_of(str(p.relative_to(PACKAGE))) in DOCUMENTED_ROOMS],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_public_names_of_the_rooms_say_what_they_are_for(path: Path) -> None:
    assert not public_without_docstring(path)


def test_every_type_ignore_names_its_code_and_its_reason() -> None:
    bad = [
        f"{p.relative_to(PACKAGE)} {b}"
        for p in modules()
        for b in unexplained_ignores(p.read_text())
    ]
    assert not bad, "\n".join(bad)


def test_the_type_ignore_check_sees_an_ignore_without_code_or_reason() -> None:
    """The check above can fail: a bare ignore, one without a code and one without a
    reason are caught; an explained one, and the words in a string, are not."""
    assert unexplained_ignores("x = f()  # type: ignore\n")
    assert unexplained_ignores("x = f()  # type: ignore  # f takes bytes here\n")
    assert unexplained_ignores("x = f()  # type: ignore[arg-type]\n")
    assert unexplained_ignores("x = f()  # type: ignore[]  # f takes bytes here\n")
    assert unexplained_ignores("x = f()  # type: ignore[arg-type]  # why\n")
    assert not unexplained_ignores("x = f()  # type: ignore[arg-type]  # f takes bytes here\n")
    assert not unexplained_ignores('x = "# type: ignore"\n')


# -- tests/ and bench/ --------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
BENCH = ROOT / "bench"


def over_the_cap(path: Path) -> bool:
    return path.read_text().count("\n") > MAX_MODULE_LINES


@pytest.mark.parametrize(
    "path", script_modules(TESTS, BENCH), ids=lambda p: str(p.relative_to(ROOT))
)
def test_test_and_bench_modules_are_small(path: Path) -> None:
    assert not over_the_cap(path), f"{path.relative_to(ROOT)}: over {MAX_MODULE_LINES} lines"


def test_the_size_check_sees_a_long_test_module(tmp_path: Path) -> None:
    """The check above can fail: one line over the cap is caught, the cap itself is not."""
    (tmp_path / "test_long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (tmp_path / "test_full.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    assert over_the_cap(tmp_path / "test_long.py")
    assert not over_the_cap(tmp_path / "test_full.py")


@pytest.mark.parametrize("path", script_modules(BENCH), ids=lambda p: str(p.relative_to(ROOT)))
def test_bench_imports_nothing_from_tests(path: Path) -> None:
    """bench/ has a library of its own (bench/benchlib); tests/ may import it, never the
    other way.  A name that is also a module of bench/ is bench's own."""
    tests_names = importable_names(TESTS) - importable_names(BENCH)
    assert not taken_from_tests(path.read_text(), tests_names)


def test_the_bench_check_sees_an_import_from_tests() -> None:
    """The check above can fail: a tests/ folder on sys.path, imports of tests' modules
    and packages are caught; bench's library, and tests/ named in a docstring, are not."""
    names = importable_names(TESTS) - importable_names(BENCH)
    assert {"support", "conftest", "glue_fakes", "test_flood"} <= names
    bad = (
        "import os, sys\n"
        'sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))\n'
        "import glue_fakes\n"
        "from support.service import service_fixture\n"
    )
    assert len(taken_from_tests(bad, names)) == 3
    assert taken_from_tests('import os\nos.environ["PYTHONPATH"] = "/repo/tests"\n', names)
    good = '"""Run shorter by ``tests/reliability``."""\nfrom benchlib.servers import Service\n'
    assert taken_from_tests(good, names) == []


# -- what CI checks besides the tests ------------------------------------------------------


def test_ci_checks_the_types_and_the_frontend_before_the_tests() -> None:
    """.ci/run type-checks ipytwist/ (mypy, strict) and runs the frontend's check (tsc,
    its unit tests, a rebuild the committed bundle must equal) before pytest."""
    ci = commands(ROOT / ".ci" / "run")
    order = ["python -m mypy", "frontend/check.sh", "python -m pytest"]
    assert all(step in ci for step in order), ci
    assert [ci.index(step) for step in order] == sorted(ci.index(step) for step in order)
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["strict"] is True and mypy["files"] == ["ipytwist"]
    check, build = (
        commands(ROOT / "frontend" / "check.sh"),
        commands(ROOT / "frontend" / "build.sh"),
    )
    assert "./build.sh" in check
    assert any(c.startswith("changed=$(git status --porcelain") for c in check)
    npm = [c for c in build if c.startswith("npm ") and c != "npm ci --no-audit --no-fund"]
    assert npm == ["npm run check", "npm test", "npm run build"]
    scripts = json.loads((ROOT / "frontend" / "package.json").read_text())["scripts"]
    assert scripts["check"].startswith("tsc --noEmit") and scripts["test"] == "node test.mjs"
    assert '"--test"' in (ROOT / "frontend" / "test.mjs").read_text()  # Node's test runner


def test_a_service_run_from_the_checkout_leaves_git_status_clean() -> None:
    """twistd writes its pid file (and, as a daemon, its log) where it is started."""
    names = ["twistd.pid", "twistd.log", "twistd.log.1"]
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", *names], capture_output=True, text=True
    )
    assert ignored.stdout.split() == names, ignored.stderr
