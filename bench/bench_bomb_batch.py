"""How long one execution-reward call takes when its whole batch is bombs (issue 37).

Times ``ExecutionReward`` as TRL calls it on 64 distinct bombs: single-instruction ``instr``
bombs (each needs its worker killed) and interruptible runaway cross joins (run in this
process), at ``timeout_s`` 0.5 + ``kill_margin_s`` 0.5 and at the defaults 2 + 0.5. The pool is
warmed first with a harmless call (worker start-up is not part of the bound). Before issue 37
the isolated bombs ran one after another: about 64 x 2.6 s = 165 s at the defaults.

Usage: python bench/bench_bomb_batch.py [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks_md import write_section

REPO = Path(__file__).resolve().parents[1]
CONTEXT = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); "
    "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');"
)
GOLD = "SELECT name FROM t WHERE id = 2"
BOMBS = {
    "isolated (instr, worker killed)": lambda i: (
        f"SELECT instr(printf('%.*c', 999999, 'a'), printf('%.*c', {499990 - i}, 'a') || 'b')"
    ),
    "in-process (20-way cross join)": lambda i: (
        "SELECT count(*) FROM " + ", ".join(f"t t{k}" for k in range(20)) + f" WHERE t0.id > {-i}"
    ),
}


def _call(reward, sqls: list[str]) -> float:
    n = len(sqls)
    completions = [f"<reasoning>\nx\n</reasoning>\n<sql>\n{sql}\n</sql>" for sql in sqls]
    started = time.monotonic()
    rewards = reward(
        prompts=["q"] * n, completions=completions, sql=[GOLD] * n, sql_context=[CONTEXT] * n
    )
    elapsed = time.monotonic() - started
    assert len(rewards) == n
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from sqlgrpo.rewards.execution import ExecutionReward
    from sqlgrpo.sql import SandboxLimits

    rows = []
    for timeout_s, margin in ((0.5, 0.5), (2.0, 0.5)):
        reward = ExecutionReward(limits=SandboxLimits(timeout_s=timeout_s, kill_margin_s=margin))
        bound = 2 * timeout_s + margin
        for kind, bomb in BOMBS.items():
            times = []
            for repeat in range(args.repeats):
                _call(reward, [f"SELECT name FROM t WHERE name LIKE '{c}%'" for c in "abcd"])
                time.sleep(1.0)  # replacements of the last call's killed workers start up
                times.append(_call(reward, [bomb(i + 64 * repeat) for i in range(64)]))
            rows.append((timeout_s, margin, kind, statistics.median(times), max(times), bound))
            print(rows[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "64 distinct bombs in one `ExecutionReward` call, pool warmed first, "
        f"{args.repeats} calls each: `python bench/bench_bomb_batch.py` "
        f"({os.cpu_count()} CPUs, load average {load:.1f} when measured: the machine is shared).",
        "",
        "| timeout_s + kill_margin_s | bombs | median s | max s | bound 2 x timeout + margin |",
        "|---|---|---:|---:|---:|",
    ]
    for timeout_s, margin, kind, median, worst, bound in rows:
        lines.append(
            f"| {timeout_s:g} + {margin:g} | {kind} | {median:.2f} | {worst:.2f} | {bound:g} |"
        )
    lines += [
        "",
        "Before issue 37 the isolated bombs of a batch ran one after another, each costing its "
        "allowance plus a worker restart: 8 instr bombs in one call took 21.5 s at the defaults "
        "(measured on the previous commit 1db2014, same machine, same session; the issue "
        "measured 20.6 s), so 64 about 165 s.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bench_bomb_batch", "A batch of bombs in one reward call (issue 37)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
