"""``ipytwist console`` and ``ipytwist kernels``: options in, one line out on failure."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import Any

from ..paths import default_state_dir
from .server import ConsoleError, Server, TokenStore, Unauthorized, local_server, normalise_url

__all__ = ["add_commands", "run"]


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``console`` and ``kernels`` sub-commands of ``ipytwist``."""
    for name, helptext in (
        ("console", "an IPython terminal on a kernel of an ipytwist service"),
        ("kernels", "list the kernels of an ipytwist service"),
    ):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument(
            "url", nargs="?", help="the service (default: the local one, from server.json)"
        )
        p.add_argument("--token", help="the service's token (default: asked once, then remembered)")
        p.add_argument("--state-dir", help="the local service's state directory")
        p.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
        if name == "console":
            p.add_argument("--kernel", help="attach to this running kernel (default: start one)")
            p.add_argument("--no-color", action="store_true", help="no ANSI colours")
            p.add_argument(
                "--reconnect-timeout",
                type=float,
                default=30.0,
                metavar="SECONDS",
                help="how long to try to reconnect before giving up (30)",
            )


def _server(args: argparse.Namespace) -> tuple[Server, bool]:
    """The server and whether its token came from the user's store or prompt."""
    if args.url:
        url, token = normalise_url(args.url), args.token
    else:
        url, token = local_server(args.state_dir or default_state_dir())
        url, token = normalise_url(url), args.token or token
    if args.insecure and url.startswith("https:"):
        print("ipytwist: warning: the server's TLS certificate is not checked", file=sys.stderr)
    if token:
        return Server(url, token, args.insecure), False
    remembered = TokenStore().get(url)
    if remembered:
        return Server(url, remembered, args.insecure), True
    return Server(url, _ask_token(url), args.insecure), True


def _ask_token(url: str) -> str:
    if not sys.stdin.isatty():
        raise ConsoleError(f"{url} needs a token: give --token")
    try:
        token = getpass.getpass(f"Token for {url}: ").strip()
    except (EOFError, KeyboardInterrupt):
        raise ConsoleError("no token given") from None
    if not token:
        raise ConsoleError("no token given")
    return token


def _checked(args: argparse.Namespace) -> tuple[Server, list[dict[str, Any]]]:
    """A server whose token works, and its kernels (listing them is the check); a
    remembered token that stopped working is asked again."""
    server, stored = _server(args)
    try:
        kernels = server.kernels()
    except Unauthorized:
        if not stored:
            raise
        TokenStore().put(server.url, None)
        server = Server(server.url, _ask_token(server.url), server.insecure)
        kernels = server.kernels()
    if stored:
        TokenStore().put(server.url, server.token)
    return server, kernels


def list_kernels(args: argparse.Namespace) -> int:
    server, kernels = _checked(args)
    if not kernels:
        print(f"No kernels at {server.url}")
        return 0
    rows = [("ID", "NAME", "STATE", "CLIENTS", "LAST ACTIVITY")]
    for k in kernels:
        rows.append(
            (
                str(k.get("id", "")),
                str(k.get("name", "")),
                str(k.get("execution_state", "")),
                str(k.get("connections", "")),
                str(k.get("last_activity", "")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def console(args: argparse.Namespace) -> int:
    from prompt_toolkit.history import FileHistory

    from .repl import Console
    from .server import history_path

    server, _ = _checked(args)
    if args.kernel:
        kernel_id, owned = str(server.kernel(args.kernel)["id"]), False
    else:
        kernel_id, owned = str(server.start_kernel()["id"]), True
    color = not args.no_color and "NO_COLOR" not in os.environ

    async def main() -> int:
        c = Console(
            server,
            kernel_id,
            owned=owned,
            history=FileHistory(history_path(server.url)),
            color=color,
        )
        c.channel.give_up_after = args.reconnect_timeout
        try:
            print(await c.start())
            return await c.loop()
        finally:
            await c.channel.close()

    return asyncio.run(main())


def run(args: argparse.Namespace) -> int:
    """Run one sub-command; a ConsoleError becomes one line on stderr and status 1."""
    try:
        return console(args) if args.command == "console" else list_kernels(args)
    except ConsoleError as e:
        print(f"ipytwist {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
