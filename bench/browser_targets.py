"""The two frontends the browser benchmark opens, each on its server: the ipytwist page
(``/kernels/{id}``) and JupyterLab (``/lab/tree/<name>.ipynb``)."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import requests
from benchlib.servers import ServerProcess
from browser_probe import SELECTORS

#: JupyterLab: not part of what is measured, and no network beyond loopback here.
LAB_ARGS = [
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
]


class Target:
    """One frontend + server: prepares a notebook, gives its URL, cleans up after."""

    name = ""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.selectors = SELECTORS[self.name]

    def prepare(self, n: int) -> str:
        """Set up sample ``n`` (no kernel yet); returns its key."""
        raise NotImplementedError

    def start_kernel(self, key: str) -> str:
        """Start the kernel for ``key`` through REST (not waiting); returns its id."""
        raise NotImplementedError

    def url(self, key: str, token: bool) -> str:
        raise NotImplementedError

    def page_kernel(self, key: str) -> str | None:
        """The kernel the page uses (after it opened)."""
        raise NotImplementedError

    def cleanup(self, key: str) -> None:
        raise NotImplementedError


class IpytwistTarget(Target):
    name = "ipytwist"

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(server)
        self.kernels: dict[str, str] = {}

    def prepare(self, n: int) -> str:
        return f"s{n}"

    def start_kernel(self, key: str) -> str:
        kid = self.server.request("POST", "/api/kernels", {"name": "ipytwist"})["id"]
        self.kernels[key] = kid
        return kid

    def url(self, key: str, token: bool) -> str:
        login = f"?token={self.server.token}" if token else ""
        return f"{self.server.url}/kernels/{self.kernels[key]}{login}"

    def page_kernel(self, key: str) -> str | None:
        return self.kernels.get(key)

    def cleanup(self, key: str) -> None:
        kid = self.kernels.pop(key, None)
        if kid:
            quietly(self.server.request, "DELETE", f"/api/kernels/{kid}")


class JupyterLabTarget(Target):
    name = "jupyterlab"

    def notebook(self, key: str) -> str:
        return f"{key}.ipynb"

    def prepare(self, n: int) -> str:
        key = f"bench-{n}"
        nb = {
            "cells": [
                {
                    "cell_type": "code",
                    "id": secrets.token_hex(4),
                    "source": "",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                }
            ],
            "metadata": {
                "kernelspec": {
                    "name": "python3",
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                },
                "language_info": {"name": "python"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = f"/api/contents/{self.notebook(key)}"
        self.server.request("PUT", path, {"type": "notebook", "format": "json", "content": nb})
        return key

    def start_kernel(self, key: str) -> str:
        body = {
            "path": self.notebook(key),
            "name": self.notebook(key),
            "type": "notebook",
            "kernel": {"name": "python3"},
        }
        return self.server.request("POST", "/api/sessions", body)["kernel"]["id"]

    def url(self, key: str, token: bool) -> str:
        login = f"?token={self.server.token}" if token else ""
        return f"{self.server.url}/lab/tree/{self.notebook(key)}{login}"

    def sessions(self, key: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.server.request("GET", "/api/sessions")
            if s.get("path") == self.notebook(key)
        ]

    def page_kernel(self, key: str) -> str | None:
        found = self.sessions(key)
        return found[0]["kernel"]["id"] if len(found) == 1 else None

    def cleanup(self, key: str) -> None:
        for s in quietly(self.sessions, key) or []:
            quietly(self.server.request, "DELETE", f"/api/sessions/{s['id']}")
        quietly(self.server.request, "DELETE", f"/api/contents/{self.notebook(key)}")
        # The next page opens on an empty workspace, not with this notebook's tab again.
        quietly(self.server.request, "DELETE", "/lab/api/workspaces/default")


def quietly(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except requests.HTTPError as e:
        if e.response is None or e.response.status_code != 404:
            print(f"  cleanup: {fn.__name__}{args}: {e}", flush=True)
    except Exception as e:
        print(f"  cleanup: {fn.__name__}{args}: {type(e).__name__}: {e}", flush=True)
    return None


def wait_kernel_ready(target: Target, kernel_id: str, timeout: float) -> float:
    """Block until the kernel answers ``kernel_info`` on ZeroMQ; returns the seconds taken."""
    from jupyter_client import BlockingKernelClient

    t0 = time.perf_counter()
    path = target.server.connection_file(kernel_id)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no connection file {path}")
        time.sleep(0.05)
    time.sleep(0.05)  # written in one go, but do not race its writer
    kc = BlockingKernelClient(connection_file=path)
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
    finally:
        kc.stop_channels()
    return time.perf_counter() - t0
