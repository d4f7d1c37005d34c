"""The ``genprior`` command. Every subcommand is a thin layer over the public Python API."""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["SUBCOMMANDS", "main"]

#: subcommand name -> module in ``genprior.cli`` defining ``HELP``, ``add_arguments``, ``run``
SUBCOMMANDS = ("demo", "measure", "reconstruct", "evaluate", "train", "sample")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genprior",
        description="Reconstruct images from incomplete, noisy measurements with learned "
        "generative priors.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        mod = importlib.import_module(f"genprior.cli.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (2 on a user error, with its message)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, TypeError, NotImplementedError) as e:
        print(f"genprior {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
