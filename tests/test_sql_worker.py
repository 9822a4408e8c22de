"""Issue 18: single-instruction and memory bombs are stopped by the worker within the
deadline, the batch's other results are unaffected, and trusted contexts have their own limits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sqlgrpo.sql import ErrorClass, ExecutionChecker, SandboxLimits
from sqlgrpo.sql.database import ContextLimits, Database
from sqlgrpo.sql.isolation import needs_isolation

FIXTURES = Path(__file__).parent / "fixtures"
BOMBS = json.loads((FIXTURES / "sql_bomb_cases.json").read_text())
LIMITS = SandboxLimits(timeout_s=BOMBS["timeout_s"], kill_margin_s=BOMBS["kill_margin_s"])
#: Start-up of a replacement worker and a loaded CI machine, on top of the deadline.
SLACK_S = 1.5
GOOD = ["SELECT name FROM t WHERE id = 2", "SELECT count(*) FROM t", "SELECT nme FROM t"]
GOLD = "SELECT name FROM t WHERE id = 2"


def _sql(case: dict) -> str:
    return "".join(text * count for text, count in case["parts"])


@pytest.fixture(scope="module")
def checker() -> ExecutionChecker:
    return ExecutionChecker(limits=LIMITS)


def test_every_bomb_is_routed_to_the_worker() -> None:
    for case in BOMBS["cases"]:
        assert needs_isolation(_sql(case)), case["name"]
    assert not needs_isolation("SELECT name FROM t WHERE id = 2 ORDER BY name", row_count=10)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", BOMBS["cases"], ids=lambda c: c["name"])
def test_bomb_is_stopped_within_the_deadline(checker: ExecutionChecker, case: dict) -> None:
    """Through the execution checker, as the reward runs it."""
    started = time.monotonic()
    outcome = checker.check(_sql(case), GOLD, sql_context=BOMBS["context"])
    elapsed = time.monotonic() - started
    assert not outcome.executed, "a bomb must never count as a query that ran"
    allowed = {ErrorClass(a) for a in case["error_class"]}
    assert outcome.error_class in allowed, outcome.pred.error_message
    assert elapsed <= LIMITS.timeout_s + LIMITS.kill_margin_s + SLACK_S, elapsed


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", BOMBS["cases"][:3], ids=lambda c: c["name"])
def test_database_run_stops_a_bomb_itself(case: dict) -> None:
    """Database.run routes the statement to the worker by itself (no checker needed)."""
    db = Database.from_context(BOMBS["context"], LIMITS)
    started = time.monotonic()
    result = db.run(_sql(case), capture_state=True)
    assert not result.ok and result.error_class in {ErrorClass(a) for a in case["error_class"]}
    assert time.monotonic() - started <= LIMITS.timeout_s + LIMITS.kill_margin_s + SLACK_S
    assert db.run("SELECT count(*) FROM t").rows == [(3,)]


@pytest.mark.timeout(120)
def test_bombs_in_a_batch_leave_the_other_results_unaffected() -> None:
    checker = ExecutionChecker(limits=LIMITS)
    context = BOMBS["context"]
    alone = [checker.check(sql, GOLD, sql_context=context) for sql in GOOD]
    bombs = [_sql(c) for c in BOMBS["cases"][:2]]  # both end with the worker killed
    batch = [bombs[0], GOOD[0], bombs[1], GOOD[1], GOOD[2]]
    outcomes = checker.check_many([(sql, GOLD, context, None) for sql in batch])
    assert [o.error_class for o in outcomes[::2][:2]] == [ErrorClass.TIMEOUT] * 2
    got = [outcomes[1], outcomes[3], outcomes[4]]
    for one, expected in zip(got, alone, strict=True):
        assert (one.executed, one.match, one.similarity, one.error_class) == (
            expected.executed,
            expected.match,
            expected.similarity,
            expected.error_class,
        )
    # risky but harmless statements still run, in the replacement worker
    fine = checker.check("SELECT name FROM t WHERE name LIKE 'b%'", GOLD, sql_context=context)
    assert fine.executed and fine.match


def test_an_overrun_is_a_timeout_never_a_statement_that_ran() -> None:
    # inline isolation: a statement finishing past the deadline inside one instruction
    limits = SandboxLimits(timeout_s=0.05, isolation="inline")
    db = Database.from_context(BOMBS["context"], limits)
    sql = "SELECT instr(printf('%.*c', 999999, 'a'), printf('%.*c', 60000, 'a') || 'b')"
    result = db.run(sql)
    assert not result.ok and result.error_class is ErrorClass.TIMEOUT, result
    assert result.elapsed_s > limits.timeout_s


def test_result_size_is_checked_row_by_row() -> None:
    limits = SandboxLimits(max_result_bytes=1_000_000, isolation="inline")
    db = Database.from_context(BOMBS["context"], limits)
    wide = "SELECT " + ", ".join(["printf('%.*c', 400000, 'a')"] * 3)  # one row of 1.2 MB
    assert db.run(wide).error_class is ErrorClass.RESOURCE_LIMIT
    assert db.run("SELECT printf('%.*c', 400000, 'a')").ok


def test_memory_budget_stops_a_wide_row() -> None:
    limits = SandboxLimits(max_memory_bytes=64 * 1024 * 1024, isolation="inline")
    db = Database.from_context(BOMBS["context"], limits)
    result = db.run("SELECT " + ", ".join(["printf('%.*c', 999999, 'a')"] * 100))
    assert result.error_class is ErrorClass.RESOURCE_LIMIT, result.error_message


def test_a_context_statement_over_the_model_sql_limit_builds() -> None:
    values = ", ".join(f"({i}, 'name {i}')" for i in range(8000))
    context = f"CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES {values};"
    assert len(context) > SandboxLimits().max_sql_length
    db = Database.from_context(context, LIMITS)
    assert db.build_error is None
    assert db.run("SELECT count(*) FROM t").rows == [(8000,)]
    # the untrusted limit still holds for statements run on it
    assert db.run("SELECT 1 " + " " * 100_001).error_class is ErrorClass.RESOURCE_LIMIT


def test_context_size_guard_comes_before_any_work() -> None:
    limits = ContextLimits(max_context_chars=10_000)
    started = time.monotonic()
    db = Database.from_context("CREATE TABLE t (x INT);" + "-- pad\n" * 5000, context_limits=limits)
    assert db.build_error is not None and "max_context_chars" in db.build_error
    assert time.monotonic() - started < 1.0


def test_long_rejected_context_statement_is_not_handed_to_sqlglot() -> None:
    bad = "CREATE TABLE t (x INT) ENGINE=InnoDB COMMENT '" + "x" * 200_000 + "' BOGUS;"
    started = time.monotonic()
    db = Database.from_context(bad)
    assert db.build_error is not None and "not transpiled" in db.build_error
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("sql", "rows", "isolated"),
    [
        ("SELECT name FROM t WHERE id = 2", 10, False),
        ("SELECT a.name FROM t a JOIN t b ON a.id = b.id ORDER BY a.name", 10, False),
        ("SELECT a.id FROM t a, t b, t c, t d, t e, t f ORDER BY random()", 10, True),
        ("SELECT a.id FROM t a, t b ORDER BY random()", 1_000_000, True),
        ("SELECT a.id FROM t a, t b, t c, t d, t e, t f", 10, False),  # no sort: interruptible
        ("SELECT name FROM t WHERE name LIKE 'a%'", 10, True),
        ("SELECT first || ' ' || last FROM t", 10, True),
    ],
)
def test_which_statements_go_to_the_worker(sql: str, rows: int, isolated: bool) -> None:
    assert needs_isolation(sql, rows) is isolated


def test_spider_file_statements_run_in_the_worker(spider_subset_path: Path) -> None:
    path = spider_subset_path / "database" / "farm" / "farm.sqlite"
    db = Database.from_path(path, LIMITS)
    plain = db.run("SELECT count(*) FROM farm")
    risky = db.run("SELECT count(*) FROM farm WHERE 'x' LIKE '%'")
    assert plain.ok and risky.ok and plain.rows == risky.rows
    bomb = db.run("SELECT instr(printf('%.*c', 999999, 'a'), printf('%.*c', 499990, 'a') || 'b')")
    assert bomb.error_class is ErrorClass.TIMEOUT


def test_without_a_worker_risky_statements_still_run_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    limits = SandboxLimits(timeout_s=0.77)  # a configuration no other test started a worker for
    db = Database.from_context(BOMBS["context"], limits)
    result = db.run("SELECT name FROM t WHERE name LIKE 'b%'")
    assert result.ok and result.rows == [("b",)]


def test_prestart_starts_the_workers_the_first_call_uses() -> None:
    """``ExecutionReward.prestart()`` starts its pool's processes before any scoring; the first
    isolated statement then runs in one of them (none started, none replaced)."""
    from sqlgrpo.rewards.execution import ExecutionReward
    from sqlgrpo.sql.worker import shared_pool

    limits = SandboxLimits(timeout_s=1.75, workers=2)  # a pool of its own
    pool = shared_pool(limits)
    try:
        assert all(worker.proc is None for worker in pool.workers)
        reward = ExecutionReward(limits=limits)
        reward.prestart()
        started = [worker.proc.pid for worker in pool.workers if worker.proc is not None]
        assert len(started) == 2
        context = "CREATE TABLE t (s TEXT); INSERT INTO t VALUES ('abc');"
        sql = "SELECT instr(s, 'b') FROM t"
        assert needs_isolation(sql)
        completion = f"<reasoning>r</reasoning>\n<sql>{sql}</sql>"
        scores = reward(None, [completion], sql=[sql], sql_context=[context])
        assert scores[0] > 1.0  # the gold itself, run in a worker
        assert [worker.proc.pid for worker in pool.workers if worker.proc] == started
        assert pool.restarts == 0
        inline = ExecutionReward(limits=SandboxLimits(timeout_s=1.75, isolation="inline"))
        inline.prestart()  # nothing to start: no pool for inline isolation
        assert shared_pool(inline.limits).workers[0].proc is None
    finally:
        pool.close()
