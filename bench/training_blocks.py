"""Markdown table of a GRPO run's logged curves, averaged over blocks of steps.

Reads the run's ``metrics.jsonl`` (one record per logged step; a step logged twice, as after
a resume, counts once, its last record) and prints, per block of ``--block`` steps, the mean
total reward, each reward's mean, the sampled exact-match and SQL error rates, the share of
sampled groups that were flat (all completions scored alike; with ``resample_flat_batches`` a
flat group is drawn again, so this counts the redrawn ones too), the hack monitors and the mean
completion length; then the run's step count, the steps that made no update (their group
still flat), the batches resampled and the median step time. The tables of docs/ablation.md's training curves come from it.

Usage: python bench/training_blocks.py RUN_DIR [--block 50]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

from sqlgrpo.data.jsonl import read_jsonl

#: (column title, metric key) in the order printed.
COLUMNS = [
    ("total", "reward"),
    ("strict format", "rewards/strict_format_reward_func/mean"),
    ("soft format", "rewards/soft_format_reward_func/mean"),
    ("execution", "rewards/execute_query_reward_func/mean"),
    ("reasoning", "rewards/reasoning_quality_reward/mean"),
    ("complexity", "rewards/complexity_reward/mean"),
    ("exact-match rate", "execute_query_reward_func/exact_rate"),
    ("SQL error rate", "execute_query_reward_func/error_rate"),
    ("flat groups", "frac_reward_zero_std"),
    ("run-on", "monitors/run_on"),
    ("bare SELECT", "monitors/bare_select"),
    ("GROUP BY key", "monitors/group_by_key"),
    ("mean length", "completions/mean_length"),
]


def step_records(path: Path) -> list[dict]:
    """The training-step records of ``metrics.jsonl`` (those with a ``reward``), one per
    step (the last when a step was logged again), in step order."""
    by_step: dict[int, dict] = {}
    for record in read_jsonl(path):
        if "reward" in record and "step" in record:
            by_step[int(record["step"])] = record
    return [by_step[s] for s in sorted(by_step)]


def _mean(records: list[dict], key: str) -> float:
    values = [float(r[key]) for r in records if isinstance(r.get(key), int | float)]
    values = [v for v in values if math.isfinite(v)]
    return statistics.mean(values) if values else math.nan


def table(records: list[dict], block: int) -> str:
    """The markdown table, one row per block of ``block`` steps (columns no record logs are
    left out)."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    columns = [(t, k) for t, k in COLUMNS if any(k in r for r in records)]
    lines = [
        "| steps | " + " | ".join(t for t, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for lo in range(0, len(records), block):
        part = records[lo : lo + block]
        cells = []
        for title, key in columns:
            value = _mean(part, key)
            cells.append(f"{value:.0f}" if title == "mean length" else f"{value:.2f}")
        lines.append(f"| {part[0]['step']}-{part[-1]['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(records: list[dict]) -> str:
    """Steps logged, steps that made no update, batches resampled, median step time."""
    if any("skipped_backward" in r for r in records):
        flat = sum(int(r.get("skipped_backward") or 0) for r in records)
    else:  # logs from before the trainer counted its skips: a step whose group was all flat
        flat = sum(r.get("frac_reward_zero_std") == 1.0 for r in records)
    resampled = sum(int(r.get("resampled_batches") or 0) for r in records)
    times = [float(r["step_time"]) for r in records if isinstance(r.get("step_time"), int | float)]
    median = f"{statistics.median(times):.1f} s" if times else "not logged"
    return (
        f"{len(records)} steps; {flat} made no update (group flat); {resampled} batches resampled; "
        f"median step {median}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a `sqlgrpo train` output folder")
    parser.add_argument("--block", type=int, default=50, help="steps per row (default 50)")
    args = parser.parse_args(argv)
    path = args.run_dir / "metrics.jsonl"
    if not path.is_file():
        parser.error(f"{path}: not found (is {args.run_dir} a training run's folder?)")
    records = step_records(path)
    if not records:
        parser.error(f"{path}: no training step logged a reward")
    print(table(records, args.block))
    print()
    print(summary(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
