"""Command-line entry point: ``sqlgrpo <command> ...``.

Each command group lives in its own module exposing ``register(subparsers)``;
heavy imports (torch, transformers, trl) happen inside the command handlers so
that ``sqlgrpo --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sqlgrpo import __version__

COMMAND_MODULES = (
    "score", "data", "train", "eval", "ask", "sql", "export", "judge", "report", "demo",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available command group."""
    parser = argparse.ArgumentParser(
        prog="sqlgrpo",
        description="Train text-to-SQL models that reason first, with GRPO and execution-checked rewards.",
    )
    parser.add_argument("--version", action="version", version=f"sqlgrpo {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"sqlgrpo.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sqlgrpo.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
