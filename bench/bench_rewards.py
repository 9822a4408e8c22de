"""Reward scoring speed: the four rewards on 100 gretel samples x 8 completions.

Times each reward as TRL calls it (one call per reward over the whole batch of 800
completions, caches cold: fresh reward objects, nothing memoised), next to a naive
re-implementation of the seed's execution check that builds a database file in a temporary
directory for every completion, measured in the same run. Writes its section of BENCHMARKS.md.

Usage: python bench/bench_rewards.py [--data PATH] [--samples 100] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import write_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "gretel" / "train.jsonl"
BENCHMARKS = REPO / "BENCHMARKS.md"
#: Issue 2's target and the floor it was measured beside (ms per completion).
TARGET_MS, ISSUE_FLOOR_MS = 0.15, 0.045
KINDS = (
    "correct", "no_reasoning", "partial_constant", "partial_column", "wrong_table",
    "missing_column", "syntax_error", "unformatted",
)  # fmt: skip


def _first_table(context: str) -> str:
    match = re.search(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.`\"]+)", context, re.I)
    return match.group(1) if match else "missing_table"


def _change_constant(sql: str) -> str:
    """Wrong WHERE constant: the first string literal, else the last number, else a LIMIT."""
    if re.search(r"'[^']*'", sql):
        return re.sub(r"'[^']*'", "'zz_no_such_value'", sql, count=1)
    numbers = list(re.finditer(r"(?<![\w.])\d+(?![\w.])", sql))
    if numbers:
        m = numbers[-1]
        return sql[: m.start()] + str(int(m.group()) + 7) + sql[m.end() :]
    return sql.rstrip().rstrip(";") + " LIMIT 1"


def _drop_column(sql: str) -> str:
    """Drop the last output column of a SELECT (sqlglot), else count its rows."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return sql
    if isinstance(tree, exp.Select) and len(tree.expressions) > 1:
        tree.set("expressions", tree.expressions[:-1])
        return tree.sql(dialect="sqlite")
    if isinstance(tree, exp.Select):
        return f"SELECT COUNT(*) FROM ({sql.rstrip().rstrip(';')})"
    return _change_constant(sql)


def make_batch(rows: list[dict]) -> tuple[list[str], dict[str, list], list[str]]:
    """800 mixed completions, their reward columns, and the kind of each completion."""
    completions, kinds = [], []
    columns: dict[str, list] = {"sql": [], "sql_context": [], "sql_prompt": []}
    for row in rows:
        gold, context = row["sql"], row["sql_context"]
        table = _first_table(context)
        reasoning = (
            f"<reasoning>\nFirst, I look at the {table} table in the schema.\n"
            f"Then I select the columns the question asks for and filter the rows.\n</reasoning>\n"
        )
        variants = {
            "correct": f"{reasoning}<sql>\n{gold}\n</sql>",
            "no_reasoning": f"<sql>{gold}</sql>",
            "partial_constant": f"{reasoning}<sql>\n{_change_constant(gold)}\n</sql>",
            "partial_column": f"{reasoning}<sql>\n{_drop_column(gold)}\n</sql>",
            "wrong_table": f"{reasoning}<sql>\nSELECT * FROM {table}\n</sql>",
            "missing_column": f"{reasoning}<sql>\nSELECT no_such_column FROM {table}\n</sql>",
            "syntax_error": f"{reasoning}<sql>\n{gold.replace('SELECT', 'SELEC', 1).replace('FROM', 'FORM', 1)}\n</sql>",
            "unformatted": gold,
        }
        for kind in KINDS:
            completions.append(variants[kind])
            kinds.append(kind)
            columns["sql"].append(gold)
            columns["sql_context"].append(context)
            columns["sql_prompt"].append(row["sql_prompt"])
    return completions, columns, kinds


def clear_memo_caches() -> None:
    """Forget every memoised complexity and schema-name result (cold start)."""
    from sqlgrpo.sql.complexity import complexity_features, sql_complexity
    from sqlgrpo.sql.parsing import cached_schema_names

    complexity_features.cache_clear()
    sql_complexity.cache_clear()
    cached_schema_names.cache_clear()


def time_ours(
    completions: list[str], columns: dict[str, list]
) -> tuple[dict[str, float], list[list[float]], float, float]:
    """Seconds per reward for one cold pass (fresh profile), the rewards, the CPU seconds of
    that cold pass, and the seconds of a second, warm pass over the same batch (databases
    built and gold results cached)."""
    from sqlgrpo.rewards import build_profile

    clear_memo_caches()
    funcs = build_profile("spec")
    prompts = columns["sql_prompt"]
    seconds, outputs = {}, []
    cpu_start = time.process_time()
    for func in funcs:
        start = time.perf_counter()
        outputs.append(func(prompts, completions, trainer_state=None, **columns))
        seconds[func.__name__] = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    start = time.perf_counter()
    for func in funcs:
        func(prompts, completions, trainer_state=None, **columns)
    return seconds, outputs, cpu, time.perf_counter() - start


def naive_execution(completions: list[str], columns: dict[str, list]) -> list[float]:
    """The seed's approach: a fresh database file per completion, built from the context."""
    from sqlgrpo.sql.parsing import extract_sql

    rewards = []
    for text, gold, context in zip(
        completions, columns["sql"], columns["sql_context"], strict=True
    ):
        sql = extract_sql(text)
        if sql is None:
            rewards.append(0.0)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            conn = sqlite3.connect(str(Path(tmp) / "db.sqlite"))
            try:
                conn.executescript(context)
                gold_rows = conn.execute(gold).fetchall()
                try:
                    pred_rows = conn.execute(sql).fetchall()
                except sqlite3.Error:
                    rewards.append(0.0)
                    continue
                reward = 0.3
                if set(gold_rows) == set(pred_rows):
                    reward = 1.0
                rewards.append(reward * 1.2)
            except sqlite3.Error:
                rewards.append(0.0)
            finally:
                conn.close()
    return rewards


def floor_execution(completions: list[str], columns: dict[str, list]) -> tuple[float, float]:
    """Seconds for the bare minimum of execution checking, no sandbox and no scoring.

    Each context is built once in memory (not timed); per completion with SQL the timed
    work is a fresh connection, a backup copy, running the statement and fetching its rows.
    No gold query, no limits, no comparison: the floor any safe scorer sits above.
    """
    from sqlgrpo.sql.parsing import extract_sql

    bases: dict[str, sqlite3.Connection] = {}
    for context in columns["sql_context"]:
        if context not in bases:
            base = sqlite3.connect(":memory:", isolation_level=None)
            try:
                base.executescript(context)
            except sqlite3.Error:
                pass
            bases[context] = base
    work = [
        (bases[context], sql)
        for text, context in zip(completions, columns["sql_context"], strict=True)
        if (sql := extract_sql(text)) is not None
    ]
    start, cpu_start = time.perf_counter(), time.process_time()
    for base, sql in work:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        base.backup(conn)
        try:
            conn.execute(sql).fetchall()
        except (sqlite3.Error, sqlite3.Warning):
            pass
        conn.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    for base in bases.values():
        base.close()
    return elapsed, cpu


def run(data: Path, n_samples: int, repeats: int) -> dict:
    """Measure; returns the figures."""
    rows = []
    with data.open() as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) == n_samples:
                break
    completions, columns, kinds = make_batch(rows)
    n = len(completions)
    passes, floors = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine
        passes.append(time_ours(completions, columns))
        floors.append(floor_execution(completions, columns))
    per_reward = {name: statistics.median(p[0][name] for p in passes) for name in passes[0][0]}
    totals = sorted(sum(p[0].values()) for p in passes)
    cpu = statistics.median(p[2] for p in passes)
    warm = statistics.median(p[3] for p in passes)
    outputs = passes[0][1]
    start = time.perf_counter()
    naive_execution(completions, columns)
    naive_s = time.perf_counter() - start
    floor_s = min(f[0] for f in floors)
    floor_cpu = min(f[1] for f in floors)
    from sqlgrpo.rewards import build_profile

    names = [f.__name__ for f in build_profile("spec")]
    by_kind = {
        kind: {
            name: statistics.mean(out[i] for i in range(n) if kinds[i] == kind)
            for name, out in zip(names, outputs, strict=True)
        }
        for kind in KINDS
    }
    return {
        "samples": len(rows),
        "completions": n,
        "repeats": repeats,
        "ours_ms_per_completion": statistics.median(totals) * 1000 / n,
        "ours_ms_per_completion_best": totals[0] * 1000 / n,
        "per_reward_ms_per_completion": {k: v * 1000 / n for k, v in per_reward.items()},
        "warm_ms_per_completion": warm * 1000 / n,
        "naive_ms_per_completion": naive_s * 1000 / n,
        "floor_ms_per_completion": floor_s * 1000 / n,
        "cpu_ms_per_completion": cpu * 1000 / n,
        "floor_cpu_ms_per_completion": floor_cpu * 1000 / n,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "naive_execution_ms_per_completion": naive_s * 1000 / n,
        "by_kind": by_kind,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def render(result: dict, command: str) -> str:
    """Markdown for the BENCHMARKS.md section."""
    ours, naive = result["ours_ms_per_completion"], result["naive_ms_per_completion"]
    floor = result["floor_ms_per_completion"]
    lines = [
        f"Command: `{command}` (Python {result['python']}, SQLite {result['sqlite']}).",
        "",
        f"{result['samples']} gretel samples x 8 completions = {result['completions']} completions "
        f"({', '.join(KINDS)}). Each reward is called once on the whole batch, as TRL calls it, "
        f"with cold caches (fresh reward objects, memo caches cleared: every database is built "
        f"and every gold query run inside the timing); median of {result['repeats']} passes.",
        "",
        "| scorer | ms per completion |",
        "|---|---:|",
        f"| sqlgrpo, all four rewards (spec profile) | **{ours:.4f}** (best pass {result['ours_ms_per_completion_best']:.4f}) |",
    ]
    for name, value in result["per_reward_ms_per_completion"].items():
        lines.append(f"| &nbsp;&nbsp;{name} | {value:.4f} |")
    lines += [
        f"| sqlgrpo, second pass over the same batch (databases and gold results cached) | "
        f"{result['warm_ms_per_completion']:.4f} |",
        f"| naive baseline: execution only, a database file per completion in a temp dir | {naive:.3f} |",
        f"| floor: connect + backup copy + run the completion's SQL, contexts prebuilt, nothing else "
        f"(best of {result['repeats']}) | {floor:.4f} |",
        f"| CPU time (process time, robust to other load): sqlgrpo cold / floor | "
        f"{result['cpu_ms_per_completion']:.4f} / {result['floor_cpu_ms_per_completion']:.4f} |",
        "",
        f"Speed-up over the naive baseline, same run: **{naive / ours:.0f}x**. "
        f"Ours is **{ours / floor:.1f}x the floor** cold "
        f"({result['cpu_ms_per_completion'] / result['floor_cpu_ms_per_completion']:.1f}x in CPU "
        f"time) and {result['warm_ms_per_completion'] / floor:.1f}x warm. "
        f"Target (issue 2): at most {TARGET_MS} ms per completion, set where the floor measured "
        f"{ISSUE_FLOOR_MS} ms, i.e. {TARGET_MS / ISSUE_FLOOR_MS:.1f}x the floor. Absolute: "
        f"{'met' if ours <= TARGET_MS else 'NOT met'} on this machine, whose floor is "
        f"{floor / ISSUE_FLOOR_MS:.1f}x the issue's; relative to the floor measured side by "
        f"side: {'met' if ours / floor <= TARGET_MS / ISSUE_FLOOR_MS else 'NOT met'}. "
        f"Load average when measured: {result['load_average']:.1f} on {result['cpus']} CPUs "
        "(the machine is shared; timings scale with it).",
        "",
        "Mean reward per completion kind (weights: format 1.0, execution 1.2, reasoning 0.7, "
        "complexity 0.6):",
        "",
        "| kind | " + " | ".join(result["per_reward_ms_per_completion"]) + " |",
        "|---|" + "---:|" * len(result["per_reward_ms_per_completion"]),
    ]
    for kind, values in result["by_kind"].items():
        lines.append(f"| {kind} | " + " | ".join(f"{v:.3f}" for v in values.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="gretel jsonl")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"bench_rewards: skipped, no gretel sample at {args.data}")
        return 0
    sys.path.insert(0, str(REPO / "src"))
    result = run(args.data, args.samples, args.repeats)
    command = " ".join(
        ["python bench/bench_rewards.py", *(argv if argv is not None else sys.argv[1:])]
    )
    text = render(result, command)
    print(text)
    if not args.no_write:
        write_section("bench_rewards", "Reward scoring", text)
        print(f"\nwrote the bench_rewards section of {BENCHMARKS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
