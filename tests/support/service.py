"""The service fixture: one ``twistd -n ipytwist`` per test module that asks for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from benchlib.running import running_service
from benchlib.servers import Service


def service_fixture(name: str, *args: str) -> Callable[..., Any]:
    """A module-scoped fixture of a :class:`Service` with options ``args``, started in a
    fresh directory and stopped (its log checked clean) after the module; assign it to
    ``svc`` in the module.  The kernel fixtures of ``conftest.py`` use it."""

    @pytest.fixture(scope="module")
    def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
        with running_service(tmp_path_factory, name, *args) as s:
            yield s

    return svc
