"""Every Python package of ipytwist is in the distribution: ``[tool.setuptools]
packages`` lists each directory of ``ipytwist/`` that holds an ``__init__.py`` (an
installed, non-editable ipytwist without ``ipytwist.link`` could not start)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "ipytwist").rglob("__init__.py")
        if "node_modules" not in init.parts
    }
    assert found, "no package found"
    assert found <= listed, sorted(found - listed)
