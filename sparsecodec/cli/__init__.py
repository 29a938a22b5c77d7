"""The ``sparsecodec`` command line: one subcommand per module in this package.

Each command module defines ``add_parser(subparsers)``, which registers its subparser and sets
``func`` to a function ``run(args) -> int``. :func:`main` is importable and takes ``argv``, so
tests run commands in-process.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

log = logging.getLogger("sparsecodec")

#: Modules under ``sparsecodec.cli`` that define a command, in the order ``--help`` lists them.
COMMAND_MODULES = ("backends_command", "compress_command", "decompress_command", "evaluate_command", "info_command", "bench_command", "simulate_command", "show_command", "train_command")


class CommandError(Exception):
    """An error to report to the user as one line, with a non-zero exit code."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsecodec",
        description="Variable-rate neural compression (BCAE-VS) of sparse TPC wedges.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def describe_error(error: BaseException) -> str:
    """Return the one-line message for ``error``, naming the path for a raw operating-system error."""
    if isinstance(error, OSError) and error.errno is not None and error.filename is not None:
        if isinstance(error, FileNotFoundError):
            return f"file not found: {error.filename}"
        return f"{error.strerror}: {error.filename}"
    return str(error)


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code: 0 on success, 1 on a reported error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Kept so that reports can record the exact command that produced them.
    args.command_line = ["sparsecodec", *(sys.argv[1:] if argv is None else argv)]
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except (CommandError, ValueError, TypeError, OSError, ImportError) as error:
        # One line, no traceback: these are problems with the input or the environment.
        log.error("%s", describe_error(error))
        log.debug("details", exc_info=True)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
