"""`sqlgrpo ask`: a question to a trained model against a real database, answered with SQL
that is run (read-only) and shown with its result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sqlgrpo.cli.eval import (
    add_feedback_flags,
    add_precision_flag,
    add_prompt_flags,
    feedback_config,
    prompt_overrides,
)

SHOWN_ROWS = 20
HISTORY_FILE = Path("~/.cache/sqlgrpo/ask_history")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ask`` command."""
    p = subparsers.add_parser(
        "ask",
        help="ask a model a question about a database; runs its SQL read-only and shows the result",
        description="The prompt is built as the model was trained (a run folder's or export's "
        "prompt settings). The database is never written: queries run read-only, a statement "
        "that writes runs on an in-memory copy and what it would change is summarised. "
        "Without a QUESTION, questions are read interactively (Ctrl-D leaves).",
    )
    p.add_argument("question", nargs="?", default=None, help="the question (default: interactive)")
    p.add_argument(
        "--model",
        required=True,
        help="alias, run folder, exported folder, hub id, or a .gguf file (llama.cpp)",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--db",
        default=None,
        metavar="DB",
        help="SQLite or DuckDB file, Parquet/CSV file or folder, or a URL: "
        "postgresql://user@host:port/db, duckdb:///path, sqlite:///path (opened read-only)",
    )
    where.add_argument(
        "--schema",
        default=None,
        metavar="FILE.sql",
        help="CREATE TABLE script (with INSERTs if you like), built in memory",
    )
    p.add_argument(
        "--samples", type=int, default=1, help="answers to sample and vote among (default 1)"
    )
    p.add_argument(
        "--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 for --samples"
    )
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: as trained, else 512")
    add_precision_flag(p)
    add_prompt_flags(p)
    add_feedback_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per answer")
    p.add_argument(
        "--rows", type=int, default=SHOWN_ROWS, help=f"rows shown (default {SHOWN_ROWS})"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sqlgrpo.ask import Asker, AskError, open_database

    database = None
    try:
        database = open_database(args.db, args.schema)
        asker = Asker(
            args.model,
            database,
            overrides=prompt_overrides(args),
            samples=args.samples,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            precision=args.precision,
            feedback=feedback_config(args),
        )
    except (AskError, OSError, RuntimeError, ValueError) as exc:
        print(f"sqlgrpo ask: error: {exc}", file=sys.stderr)
        if database is not None:
            database.close()
        return 2
    try:
        if args.question is not None:
            return _answer(asker, args.question, args)
        return _interactive(asker, args)
    finally:
        database.close()


def _answer(asker: Any, question: str, args: argparse.Namespace) -> int:
    from sqlgrpo.ask import AskError

    try:
        answer = asker.ask(question)
    except AskError as exc:
        print(f"sqlgrpo ask: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer.to_dict(max_rows=args.rows), default=str), flush=True)
    else:
        _show(answer, args.rows)
    return 0 if answer.result is not None and answer.result.ok else 1


def _interactive(asker: Any, args: argparse.Namespace) -> int:
    try:
        import readline  # line editing and history for input()
    except ImportError:  # pragma: no cover - not on every platform
        readline = None  # type: ignore[assignment]
    history = HISTORY_FILE.expanduser()
    if readline is not None:
        history.parent.mkdir(parents=True, exist_ok=True)
        if history.is_file():
            readline.read_history_file(str(history))
    if not args.json:
        print(f"asking {asker.database.label}; Ctrl-D leaves", file=sys.stderr)
    prompt = "question> " if sys.stdin.isatty() else ""
    try:
        while True:
            try:
                question = input(prompt)
            except EOFError:
                if prompt:
                    print(file=sys.stderr)
                return 0
            if question.strip():
                _answer(asker, question, args)
    finally:
        if readline is not None:
            readline.set_history_length(1000)
            readline.write_history_file(str(history))


def _show(answer: Any, max_rows: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if answer.over_budget:
        console.print(
            f"[yellow]note: the prompt has {answer.prompt_tokens} tokens, more than the "
            f"{answer.max_prompt_tokens} the model was trained with[/yellow]"
        )
    for number, turn in enumerate(answer.turns or [], start=1):
        if turn.observation is not None:
            drawn = " (redrawn: the greedy answer repeated itself)" if turn.redrawn else ""
            console.print(
                Text(
                    f"turn {number}{drawn}: {turn.sql or '(no SQL)'}\n  -> {turn.observation}",
                    "yellow",
                )
            )
    if answer.turns and answer.turns[-1].redrawn:
        console.print(
            Text(
                "the final answer was redrawn: the greedy one repeated SQL already tried", "yellow"
            )
        )
    console.print(Panel(Text(answer.reasoning or "(no <reasoning> section)"), title="reasoning"))
    if answer.cut_off:
        console.print(
            f"[yellow]the answer was cut off at {answer.max_new_tokens} new tokens (the "
            "budget); --max-new-tokens raises it, --samples N --temperature T samples "
            "several answers[/yellow]"
        )
    if not answer.sql:
        console.print("[red]no SQL in the answer[/red]")
        return
    console.print(Panel(Syntax(answer.sql, "sql", word_wrap=True), title="SQL"))
    if answer.samples > 1:
        console.print(f"{answer.agreed} of {answer.samples} sampled answers agree on this result")
    r = answer.result
    if not r.ok:
        console.print(f"[red]error ({r.error_class.value}): {escape(r.error_message or '')}[/red]")
        return
    if answer.changes is not None:
        console.print(
            f"{r.statement_type} ran where its changes are thrown away (your database is "
            "unchanged); it would change:"
        )
        table = Table("table", "rows before", "rows after", "added", "removed")
        for c in answer.changes:
            table.add_row(
                Text(c.table), str(c.rows_before), str(c.rows_after), str(c.added), str(c.removed)
            )
        console.print(table if answer.changes else "nothing")
        return
    print_rows(console, r, max_rows)


def print_rows(console: Any, result: Any, max_rows: int, suffix: str = "") -> None:
    """A result's rows as a table (NULL shown as such, at most ``max_rows``) and the count
    line (``N+`` when the fetch was truncated), ``suffix`` appended; `ask` and `sql` share it."""
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for name in result.columns:
        table.add_column(Text(name))
    for row in result.rows[:max_rows]:
        table.add_row(*(Text("NULL" if v is None else str(v)) for v in row))
    console.print(table)
    n = len(result.rows)
    count = f"{n}+" if result.truncated else str(n)
    shown = f", first {max_rows} shown" if n > max_rows else ""
    console.print(f"{count} row{'s' if n != 1 else ''}{shown}{suffix}")
