"""`sqlgrpo sql`: one untrusted statement through an engine's sandbox, to check SQL by hand."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlgrpo.sql.sandbox import DEFAULT_LIMITS

SHOWN_ROWS = 50


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sql`` command."""
    p = subparsers.add_parser(
        "sql",
        help="run one SQL statement on a database through its engine's sandbox",
        description="Runs STATEMENT as untrusted model output is run: read-only, within the "
        "time, memory and row limits, with no file, program or network reach (docs/sandbox.md). "
        "A statement that writes runs where its changes are thrown away. Exit status: 0 when it "
        "ran, 1 when it failed (its error class is printed), 2 when the database cannot be opened.",
    )
    p.add_argument("statement", help="the SQL statement (one)")
    p.add_argument(
        "--db",
        required=True,
        metavar="DB",
        help="SQLite or DuckDB file, Parquet/CSV file or folder, or a URL: "
        "postgresql://user@host:port/db, duckdb:///path, sqlite:///path",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_LIMITS.timeout_s,
        metavar="SECONDS",
        help=f"time limit for the statement (default {DEFAULT_LIMITS.timeout_s:g})",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"ok", "error_class", "error", "columns", "rows", "truncated", "elapsed_s"}',
    )
    p.add_argument(
        "--rows", type=int, default=SHOWN_ROWS, help=f"rows shown (default {SHOWN_ROWS})"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sqlgrpo.sql.engines import EngineError, open_engine

    if not args.timeout > 0:
        print(f"sqlgrpo sql: error: --timeout must be > 0, got {args.timeout}", file=sys.stderr)
        return 2
    limits = replace(DEFAULT_LIMITS, timeout_s=args.timeout)
    try:
        engine = open_engine(args.db, limits)
    except (EngineError, OSError, ValueError) as exc:
        print(f"sqlgrpo sql: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = engine.run(args.statement)
    finally:
        engine.close()
    if args.json:
        print(json.dumps(_record(result), default=str))
    elif result.ok:
        _show(result, args.rows)
    else:
        print(f"error: {result.error_class.value}: {result.error_message}")
    return 0 if result.ok else 1


def _record(result: Any) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "error_class": result.error_class.value if result.error_class is not None else None,
        "error": result.error_message,
        "columns": list(result.columns),
        "rows": [list(row) for row in result.rows],
        "truncated": result.truncated,
        "elapsed_s": round(result.elapsed_s, 6),
    }


def _show(result: Any, max_rows: int) -> None:
    from rich.console import Console

    from sqlgrpo.cli.ask import print_rows

    console = Console()
    if not result.columns:
        changed = f": {result.rowcount} row(s) changed" if result.rowcount >= 0 else ""
        console.print(
            f"{result.statement_type} ran where its changes are thrown away{changed} "
            "(the database is unchanged)"
        )
        return
    print_rows(console, result, max_rows, f" ({result.elapsed_s:.3f} s)")
