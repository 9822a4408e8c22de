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


GATE_CONTEXT = (
    "CREATE TABLE emp (id INTEGER, name TEXT, dept TEXT); INSERT INTO emp VALUES (1, 'a', 'x');"
)
GATE_REASONING = (
    "First I look at the emp table and its name column.\n"
    "Then I select the rows where dept is x.\n"
    "Finally I return the name of each matching row."
)


def _gated_completion(sql: str) -> str:
    return f"<reasoning>\n{GATE_REASONING}\n</reasoning>\n<sql>\n{sql}\n</sql>"


@pytest.mark.parametrize(
    ("sql", "executes", "correct"),
    [
        ("SELECT name FROM emp WHERE dept = 'x';", True, True),  # runs, right rows
        ("SELECT id FROM emp;", True, False),  # runs, wrong rows
        ("SELECT salary FROM emp;", False, False),  # no such column: does not run
        ("SELEC name FROM emp;", False, False),  # no SQL found (no statement keyword)
    ],
)
def test_gate_pays_reasoning_only_when_the_sql_passes(
    sql: str, executes: bool, correct: bool
) -> None:
    completion = _gated_completion(sql)
    columns = {"sql": ["SELECT name FROM emp WHERE dept = 'x';"], "sql_context": [GATE_CONTEXT]}
    ungated = ReasoningReward()(["p"], [completion], **columns)[0]
    assert ungated > 0.3  # the text earns the same score whatever the SQL does
    for gate, passes in (("executes", executes), ("correct", correct)):
        got = ReasoningReward(gate=gate)(["p"], [completion], **columns)[0]
        assert got == (ungated if passes else 0.0), gate


def test_gate_needs_gold_and_rejects_unknown_gates() -> None:
    completion = _gated_completion("SELECT 1;")
    with pytest.raises(ValueError, match="gold SQL"):
        ReasoningReward(gate="executes")(["p"], [completion], sql_context=[GATE_CONTEXT])
    with pytest.raises(ValueError, match="ReasoningReward: unknown gate"):
        ReasoningReward(gate="sometimes")


def test_gate_logs_its_pass_rate() -> None:
    metrics: dict[str, float] = {}
    completions = [_gated_completion("SELECT name FROM emp;"), _gated_completion("SELECT x;")]
    ReasoningReward(gate="executes")(
        ["p", "p"],
        completions,
        sql=["SELECT name FROM emp;"] * 2,
        sql_context=[GATE_CONTEXT] * 2,
        log_metric=metrics.__setitem__,
    )
    assert metrics["reasoning_quality_reward/gate_pass_rate"] == 0.5
