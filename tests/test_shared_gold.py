"""Every gold query of the shared gretel sample and Spider subset, run in the sandbox.

The expected counts come from each dataset's ``exec_check.json`` (plain
Python sqlite3 runs); the sandbox must agree with them, except that gretel
contexts SQLite rejects may now build after the sqlglot fallback.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sqlgrpo.sql import ExecutionChecker, SandboxLimits

# exec_check.json ran with a 30 s limit; use the same so a busy machine agrees.
LIMITS = SandboxLimits(timeout_s=30.0)


def test_gretel_gold_queries_match_exec_check(gretel_train_path: Path) -> None:
    check = json.loads((gretel_train_path.parent / "exec_check.json").read_text())
    listed = {f["line_index"]: f for f in check["failures"]}
    rows = [json.loads(line) for line in gretel_train_path.read_text().splitlines()]
    assert len(rows) == check["rows"]
    checker = ExecutionChecker(limits=LIMITS)
    failed: dict[int, str] = {}
    transpiled: list[int] = []
    kinds: Counter[str] = Counter()
    for index, row in enumerate(rows):
        gold = checker.gold_result(row["sql"], sql_context=row["sql_context"])
        kinds[_kind(gold)] += 1
        if checker.database(sql_context=row["sql_context"]).diagnostics:
            transpiled.append(index)
        if not gold.ok:
            failed[index] = gold.error_message or ""
    # Nothing fails that plain SQLite ran; every failing gold query still fails.
    assert set(failed) <= set(listed), {i: failed[i] for i in set(failed) - set(listed)}
    gold_stage = {i for i, f in listed.items() if f["stage"] == "gold_sql"}
    assert gold_stage <= set(failed)
    # Contexts that were rescued are exactly the listed context failures that now run.
    rescued = set(listed) - set(failed)
    assert rescued <= {i for i, f in listed.items() if f["stage"] == "sql_context"}
    assert rescued <= set(transpiled)
    assert len(rows) - len(failed) == check["ok"] + len(rescued)
    print(
        f"gretel: {len(rows) - len(failed)}/{len(rows)} gold ok, rescued {sorted(rescued)}, {dict(kinds)}"
    )


def test_spider_gold_queries_match_exec_check(spider_subset_path: Path) -> None:
    check = json.loads((spider_subset_path / "exec_check.json").read_text())
    entries = json.loads((spider_subset_path / "train.json").read_text())
    assert len(entries) == check["rows"]
    checker = ExecutionChecker(limits=LIMITS)
    failed: dict[int, str] = {}
    empty = 0
    for index, entry in enumerate(entries):
        db_path = spider_subset_path / "database" / entry["db_id"] / f"{entry['db_id']}.sqlite"
        gold = checker.gold_result(entry["query"], db_path=str(db_path))
        if not gold.ok:
            failed[index] = gold.error_message or ""
        elif not gold.rows:
            empty += 1
    assert sorted(failed) == sorted(f["index"] for f in check["failures"]), failed
    for failure in check["failures"]:
        assert failure["error"] in failed[failure["index"]]
    assert len(entries) - len(failed) == check["ok"]
    assert empty == check["empty_result"]
    print(f"spider: {len(entries) - len(failed)}/{len(entries)} gold ok, {empty} empty")


def _kind(gold) -> str:
    from sqlgrpo.sql import gold_kind

    return gold_kind(gold)
