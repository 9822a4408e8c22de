"""Issue 37: a whole reward call is bounded however many bombs its batch holds (the isolated
statements run side by side on a pool of workers, under one deadline for the batch), and a
worker that ran out of memory is replaced, so a statement's class does not depend on what
ran before it."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from sqlgrpo.rewards.execution import ExecutionReward
from sqlgrpo.sql import ErrorClass, ExecutionChecker, SandboxLimits
from sqlgrpo.sql.database import Database
from sqlgrpo.sql.worker import pool_for

FIXTURES = Path(__file__).parent / "fixtures"
BOMBS = json.loads((FIXTURES / "sql_bomb_cases.json").read_text())
CONTEXT = BOMBS["context"]
GOLD = "SELECT name FROM t WHERE id = 2"
BOMB_CLASSES = {ErrorClass.TIMEOUT.value, ErrorClass.RESOURCE_LIMIT.value}


def _completion(sql: str) -> str:
    return f"<reasoning>\nstep\n</reasoning>\n<sql>\n{sql}\n</sql>"


def _instr_bomb(i: int) -> str:
    """Distinct single-instruction bombs (each needs the worker killed)."""
    return f"SELECT instr(printf('%.*c', 999999, 'a'), printf('%.*c', {499990 - i}, 'a') || 'b')"


def _cross_join_bomb(i: int) -> str:
    """Distinct interruptible runaway joins, run in this process (no sort, no risky function)."""
    sources = ", ".join(f"t t{k}" for k in range(20))
    return f"SELECT count(*) FROM {sources} WHERE t0.id > {-i}"


def _reward_call(
    reward: ExecutionReward, sqls: list[str]
) -> tuple[list[float], float, dict[str, list]]:
    """One call of the reward as TRL makes it: rewards, seconds, and the logged columns."""
    n = len(sqls)
    columns: dict[str, list] = {}
    started = time.monotonic()
    rewards = reward(
        prompts=["q"] * n,
        completions=[_completion(sql) for sql in sqls],
        sql=[GOLD] * n,
        sql_context=[CONTEXT] * n,
        log_extra=lambda name, values: columns.__setitem__(name.split("/")[-1], values),
    )
    return rewards, time.monotonic() - started, columns


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("timeout_s", "kill_margin_s"), [(0.5, 0.5), (2.0, 0.5)])
@pytest.mark.parametrize("bomb", [_instr_bomb, _cross_join_bomb], ids=["worker", "in_process"])
def test_64_bombs_in_one_reward_call_end_within_two_timeouts_and_the_margin(
    timeout_s: float, kill_margin_s: float, bomb
) -> None:
    limits = SandboxLimits(timeout_s=timeout_s, kill_margin_s=kill_margin_s)
    reward = ExecutionReward(limits=limits)
    harmless = [f"SELECT name FROM t WHERE name LIKE '{c}%'" for c in "abcd"]
    rewards, _, _ = _reward_call(reward, harmless)  # starts the pool, builds the database
    assert rewards[1] == pytest.approx(reward.weight)  # 'b%' is the gold's answer

    bombs = [bomb(i) for i in range(64)]
    database = reward.checker.database(sql_context=CONTEXT)
    assert [database.isolated(sql) for sql in bombs] == [bomb is _instr_bomb] * 64
    rewards, elapsed, columns = _reward_call(reward, bombs)
    assert elapsed <= 2 * timeout_s + kill_margin_s, elapsed
    assert rewards == [0.0] * 64  # no bomb ever counts as a query that ran
    assert set(columns["error_class"]) <= BOMB_CLASSES, columns["error_class"]

    # the pool still answers afterwards, with every result as it is alone
    again, _, _ = _reward_call(reward, harmless)
    assert again == rewards_alone(reward, harmless)


def rewards_alone(reward: ExecutionReward, sqls: list[str]) -> list[float]:
    """Each statement scored in a call of its own."""
    return [_reward_call(reward, [sql])[0][0] for sql in sqls]


@pytest.mark.timeout(120)
def test_a_batch_of_bombs_classifies_every_prediction() -> None:
    """Through ExecutionChecker's batch path: every bomb is a timeout or a resource limit,
    the harmless statements of the batch (in-process ones too) keep their own results."""
    limits = SandboxLimits(timeout_s=0.5, kill_margin_s=0.5)
    checker = ExecutionChecker(limits=limits)
    alone = checker.check("SELECT name FROM t WHERE id = 2", GOLD, sql_context=CONTEXT)
    batch = [_instr_bomb(i) for i in range(64)] + ["SELECT name FROM t WHERE id = 2"]
    started = time.monotonic()
    outcomes = checker.check_many([(sql, GOLD, CONTEXT, None) for sql in batch])
    assert time.monotonic() - started <= 2 * limits.timeout_s + limits.kill_margin_s
    for outcome in outcomes[:64]:
        assert not outcome.executed and outcome.error_class.value in BOMB_CLASSES
    assert (
        (outcomes[64].executed, outcomes[64].match)
        == (alone.executed, alone.match)
        == (
            True,
            True,
        )
    )


def test_without_a_batch_deadline_every_bomb_runs_to_its_own_limit() -> None:
    """math.inf (what evaluation uses): no statement is classified for its batch's sake."""
    limits = SandboxLimits(timeout_s=0.3, kill_margin_s=0.2, workers=2, batch_timeout_s=math.inf)
    checker = ExecutionChecker(limits=limits)
    batch = [_instr_bomb(i) for i in range(4)] + ["SELECT name FROM t WHERE name LIKE 'b%'"]
    outcomes = checker.check_many([(sql, GOLD, CONTEXT, None) for sql in batch])
    for outcome in outcomes[:4]:
        assert outcome.error_class is ErrorClass.TIMEOUT
        assert "batch" not in (outcome.pred.error_message or "")
    assert outcomes[4].match  # queued behind the bombs, it still ran


def test_batch_budget_defaults() -> None:
    assert SandboxLimits().batch_budget_s() == 4.0
    assert SandboxLimits(timeout_s=0.5, kill_margin_s=0.5).batch_budget_s() == 1.0
    assert SandboxLimits(timeout_s=0.1, kill_margin_s=0.5).batch_budget_s() == 0.6
    assert SandboxLimits(batch_timeout_s=10).batch_budget_s() == 10
    with pytest.raises(ValueError, match="batch_timeout_s"):
        SandboxLimits(batch_timeout_s=0)
    with pytest.raises(ValueError, match="workers"):
        SandboxLimits(workers=0)


@pytest.mark.timeout(120)
def test_the_900_column_bomb_is_classified_the_same_every_time() -> None:
    """The worker that ran out of memory is replaced, so the repeat does not run in a process
    whose allocator the first run changed (it took twice as long there, and became a
    timeout where the first was a resource_limit)."""
    case = next(c for c in BOMBS["cases"] if c["name"] == "900 one-MB printf columns")
    sql = "".join(text * count for text, count in case["parts"])
    limits = SandboxLimits(timeout_s=10.0, workers=1)
    db = Database.from_context(CONTEXT, limits)
    pool = pool_for(db)
    first = db.run(sql)
    assert first.error_class is ErrorClass.RESOURCE_LIMIT, first.error_message
    classes, restarts = [], []
    for _ in range(3):
        before = pool.restarts
        result = db.run(sql)
        classes.append(result.error_class)
        restarts.append(pool.restarts - before)
    assert classes == [first.error_class] * 3
    assert restarts == [1, 1, 1]  # each MemoryError retired its worker
    assert db.run("SELECT name FROM t WHERE name LIKE 'b%'").rows == [("b",)]
