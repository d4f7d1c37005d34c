"""The ``genprior`` command. Every subcommand is a thin layer over the public Python API.

One error path (see ``docs/errors.md``): an expected failure (a bad flag value, a missing,
truncated or corrupt file, a file of the wrong kind, a missing GPU, an OS error on a path) is
printed as one line ``genprior COMMAND: error: ...`` naming the flag or file, with exit status
2; an interrupt exits with 130; anything else is a bug and shows its traceback (exit 1).
``--debug`` shows the traceback of every failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import zipfile
import zlib

__all__ = ["SUBCOMMANDS", "main"]

#: subcommand name -> module in ``genprior.cli`` defining ``HELP``, ``add_arguments``, ``run``
SUBCOMMANDS = ("demo", "measure", "reconstruct", "evaluate", "train", "sample")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genprior",
        description="Reconstruct images from incomplete, noisy measurements with learned "
        "generative priors.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of any failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        mod = importlib.import_module(f"genprior.cli.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of any failure")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are a user's or the environment's fault, not a bug: printed as one
    line with exit status 2."""
    from safetensors import SafetensorError

    errors = [ValueError, TypeError, NotImplementedError, OSError, EOFError, zipfile.BadZipFile,
              zlib.error, SafetensorError, json.JSONDecodeError]
    import torch

    errors.append(torch.cuda.OutOfMemoryError)
    return tuple(errors)


def error_message(e: BaseException) -> str:
    """One line naming what failed (an ``OSError`` with its file name)."""
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror if e.filename is None else f"{e.strerror}: {e.filename}"
        if e.filename2 is not None:
            text += f" -> {e.filename2}"
    else:
        text = str(e) or type(e).__name__
    builtin = isinstance(e, (ValueError, OSError, TypeError)) and type(e).__module__ == "builtins"
    if not builtin and type(e).__name__ not in text:
        text = f"{type(e).__name__}: {text}"
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status: 0 on success, 2 on an expected failure
    (one line on stderr naming the flag or file), 130 on an interrupt. With ``--debug`` every
    failure raises with its traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"genprior {args.command}: interrupted", file=sys.stderr)
        return 130
    except expected_errors() as e:
        if debug:
            raise
        print(f"genprior {args.command}: error: {error_message(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
