"""``python -m ipytwist``: command-line entry points."""

from __future__ import annotations

import argparse
import sys

from . import kernelspec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ipytwist")
    sub = p.add_subparsers(dest="command", required=True)
    ik = sub.add_parser("install-kernel", help="install the ipytwist kernelspec")
    where = ik.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for the current user")
    where.add_argument("--sys-prefix", action="store_true", help="into sys.prefix (default)")
    where.add_argument("--prefix", help="under PREFIX/share/jupyter/kernels")
    ik.add_argument("--name", default=kernelspec.KERNEL_NAME)
    from .console import cli

    cli.add_commands(sub)
    su = sub.add_parser(
        "singleuser",
        help="run as JupyterHub's single-user server (a hub's spawner runs it)",
    )
    su.add_argument("options", nargs="*", help="options of twistd ipytwist")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["singleuser"] and not {"-h", "--help"} & set(argv[1:2]):
        from . import singleuser  # every argument after it is the service's

        return singleuser.run(argv[1:])
    args = p.parse_args(argv)
    if args.command in ("console", "kernels"):
        return cli.run(args)
    if args.command == "install-kernel":
        dest = kernelspec.install(user=args.user, prefix=args.prefix, name=args.name)
        print(f"Installed kernelspec {args.name} in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
