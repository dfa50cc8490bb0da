"""How the house rules read the code (tests/test_house.py holds the rules): imports and
rooms, import cycles, docstrings, type: ignores, what bench/ takes from tests/, and the
commands of CI's scripts."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path


def room_of(relative: str) -> str:
    """``kernel/core.py`` -> ``kernel``; ``wire.py`` -> ``wire``."""
    first = relative.split("/")[0]
    return first[:-3] if first.endswith(".py") else first


def imported_rooms(path: Path, package_dir: Path, rooms_known: set[str]) -> set[str]:
    """The rooms of ipytwist that ``path`` (a module under ``package_dir``) imports."""
    relative = path.relative_to(package_dir)
    package = list(relative.parent.parts)
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # "from .. import x" at the top: a room, or a package name
                    rooms.update(
                        a.name if a.name in rooms_known else "__init__" for a in node.names
                    )
                    continue
                rooms.add(parts[0])
            elif node.module and node.module.startswith("ipytwist."):
                rooms.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ipytwist."):
                    rooms.add(alias.name.split(".")[1])
    return {r[:-3] if r.endswith(".py") else r for r in rooms}


def long_functions(source: str, limit: int) -> list[str]:
    """The functions of ``source`` longer than ``limit`` lines, with their length."""
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


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


def script_modules(*folders: Path) -> list[Path]:
    """Every Python file under ``folders`` (caches and results left out)."""
    return sorted(
        p
        for folder in folders
        for p in folder.rglob("*.py")
        if not {"__pycache__", "results"} & set(p.relative_to(folder).parts)
    )


def importable_names(folder: Path) -> set[str]:
    """The names a module of ``folder`` can be imported by, with ``folder`` and each of
    its sub-folders on ``sys.path`` (as pytest puts tests/): the folder itself, its
    packages and sub-folders, and the modules of folders that are not packages."""
    names = {folder.name}
    for path in script_modules(folder):
        parts = path.relative_to(folder).parts
        if len(parts) > 1 and (folder / parts[0] / "__init__.py").exists():
            names.add(parts[0])
        else:
            names.update({path.stem, *parts[:-1]})
    return names


#: A path that is tests/ or inside it: "tests", "../tests", "/repo/tests/x".
_TESTS_PATH = re.compile(r"(^|[/\\])tests([/\\]|$)")


def _sets_a_path(node: ast.AST) -> bool:
    """Whether ``node`` mentions ``sys.path`` or ``PYTHONPATH``."""
    return any(
        (isinstance(n, ast.Attribute) and n.attr == "path" and getattr(n.value, "id", "") == "sys")
        or (isinstance(n, ast.Constant) and n.value == "PYTHONPATH")
        for n in ast.walk(node)
    )


def taken_from_tests(source: str, tests_names: set[str]) -> list[str]:
    """What a module of bench/ with ``source`` takes from tests/: imports of a module
    named in ``tests_names``, and, in a module that sets ``sys.path`` or ``PYTHONPATH``,
    any string that is a path to tests/."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in tests_names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] in tests_names:
                found.append(node.module)
    if _sets_a_path(tree):
        found += [
            f"line {n.lineno}: {n.value!r} (and the module sets sys.path or PYTHONPATH)"
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            if _TESTS_PATH.search(n.value)
        ]
    return found


def commands(script: Path) -> list[str]:
    """The commands of a shell script, without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in script.read_text().splitlines())
    return [line for line in lines if line]
