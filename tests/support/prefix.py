"""A service under a base URL (``--base-url /user/alice/``) for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from benchlib.servers import WARM_POOL, Service

BASE = "/user/alice/"


class PrefixedService(Service):
    """The service under ``BASE``: ``url`` is the prefixed address (without its last
    "/", so ``api("GET", "/api/kernels")`` asks below the prefix)."""

    def argv(self) -> list[str]:
        return [*super().argv(), "--base-url", BASE.rstrip("/")]  # normalised by the service

    def listening(self) -> bool:
        if not super().listening():
            return False
        self.url = self.info["url"].rstrip("/")
        return True

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def root(self) -> str:
        """The host's root, outside the prefix."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.root

    def ws_url(self, kernel_id: str, **params: str | None) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
        return f"ws://127.0.0.1:{self.port}{BASE}api/kernels/{kernel_id}/channels" + (
            "?" + query if query else ""
        )


def prefixed_service_fixture() -> Callable[..., Any]:
    """A module-scoped ``svc`` fixture: a :class:`PrefixedService` with a kernel started
    ahead, stopped (its log checked clean) after the module."""

    @pytest.fixture(scope="module", name="svc")
    def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefixedService]:
        s = PrefixedService(str(tmp_path_factory.mktemp("prefix")), *WARM_POOL)
        try:
            s.start()
            yield s
        finally:
            s.stop()
        for marker in ("Unhandled Error", "Traceback (most recent call last)"):
            assert marker not in s.log(), f"{marker!r} in {s.log_path}"

    return svc
