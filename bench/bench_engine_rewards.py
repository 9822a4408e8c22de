"""Execution-reward throughput on SQLite against DuckDB (``ExecutionReward(engine="duckdb")``).

100 gretel samples x 8 completions (the gold, a changed constant, a wrong table, a syntax error,
repeated), scored as TRL calls the reward: one call over the whole batch. *Cold*: fresh reward
objects (every database built, SQLite in memory or copied into DuckDB); *warm*: the same batch
again on the same objects (databases and gold results cached, predictions run again). Writes
its section of BENCHMARKS.md.

Usage: python bench/bench_engine_rewards.py [--data PATH] [--samples 100] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench_rewards import _change_constant, _first_table
from benchmarks_md import write_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "gretel" / "train.jsonl"


def _batch(rows: list[dict]) -> tuple[list[str], dict[str, list]]:
    completions, golds, contexts = [], [], []
    for row in rows:
        gold, context = row["sql"], row["sql_context"]
        variants = [
            gold,
            _change_constant(gold),
            f"SELECT * FROM {_first_table(context)}_missing",
            "SELEC broken",
        ]
        for sql in variants * 2:
            completions.append(f"<reasoning>\nstep\n</reasoning>\n<sql>\n{sql}\n</sql>")
            golds.append(gold)
            contexts.append(context)
    return completions, {"sql": golds, "sql_context": contexts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from sqlgrpo.rewards.execution import ExecutionReward

    rows = [json.loads(line) for line in Path(args.data).open() if line.strip()][: args.samples]
    completions, columns = _batch(rows)
    n = len(completions)
    results: dict[str, dict[str, float]] = {}
    scores: dict[str, list[float]] = {}
    for engine in ("sqlite", "duckdb"):
        cold, warm = [], []
        for _ in range(args.repeats):
            reward = ExecutionReward(engine=engine)
            started = time.perf_counter()
            scores[engine] = reward(None, completions, **columns)
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            reward(None, completions, **columns)
            warm.append(time.perf_counter() - started)
            reward.checker.cache.clear()
        results[engine] = {
            "cold_ms": 1000 * statistics.median(cold) / n,
            "warm_ms": 1000 * statistics.median(warm) / n,
        }
        print(engine, {k: round(v, 3) for k, v in results[engine].items()})
    agree = sum(a == b for a, b in zip(scores["sqlite"], scores["duckdb"], strict=True))
    print(f"same reward on {agree}/{n} completions")
    if args.no_write:
        return 0
    lines = [
        f"`python bench/bench_engine_rewards.py`: the execution reward over {len(rows)} gretel "
        f"samples x 8 completions ({n}: the gold, a changed constant, a missing table, a syntax "
        "error, twice each), one call per batch as TRL makes it; median of "
        f"{args.repeats} runs. Cold = fresh reward objects (every database built: SQLite in "
        "memory, DuckDB copied from it); warm = the same batch again (databases and gold "
        "results cached, predictions run again; identical predictions within a call run once).",
        "",
        "| engine | cold ms / completion | warm ms / completion |",
        "|---|---:|---:|",
    ]
    for engine, r in results.items():
        lines.append(f"| {engine} | {r['cold_ms']:.3f} | {r['warm_ms']:.3f} |")
    lines += [
        "",
        f"The two engines gave the same reward on {agree} of {n} completions. DuckDB runs in "
        'the trainer\'s process here (`isolation="inline"`). Measured on a shared 2-core '
        "machine (four agents working at once): compare the rows with each other, not with "
        "other sections.",
    ]
    write_section("engine_rewards", "Execution reward on DuckDB (issue 36)", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
