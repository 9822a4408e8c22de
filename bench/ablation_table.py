"""Markdown table of evaluation folders, each paired against a reference evaluation.

Reads the ``metrics.json`` and ``predictions.jsonl`` that ``sqlgrpo eval`` writes. For every
folder: n, strict format rate, executable rate, execution accuracy (EX), EX on rows whose
gold is a SELECT with a non-empty result, mean completion length, and, against the reference
folder (the warm-up, say), rows gained / lost and McNemar's exact p on the shared samples.

Usage: python bench/ablation_table.py REFERENCE NAME=FOLDER [NAME=FOLDER ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _row(name: str, folder: Path, reference: Path) -> str:
    from sqlgrpo.evaluation.metrics import compare_runs, read_records

    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    records = list(read_records(folder / "predictions.jsonl").values())
    rows = [r for r in records if r.get("gold_kind") == "select_rows"]
    ex_rows = sum(bool(r["match"]) for r in rows) / len(rows) if rows else float("nan")
    words = statistics.mean(len(r["raw_output"].split()) for r in records) if records else 0.0
    cells = [
        name,
        str(metrics["n"]),
        f"{metrics.get('format_rate_strict', metrics['format_rate']):.3f}",
        f"{metrics['executable_rate']:.3f}",
        f"**{metrics['execution_accuracy']:.3f}**",
        f"{ex_rows:.3f}",
        f"{words:.0f}",
    ]
    if folder.resolve() == reference.resolve():
        cells.append("reference")
    else:
        cmp = compare_runs(reference, folder)
        delta = (cmp.accuracy_b or 0.0) - (cmp.accuracy_a or 0.0)
        cells.append(
            f"{delta * 100:+.1f} pts (+{cmp.gained} / -{cmp.lost} of {cmp.n_shared}, "
            f"p = {cmp.p_value:.2g})"
        )
    return "| " + " | ".join(cells) + " |"


def table(reference: Path, runs: list[tuple[str, Path]]) -> str:
    """The markdown table."""
    header = (
        "| model | n | strict format | executable | EX | EX (non-empty SELECT golds) "
        "| words per output | EX vs reference (paired) |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---|"]
    lines += [_row(name, folder, reference) for name, folder in runs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="evaluation folder the others pair against")
    parser.add_argument("runs", nargs="+", help="NAME=FOLDER evaluation folders")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    runs = []
    for item in args.runs:
        name, sep, folder = item.partition("=")
        if not sep:
            parser.error(f"expected NAME=FOLDER, got {item!r}")
        runs.append((name, Path(folder)))
    for _, folder in [("reference", args.reference), *runs]:
        if not (folder / "metrics.json").is_file():
            parser.error(f"{folder}: no metrics.json (run `sqlgrpo eval --out {folder}` first)")
    print(table(args.reference, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
