"""The house rules of the code base, checked: rooms layered, small modules and functions."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ipytwist"

#: Each room and its layer: a module may import from its own room and from lower layers.
LAYERS: dict[str, int] = {
    # pure building blocks
    "wire": 0,
    "framing": 0,
    "errors": 0,
    "loglimit": 0,
    "paths": 0,
    "private": 0,
    "kernelspec": 0,
    "transport": 3,  # the seam between the host and its transports (knows the kernel)
    "worker": 1,  # the child process: IPython, no Jupyter messages
    "kernel": 2,  # one kernel: scheduler, supervisor, output log, transcript
    "config": 3,
    "zmq": 4,  # transports
    "host": 4,
    "web": 5,  # the site needs the host
    # composition roots and clients
    "tap": 6,
    "standalone": 6,
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


def room_of(relative: str) -> str:
    """``kernel/core.py`` -> ``kernel``; ``wire.py`` -> ``wire``."""
    first = relative.split("/")[0]
    return first[:-3] if first.endswith(".py") else first


def imported_rooms(path: Path) -> set[str]:
    """The rooms of ipytwist that ``path`` imports."""
    relative = path.relative_to(PACKAGE)
    package = list(relative.parent.parts)
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # "from .. import x" at the top: a room, or a package name
                    rooms.update(a.name if a.name in LAYERS else "__init__" for a in node.names)
                    continue
                rooms.add(parts[0])
            elif node.module and node.module.startswith("ipytwist."):
                rooms.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ipytwist."):
                    rooms.add(alias.name.split(".")[1])
    return {r[:-3] if r.endswith(".py") else r for r in rooms}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_room_imports_one_above_it(path: Path) -> None:
    relative = str(path.relative_to(PACKAGE))
    if relative in ENTRY_SHIMS:
        return
    room = room_of(relative)
    assert room in LAYERS, f"{relative}: add its room to LAYERS"
    above = sorted(r for r in imported_rooms(path) if r != room and LAYERS[r] > LAYERS[room])
    assert not above, f"{relative} ({room}, layer {LAYERS[room]}) imports {above} above it"


def test_the_layering_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check above can fail: a kernel module importing the host is caught."""
    bad = PACKAGE / "kernel" / "core.py"
    source = bad.read_text() + "\nfrom ..host import KernelHost\n"
    fake = tmp_path / "ipytwist" / "kernel" / "core.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(source)
    rooms = imported_rooms_at(fake, tmp_path / "ipytwist")
    assert "host" in rooms and LAYERS["host"] > LAYERS["kernel"]


def imported_rooms_at(path: Path, package: Path) -> set[str]:
    global PACKAGE
    saved, PACKAGE = PACKAGE, package
    try:
        return imported_rooms(path)
    finally:
        PACKAGE = saved


def module_name(path: Path, package: Path) -> str:
    """``.../ipytwist/kernel/core.py`` -> ``ipytwist.kernel.core`` (a package: its name)."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: Path, known: set[str]) -> set[str]:
    """The modules of the package that ``path`` imports, wherever the import stands
    (``if TYPE_CHECKING:`` and function bodies included): a name imported from a
    package counts as that package, unless it is one of its modules."""
    name = module_name(path, package)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for candidate in candidates:
            parts = candidate.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != name:
                found.add(".".join(parts))
    return found


def import_cycles(package: Path) -> list[list[str]]:
    """Groups of modules that import each other, directly or round about (Tarjan)."""
    paths = {module_name(p, package): p for p in package.rglob("*.py") if "static" not in p.parts}
    graph = {m: imported_modules(p, package, set(paths)) for m, p in paths.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        for n in graph[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            group = stack[stack.index(m) :]
            del stack[stack.index(m) :]
            if len(group) > 1:
                cycles.append(sorted(group))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return cycles


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
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: {long}"


DOCUMENTED_ROOMS = {"kernel", "web", "zmq", "host"}


def public_without_docstring(path: Path) -> list[str]:
    """Public classes, functions and methods of ``path`` that say nothing of their job."""
    missing = []
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if node.name.startswith("_"):
            continue
        if not ast.get_docstring(node):
            missing.append(node.name)
        if isinstance(node, ast.ClassDef):
            missing += [
                f"{node.name}.{m.name}"
                for m in node.body
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                and not m.name.startswith("_")
                and not ast.get_docstring(m)
            ]
    return missing


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if room_of(str(p.relative_to(PACKAGE))) in DOCUMENTED_ROOMS],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_public_names_of_the_rooms_say_what_they_are_for(path: Path) -> None:
    assert not public_without_docstring(path)


#: ``# type: ignore[code, ...]  # why``: the codes silenced, then the reason in a comment.
_TYPE_IGNORE = re.compile(r"type:\s*ignore\b(?:\[(?P<codes>[^\]]*)\])?(?:\s*#(?P<reason>.*))?")


def unexplained_ignores(source: str) -> list[str]:
    """The ``type: ignore`` comments of ``source`` that name no error code, or give no
    reason of three words or more in a comment after them on the same line."""
    bad = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        match = _TYPE_IGNORE.search(token.string) if token.type == tokenize.COMMENT else None
        if match is None:
            continue
        codes = (match["codes"] or "").strip()
        if not codes or len((match["reason"] or "").split()) < 3:
            bad.append(f"line {token.start[0]}: {token.string}")
    return bad


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
