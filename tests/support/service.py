"""The service fixture: a ``twistd -n ipytwist`` for the tests of a module, or shared by
the modules that were one before they were split."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from benchlib.running import TempFactory, running_service
from benchlib.servers import Service


class ServicePool:
    """Services by name, started when first asked for and stopped (their logs checked
    clean) when the pool closes."""

    def __init__(self, tmp: TempFactory) -> None:
        self.tmp = tmp
        self.services: dict[str, tuple[tuple[str, ...], Service]] = {}
        self._stack = ExitStack()

    def get(self, name: str, *args: str) -> Service:
        if name not in self.services:
            svc = self._stack.enter_context(running_service(self.tmp, name, *args))
            self.services[name] = (args, svc)
        started_with, svc = self.services[name]
        assert started_with == args, f"service {name!r} asked for with other options"
        return svc

    def close(self) -> None:
        self._stack.close()


def service_fixture(name: str, *args: str, shared: bool = False) -> Callable[..., Any]:
    """A module-scoped fixture of a :class:`Service` with options ``args``, started in a
    fresh directory and stopped (its log checked clean) after the module; assign it to
    ``svc`` in the module.  The kernel fixtures of ``conftest.py`` use it.

    With ``shared``, the modules that ask for ``name`` get the same service, stopped at
    the end of the session (for a module split in two: one service, as before)."""

    if shared:

        @pytest.fixture(scope="module", name="svc")
        def shared_svc(service_pool: ServicePool) -> Service:
            return service_pool.get(name, *args)

        return shared_svc

    @pytest.fixture(scope="module", name="svc")
    def own_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
        with running_service(tmp_path_factory, name, *args) as s:
            yield s

    return own_svc
