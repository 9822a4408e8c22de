"""``sqlgrpo score`` on a small fixture file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.rewards import build_profile

FIXTURE = Path(__file__).parent / "fixtures" / "rewards_score_input.jsonl"


def test_score_prints_a_table_and_writes_jsonl(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(FIXTURE), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    for header in ("format", "execution", "reasoning", "complexity", "total"):
        assert header in printed
    assert "total reward" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    inputs = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert len(rows) == len(inputs) == 4
    # The CLI scores exactly what the reward functions give for the same batch.
    for func in build_profile("spec"):
        expected = func(
            None,
            [r["completion"] for r in inputs],
            sql=[r["sql"] for r in inputs],
            sql_context=[r["sql_context"] for r in inputs],
        )
        assert [r["rewards"][func.__name__] for r in rows] == pytest.approx(expected)
    assert rows[0]["rewards"]["execute_query_reward_func"] == pytest.approx(1.2)
    assert rows[0]["rewards"]["soft_format_reward_func"] == 1.0
    assert rows[3]["rewards"]["soft_format_reward_func"] == 0.0
    assert rows[2]["diagnostics"]["execute_query_reward_func/error_class"] == "missing_column"
    assert rows[1]["diagnostics"]["execute_query_reward_func/match_kind"] == "partial"
    assert all(r["total"] == pytest.approx(sum(r["rewards"].values())) for r in rows)
    assert rows[0]["sql_prompt"] == inputs[0]["sql_prompt"]


def test_score_strict_profile_and_rule(tmp_path: Path) -> None:
    out = tmp_path / "strict.jsonl"
    assert (
        main(["score", str(FIXTURE), "-o", str(out), "--profile", "strict", "--compare", "bird"])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rewards"]["execute_query_reward_func"] for r in rows] == pytest.approx(
        [1.2, 0.0, 0.0, 0.0]
    )
    assert "strict_format_reward_func" in rows[0]["rewards"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"completion": "x"}\nnot json\n', ":2: invalid JSON"),
        ("[1, 2]\n", ":1: expected a JSON object"),
        (
            '{"sql": "SELECT 1", "sql_context": "CREATE TABLE t (a)"}\n',
            ":1: missing field 'completion'",
        ),
        ('{"completion": 3}\n', ":1: 'completion' must be a string"),
        ('{"completion": "x", "sql": "SELECT 1"}\n', ":1: has 'sql' but neither"),
        ("\n\n", "no rows"),
    ],
)
def test_bad_input_names_file_line_and_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["score", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
