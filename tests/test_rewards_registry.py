"""Public names, registry, profiles, pickling and completion_text."""

from __future__ import annotations

import pickle

import pytest

import sqlgrpo.rewards as rewards
from sqlgrpo.rewards import (
    REWARD_PROFILES,
    REWARDS,
    ComplexityReward,
    ExecutionReward,
    FormatReward,
    ReasoningReward,
    build_profile,
    build_reward,
    build_rewards,
    completion_text,
)
from sqlgrpo.sql.sandbox import SandboxLimits

SPEC_NAMES = {
    "soft_format_reward_func": 1.0,
    "strict_format_reward_func": 1.0,
    "complexity_reward": 0.6,
    "reasoning_quality_reward": 0.7,
    "execute_query_reward_func": 1.2,
}
COMPLETION = (
    "<reasoning>\nFirst, the wind_farms table.\nThen filter the country column.\n</reasoning>\n"
    "<sql>SELECT name FROM wind_farms WHERE country = 'USA'</sql>"
)
COLUMNS = {
    "sql": ["SELECT name FROM wind_farms WHERE country = 'USA'"],
    "sql_context": [
        "CREATE TABLE wind_farms (name TEXT, country TEXT); INSERT INTO wind_farms VALUES ('a', 'USA');"
    ],
}


@pytest.mark.parametrize(("name", "weight"), SPEC_NAMES.items())
def test_spec_names_weights_and_trl_name(name: str, weight: float) -> None:
    from trl.trainer.utils import get_callable_name

    func = getattr(rewards, name)
    assert func.__name__ == name
    assert get_callable_name(func) == name
    assert func.weight == weight


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_reward_pickles_round_trip_and_scores_the_same(name: str) -> None:
    func = getattr(rewards, name)
    before = func(["p"], [COMPLETION], **COLUMNS)
    copy = pickle.loads(pickle.dumps(func))
    assert type(copy) is type(func) and copy.__name__ == name and copy.weight == func.weight
    assert copy(["p"], [COMPLETION], **COLUMNS) == before
    assert all(isinstance(x, float) for x in before)


def test_completion_text_forms() -> None:
    assert completion_text("abc") == "abc"
    assert completion_text("abc", "<reasoning>\n") == "<reasoning>\nabc"
    assert completion_text([{"role": "assistant", "content": "abc"}]) == "abc"
    assert (
        completion_text(
            [
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ]
        )
        == "ab"
    )
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text(None) == ""


def test_build_reward_by_name_and_alias() -> None:
    reward = build_reward("execution", weight=2.0, rule="spider", state_match=True)
    assert isinstance(reward, ExecutionReward)
    assert (reward.weight, reward.rule, reward.state_match, reward.__name__) == (
        2.0,
        "spider",
        True,
        "execute_query_reward_func",
    )
    assert isinstance(build_reward("reasoning_quality_reward"), ReasoningReward)
    assert build_reward("strict_format").strict is True
    assert build_reward("complexity").weight == 0.6
    assert build_reward("soft_format", name="fmt").__name__ == "fmt"
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        build_reward("nope")
    with pytest.raises(ValueError, match="does not take option"):
        build_reward("complexity", strict=True)


def test_registry_covers_every_class() -> None:
    classes = {cls for cls, _ in REWARDS.values()}
    assert classes == {FormatReward, ComplexityReward, ReasoningReward, ExecutionReward}


def test_spec_profile_order_and_weights() -> None:
    funcs = build_profile("spec")
    assert [f.__name__ for f in funcs] == [
        "soft_format_reward_func", "execute_query_reward_func", "reasoning_quality_reward", "complexity_reward",
    ]  # fmt: skip
    assert [f.weight for f in funcs] == [1.0, 1.2, 0.7, 0.6]


def test_strict_profile_gates_and_routes_options() -> None:
    limits = SandboxLimits(timeout_s=0.5)
    funcs = build_profile(
        "strict", prefill="<reasoning>\n", rule="bird", limits=limits, weights={"execution": 3.0}
    )
    assert [f.__name__ for f in funcs] == [
        "strict_format_reward_func", "execute_query_reward_func", "reasoning_quality_reward", "complexity_reward",
    ]  # fmt: skip
    execution = funcs[1]
    assert execution.strict and execution.rule == "bird" and execution.limits == limits
    assert execution.weight == 3.0
    assert all(f.prefill == "<reasoning>\n" for f in funcs)
    assert set(REWARD_PROFILES) == {"spec", "strict", "spec_gated", "strict_gated", "progress"}


def test_spec_gated_profile_gates_reasoning_and_shares_one_checker() -> None:
    limits = SandboxLimits(timeout_s=0.5)
    funcs = build_profile("spec_gated", rule="spider", state_match=True, limits=limits)
    assert [f.weight for f in funcs] == [1.0, 1.2, 0.7, 0.6]
    execution, reasoning = funcs[1], funcs[2]
    assert reasoning.gate == "executes" and not execution.strict
    gate = reasoning.execution
    assert (gate.rule, gate.state_match, gate.limits) == ("spider", True, limits)
    assert gate.checker is execution.checker  # one set of database and gold caches
    # the spec profile's reasoning reward has no gate and runs no SQL
    assert build_profile("spec")[2].execution is None


def test_strict_gated_profile_needs_a_correct_answer_for_reasoning_credit() -> None:
    funcs = build_profile("strict_gated", rule="seed")
    assert [f.__name__ for f in funcs] == [
        "strict_format_reward_func", "execute_query_reward_func", "reasoning_quality_reward", "complexity_reward",
    ]  # fmt: skip
    execution, reasoning = funcs[1], funcs[2]
    assert execution.strict and reasoning.gate == "correct"
    assert reasoning.execution.checker is execution.checker
    context = "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2);"
    reasoning_text = "Count the rows of table t with COUNT(*) FROM t."
    right, wrong = (
        f"<reasoning>\n{reasoning_text}\n</reasoning>\n<sql>\n{sql}\n</sql>"
        for sql in ("SELECT COUNT(*) FROM t;", "SELECT a FROM t;")
    )
    kwargs = {"sql_context": [context] * 2, "sql": ["SELECT COUNT(*) FROM t;"] * 2}
    scores = reasoning(prompts=["q", "q"], completions=[right, wrong], **kwargs)
    assert scores[0] > 0 and scores[1] == 0.0  # the wrong SQL runs, but is not correct


def test_profile_errors() -> None:
    with pytest.raises(ValueError, match="unknown reward profile"):
        build_profile("fancy")
    with pytest.raises(ValueError, match="takes option"):
        build_profile("spec", colour="red")
    with pytest.raises(ValueError, match="no reward"):
        build_profile("spec", weights={"strict_format": 1.0})


def test_profiles_score_a_trl_style_batch() -> None:
    for name in REWARD_PROFILES:
        for func in build_profile(name):
            out = func(["p"], [COMPLETION], trainer_state=None, completion_ids=[[1]], **COLUMNS)
            assert len(out) == 1 and out[0] >= 0.0


def test_named_list_routes_execution_options_once() -> None:
    limits = SandboxLimits(timeout_s=1.0)
    built = build_rewards(
        ["format", "execute_query_reward_func", "complexity"],
        [2.0, None, 0.3],
        prefill="<reasoning>\n",
        rule="spider",
        state_match=True,
        limits=limits,
    )
    names = [r.__name__ for r in built]
    assert names == ["soft_format_reward_func", "execute_query_reward_func", "complexity_reward"]
    assert [r.weight for r in built] == [2.0, 1.2, 0.3]
    assert all(r.prefill == "<reasoning>\n" for r in built)
    execution = built[1]
    assert (execution.rule, execution.state_match, execution.limits) == ("spider", True, limits)
    # a list without the execution reward takes the execution options without complaint
    assert len(build_rewards(["complexity"], rule="bird")) == 1
    with pytest.raises(ValueError, match="1 weight"):
        build_rewards(["format", "complexity"], [1.0])
