"""Complexity reward (SPEC 2.2) from the fixture's hand-worked cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sqlgrpo.rewards import ComplexityReward, complexity_reward
from sqlgrpo.rewards.complexity import complexity_score

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "rewards_complexity.json").read_text())


def _wrap(sql: str | None) -> str:
    if sql is None:
        return "<reasoning>I could not decide.</reasoning>"
    return f"<reasoning>r</reasoning>\n<sql>\n{sql}\n</sql>"


@pytest.mark.parametrize("case", FIXTURE["reward"], ids=lambda c: c["note"])
def test_complexity_reward(case: dict) -> None:
    got = complexity_reward(["p"], [_wrap(case["gen"])], sql=[case["gold"]], sql_context=[None])
    assert got == [pytest.approx(case["expected"], abs=1e-12)]


def test_whole_batch_with_and_without_gold_column() -> None:
    cases = FIXTURE["reward"]
    completions = [_wrap(c["gen"]) for c in cases]
    got = complexity_reward(None, completions, sql=[c["gold"] for c in cases])
    assert got == [pytest.approx(c["expected"], abs=1e-12) for c in cases]
    no_gold = complexity_reward(None, [_wrap("SELECT * FROM t")])  # no sql column at all
    assert no_gold == [pytest.approx(0.1 * 0.6)]


def test_ratio_is_clamped() -> None:
    assert complexity_score(5000.0, 1.0) == pytest.approx(math.exp(-0.5 * math.log(1000) ** 2))
    assert complexity_score(1.0, 5000.0) == pytest.approx(math.exp(-0.5 * math.log(0.001) ** 2))


def test_weight_and_prefill() -> None:
    reward = ComplexityReward(weight=2.0, prefill="<reasoning>\n")
    completion = [{"role": "assistant", "content": "r</reasoning><sql>SELECT a FROM t</sql>"}]
    assert reward(None, [completion], sql=["SELECT a FROM t"]) == [2.0]


def test_column_length_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'sql' has 2 entries for 1 completions"):
        complexity_reward(None, ["x"], sql=["a", "b"])
