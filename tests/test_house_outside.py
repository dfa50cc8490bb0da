"""The house rules beyond the package: tests/ and bench/ keep the module cap, bench/
imports nothing from tests/, and CI checks the types and the frontend (see also
test_house.py, the rules of ipytwist/ itself)."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest
from test_house import MAX_MODULE_LINES

# -- tests/ and bench/ --------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
BENCH = ROOT / "bench"


def script_modules(*folders: Path) -> list[Path]:
    """Every Python file under ``folders`` (caches and results left out)."""
    return sorted(
        p
        for folder in folders
        for p in folder.rglob("*.py")
        if not {"__pycache__", "results"} & set(p.relative_to(folder).parts)
    )


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


def commands(script: Path) -> list[str]:
    """The commands of a shell script, without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in script.read_text().splitlines())
    return [line for line in lines if line]


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
