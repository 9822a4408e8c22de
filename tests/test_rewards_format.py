"""Soft and strict format rewards (SPEC 2.1) on fixture completions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from sqlgrpo.rewards import FormatReward, soft_format_reward_func, strict_format_reward_func
from sqlgrpo.rewards.format import SOFT_FORMAT, soft_format_ok

CASES = json.loads((Path(__file__).parent / "fixtures" / "rewards_format.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["note"])
def test_format_rewards(case: dict) -> None:
    completions = [case["completion"]]
    assert soft_format_reward_func(None, completions) == [1.0 if case["soft"] else 0.0]
    assert strict_format_reward_func(None, completions) == [1.0 if case["strict"] else 0.0]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["note"])
def test_soft_format_is_the_spec_regex(case: dict) -> None:
    assert soft_format_ok(case["completion"]) == (
        SOFT_FORMAT.search(case["completion"]) is not None
    )


def test_soft_format_agrees_with_the_spec_regex_on_random_tag_soup() -> None:
    rng = random.Random(0)
    pieces = ["<reasoning>", "</reasoning>", "<sql>", "</sql>", " ", "\n", "x", "<sql", "g>"]
    for _ in range(50_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        assert soft_format_ok(text) == (SOFT_FORMAT.search(text) is not None), text


def test_chat_messages_prefill_weight_and_ignored_kwargs() -> None:
    reward = FormatReward(weight=2.5, prefill="<reasoning>\n")
    chat = [[{"role": "assistant", "content": "tables t\n</reasoning>\n<sql>SELECT 1</sql>"}]]
    parts = [
        [{"role": "assistant", "content": [{"type": "text", "text": "r</reasoning><sql>x</sql>"}]}]
    ]
    assert reward(["p"], chat, trainer_state=object(), sql=["x"], foo=[1]) == [2.5]
    assert reward(["p"], parts) == [2.5]
    assert FormatReward()(["p"], chat) == [0.0]  # without the prefill the opening tag is missing


def test_megabyte_hostile_completion_is_fast_enough_to_finish() -> None:
    text = "<reasoning>" * 100_000 + "</reasoning>" * 100_000 + "<sql>"
    assert soft_format_reward_func(None, [text]) == [0.0]
    assert strict_format_reward_func(None, [text]) == [0.0]


def test_log_metric_receives_the_match_rate() -> None:
    metrics: list[tuple[str, float]] = []
    soft_format_reward_func(
        None,
        ["<reasoning>a</reasoning><sql>b</sql>", "nope"],
        log_metric=lambda name, value: metrics.append((name, value)),
    )
    assert metrics == [("soft_format_reward_func/match_rate", 0.5)]
