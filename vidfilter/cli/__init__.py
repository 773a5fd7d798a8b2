"""The ``vidfilter`` command: parses arguments, builds a :class:`~vidfilter.config.Config`, calls the API.

Contract: exit 0 on success, 2 for a user mistake (bad usage, bad input, bad config) with exactly
one line on stderr that says what is wrong and what to do, 1 for an internal error. ``--debug``
shows the traceback. Every flag that tunes a run overrides one config field.

:mod:`~vidfilter.cli.parser` defines the arguments of each subcommand, :mod:`~vidfilter.cli.commands`
runs them; :func:`main` here turns their outcome into the exit code.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from vidfilter.cli.commands import versions
from vidfilter.cli.parser import build_parser
from vidfilter.errors import VidfilterError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
        format="vidfilter: %(levelname)s: %(message)s",
    )
    if args.version:
        print(versions())
        return 0
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is handled below
        return rc
    except BrokenPipeError:  # the reader of our output went away (`... | head`): stop quietly
        _silence_stdout()
        return 141
    except VidfilterError as e:
        if args.debug:
            raise
        print(f"vidfilter: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vidfilter: interrupted; partial outputs are kept and resume with the same command", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error: still one line unless --debug
        if args.debug:
            raise
        print(f"vidfilter: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail on the closed pipe."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
