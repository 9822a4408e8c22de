"""``sqlgrpo score``: score completions in a jsonl file with every reward of a profile."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlgrpo.rewards.registry import REWARD_PROFILES
from sqlgrpo.sql.compare import COMPARE_RULES

REQUIRED_FIELDS = ("completion",)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``score`` command."""
    parser = subparsers.add_parser(
        "score",
        help="score completions (jsonl) with the rewards",
        description=(
            "Score each row's completion with every reward of a profile, as GRPO training would. "
            "Rows are JSON objects with 'completion' (text or chat-message list), 'sql' (gold), "
            "'sql_context' or 'db_path', and optionally 'sql_prompt'."
        ),
    )
    parser.add_argument("file", type=Path, help="input jsonl file")
    parser.add_argument(
        "-o", "--output", type=Path, help="write rows with their rewards here (jsonl)"
    )
    parser.add_argument(
        "--compare",
        choices=COMPARE_RULES,
        default="seed",
        help="result comparison rule",
    )
    parser.add_argument(
        "--profile", choices=tuple(REWARD_PROFILES), default="spec", help="reward profile"
    )
    parser.add_argument(
        "--state-match", action="store_true", help="credit DML by the resulting database state"
    )
    parser.add_argument(
        "--prefill",
        default="",
        help=r"text the prompt prefilled the assistant turn with, e.g. '<reasoning>\n'",
    )
    parser.set_defaults(handler=run)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a jsonl file; ``ValueError`` naming the file, line and problem on bad input."""
    from sqlgrpo.data.jsonl import iter_jsonl

    rows = []
    for line_no, row in iter_jsonl(path, require=tuple(REQUIRED_FIELDS)):
        completion = row["completion"]
        if not isinstance(completion, (str, list)):
            raise ValueError(
                f"{path}:{line_no}: 'completion' must be a string or a chat-message list"
            )
        for field in ("sql", "sql_context", "db_path"):
            if row.get(field) is not None and not isinstance(row[field], str):
                raise ValueError(f"{path}:{line_no}: {field!r} must be a string or null")
        if row.get("sql_context") is None and row.get("db_path") is None and row.get("sql"):
            raise ValueError(f"{path}:{line_no}: has 'sql' but neither 'sql_context' nor 'db_path'")
        row["_line"] = line_no
        rows.append(row)
    return rows


def score_rows(
    rows: list[dict[str, Any]], funcs: list[Any]
) -> tuple[list[dict[str, float]], list[dict]]:
    """Per-row rewards by reward name, and per-row diagnostics from ``log_extra``."""
    n = len(rows)
    columns = {key: [row.get(key) for row in rows] for key in ("sql", "sql_context", "db_path")}
    prompts = [row.get("sql_prompt") or "" for row in rows]
    completions = [row["completion"] for row in rows]
    extras: dict[str, list] = defaultdict(list)
    scores: list[dict[str, float]] = [{} for _ in range(n)]
    for func in funcs:
        values = func(
            prompts,
            completions,
            log_extra=lambda column, vals: extras[column].extend(vals),
            **columns,
        )
        for i, value in enumerate(values):
            scores[i][func.__name__] = float(value)
    diagnostics = [
        {key: vals[i] for key, vals in extras.items() if len(vals) == n} for i in range(n)
    ]
    return scores, diagnostics


def _label(name: str) -> str:
    """Short column header for a reward name (``execute_query_reward_func`` -> ``execution``)."""
    short = name.removesuffix("_reward_func").removesuffix("_reward")
    labels = {
        "execute_query": "execution",
        "reasoning_quality": "reasoning",
        "soft_format": "format",
        "strict_format": "strict format",
    }
    return labels.get(short, short)


def run(args: argparse.Namespace) -> int:
    """Handler: read, score, print the table, write the jsonl."""
    from rich.console import Console
    from rich.table import Table

    from sqlgrpo.data.prompts import decode_prefill_escapes
    from sqlgrpo.rewards import build_profile

    console = Console()
    try:
        rows = read_rows(args.file)
    except (OSError, ValueError) as exc:
        print(f"sqlgrpo score: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"sqlgrpo score: {args.file}: no rows", file=sys.stderr)
        return 2
    options: dict[str, Any] = {"rule": args.compare}
    if args.state_match:
        options["state_match"] = True
    funcs = build_profile(args.profile, prefill=decode_prefill_escapes(args.prefill), **options)
    scores, diagnostics = score_rows(rows, funcs)
    names = [f.__name__ for f in funcs]

    table = Table(
        title=f"{args.file} - profile {args.profile}, rule {args.compare}", show_footer=True
    )
    table.add_column("line", footer="mean")
    totals = [sum(s.values()) for s in scores]
    for name in names:
        mean = sum(s[name] for s in scores) / len(scores)
        label = _label(name)
        table.add_column(label, justify="right", footer=f"{mean:.3f}", min_width=len(label))
    table.add_column("match", footer="", min_width=7)
    mean_total = sum(totals) / len(totals)
    table.add_column("total", justify="right", footer=f"{mean_total:.3f}", min_width=5)
    for row, score, total, diag in zip(rows, scores, totals, diagnostics, strict=True):
        kind = next((v for k, v in diag.items() if k.endswith("/match_kind")), "")
        table.add_row(
            str(row["_line"]),
            *(f"{score[name]:.3f}" for name in names),
            str(kind),
            f"{total:.3f}",
        )
    console.print(table)
    print(
        f"total reward: sum {sum(totals):.3f}, mean {sum(totals) / len(totals):.3f} per completion"
    )

    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("w", encoding="utf-8") as handle:
            for row, score, total, diag in zip(rows, scores, totals, diagnostics, strict=True):
                out = {k: v for k, v in row.items() if k != "_line"}
                out.update(rewards=score, total=total, diagnostics=diag)
                handle.write(json.dumps(out, ensure_ascii=False) + "\n")
        print(f"wrote {len(rows)} rows to {args.output}")
    return 0
