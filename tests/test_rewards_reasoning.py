"""Reasoning-quality reward (SPEC 2.3): components counted by hand in a fixture."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlgrpo.rewards import ReasoningReward, reasoning_quality_reward
from sqlgrpo.rewards.reasoning import reasoning_components
from sqlgrpo.sql.parsing import extract_reasoning, schema_names

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "rewards_reasoning.json").read_text())


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["name"])
def test_reasoning_reward(case: dict) -> None:
    got = reasoning_quality_reward(
        ["p"], [case["completion"]], sql=["SELECT 1"], sql_context=[case["sql_context"]]
    )
    assert got == [pytest.approx(case["reward"], abs=1e-9)]
    if case["components"] is not None:
        names = frozenset(schema_names(case["sql_context"] or ""))
        components = reasoning_components(extract_reasoning(case["completion"]), names)
        assert components.__dict__ == pytest.approx(case["components"], abs=1e-9)


@pytest.mark.parametrize(
    ("words", "length"), [(9, 0.0), (10, 0.10), (24, 0.10), (25, 0.15), (49, 0.15), (50, 0.20)]
)
def test_length_thresholds(words: int, length: float) -> None:
    assert reasoning_components(" ".join(["word"] * words)).length == length


@pytest.mark.parametrize(("lines", "structure"), [(1, 0.0), (2, 0.10), (3, 0.15), (9, 0.15)])
def test_structure_counts_non_empty_lines(lines: int, structure: float) -> None:
    text = "\n\n  \n".join(["x"] * lines)
    assert reasoning_components(text).structure == structure


def test_sql_terms_and_schema_caps() -> None:
    many_terms = "table column row join select where having filter count sum"
    assert reasoning_components(many_terms).sql_terms == 0.20
    names = frozenset(f"col{i}" for i in range(10))
    assert reasoning_components(" ".join(sorted(names)), names).schema == 0.30


def test_schema_names_from_db_path_row(tmp_path: Path) -> None:
    path = tmp_path / "concert.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE singer (singer_id INT, country TEXT)")
    conn.close()
    completion = "<reasoning>singer rows by country</reasoning>"
    # singer + country = 2 names -> 0.10; one term (row) -> 0.03
    got = reasoning_quality_reward(None, [completion], db_path=[str(path)], sql_context=[None])
    assert got == [pytest.approx((0.10 + 0.03) * 0.7)]
    missing = reasoning_quality_reward(None, [completion], db_path=[str(tmp_path / "nope.sqlite")])
    assert missing == [pytest.approx(0.03 * 0.7)]
    assert not (tmp_path / "nope.sqlite").exists()


def test_prefill_and_chat_completion() -> None:
    reward = ReasoningReward(weight=1.0, prefill="<reasoning>\n")
    completion = [
        {"role": "assistant", "content": "First select.\nThen filter.\n</reasoning><sql>x</sql>"}
    ]
    # 4 words: 0; terms select, filter: 0.06; 2 lines: 0.10; first + then: 0.15
    assert reward(None, [completion]) == [pytest.approx(0.31)]
