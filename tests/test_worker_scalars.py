"""A number or string result formatted by the plain-text formatter alone
(worker/scalars.py): the same data as IPython's full ``format``, and IPython's own path
as soon as any other formatter could answer."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.formatters import DisplayFormatter

from ipytwist.worker.scalars import plain_only

SAMPLES = [1, -7, 2**100, 1.5, float("nan"), True, 3 + 4j, "", "a'b\n", "é" * 3]


@pytest.fixture
def formatter() -> DisplayFormatter:
    return DisplayFormatter()


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_the_same_as_ipythons_format(formatter: DisplayFormatter, value: Any) -> None:
    assert plain_only(formatter, value) == formatter.format(value)


def test_the_plain_formatters_own_settings_apply(formatter: DisplayFormatter) -> None:
    formatter.formatters["text/plain"].float_precision = "%.2f"
    assert plain_only(formatter, 1.5) == ({"text/plain": "1.50"}, {})


def test_other_values_are_ipythons_to_format(formatter: DisplayFormatter) -> None:
    class Number(int):
        def _repr_html_(self) -> str:
            return "<b>1</b>"

    for value in (Number(1), None, [1], {"a": 1}, b"x"):
        assert plain_only(formatter, value) is None


@pytest.mark.parametrize(
    ("register", "value"),
    [
        (lambda f: f.formatters["text/html"].for_type(int, lambda v: f"<i>{v}</i>"), True),
        (lambda f: f.formatters["text/latex"].for_type_by_name("builtins", "float", str), 1.5),
        (lambda f: f.formatters["text/markdown"].for_type(object, lambda v: "*any*"), "s"),
        (lambda f: f.mimebundle_formatter.for_type(int, lambda v, **kw: {"text/x": "1"}), 1),
    ],
    ids=["html-for-int-a-bool", "latex-by-name", "markdown-for-object", "mimebundle"],
)
def test_a_printer_registered_for_the_type_gets_ipythons_path(
    formatter: DisplayFormatter, register: Any, value: Any
) -> None:
    register(formatter)
    assert plain_only(formatter, value) is None


def test_a_disabled_plain_formatter_gets_ipythons_path(formatter: DisplayFormatter) -> None:
    formatter.formatters["text/plain"].enabled = False
    assert plain_only(formatter, 1) is None
