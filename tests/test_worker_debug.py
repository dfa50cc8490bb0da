"""The worker's side of the debugger (worker/debug.py) with a fake shell: the variables
listed while no code runs, their bounds, rich representations and the modules."""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import pytest

from ipytwist.worker.debug import MAX_REPR, MAX_VARIABLES, DebugHandlers


class FakeShell:
    def __init__(self, user_ns: dict[str, Any]) -> None:
        self.user_ns = user_ns
        self.user_ns_hidden = {"hidden": 1}

    def user_expressions(self, expressions: dict[str, str]) -> dict[str, Any]:
        return {k: {"status": "ok", "data": {"text/plain": repr(self.user_ns[v])}, "metadata": {}}
                for k, v in expressions.items()}  # fmt: skip


class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("no")


def handlers(**user_ns: Any) -> DebugHandlers:
    return DebugHandlers(FakeShell(user_ns))  # type: ignore[arg-type] # the shell's namespace is all it uses


def test_variables_hide_ipythons_own_and_survive_a_broken_repr() -> None:
    h = handlers(x=1, hidden=2, In=[], _i3="", _5=5, bad=BadRepr(), long="y" * 5000)
    found = {v["name"]: v for v in h.variables({})["variables"]}
    assert sorted(found) == ["bad", "long", "x"]
    assert found["x"] == {
        "name": "x", "value": "1", "type": "int", "evaluateName": "x", "variablesReference": 0
    }  # fmt: skip
    assert found["bad"]["value"] == "<repr failed: ValueError>"
    assert len(found["long"]["value"]) == MAX_REPR


def test_at_most_max_variables_are_listed() -> None:
    h = handlers(**{f"v{i}": i for i in range(MAX_VARIABLES + 10)})
    found = h.variables({})["variables"]
    assert len(found) == MAX_VARIABLES and found[-1]["name"] == f"v{MAX_VARIABLES - 1}"


def test_rich_of_a_name_and_of_anything_else() -> None:
    h = handlers(x=[1, 2])
    assert h.rich({"name": "x"})["data"] == {"text/plain": "[1, 2]"}
    assert h.rich({"name": "x[0]"}) == {"status": "ok", "data": {}, "metadata": {}}
    assert h.rich({"name": 5})["data"] == {}


def test_modules_are_paged_positions_in_sys_modules() -> None:
    import sys

    before = len(sys.modules)
    everything = handlers().modules({})
    # (Reading a lazy module's __spec__ may import more: they come after.)
    assert before <= everything["totalModules"] <= len(sys.modules)
    (json_module,) = [m for m in everything["modules"] if m["name"] == "json"]
    one = handlers().modules({"startModule": json_module["id"], "moduleCount": 1})
    assert one["modules"] == [json_module]
    assert handlers().modules({"startModule": -3, "moduleCount": "x"})["modules"]


def test_the_files_of_modules_loaded_before_the_handlers_are_internal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Their frames are hidden from the debugger; a module a cell imports later is not."""
    debug = handlers()
    later = types.ModuleType("a_cells_module")
    later.__file__ = "/somewhere/a_cells_module.py"
    monkeypatch.setitem(sys.modules, "a_cells_module", later)
    internal = debug._internal()
    assert os.__file__ in internal and pytest.__file__ in internal
    assert later.__file__ not in internal
