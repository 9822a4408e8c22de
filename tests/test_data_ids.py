"""Issue 37: ids are kept as the user wrote them (text keys inside, the original value in
every output), collide across JSON types, and wrong types of the known columns are named
by file, line and column; `sqlgrpo data validate` fails on both."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.data import DataError, load_samples

FIXTURES = Path(__file__).parent / "fixtures"
KEPT = FIXTURES / "data_ids_kept.jsonl"
CONFLICT = FIXTURES / "data_ids_conflict.jsonl"
WRONG_TYPES = FIXTURES / "data_wrong_types.jsonl"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_ids_keep_their_value_and_type() -> None:
    samples = load_samples(str(KEPT)).samples
    raw = [row.get("id") for row in _jsonl(KEPT)]
    assert [s.id for s in samples] == [
        "7",
        "b-2",
        "3.5",
        "gretel:data_ids_kept.jsonl:3",  # no id: numbered by position
        "12345678901234567890",
    ]
    assert [s.output_id for s in samples] == [7, "b-2", 3.5, samples[3].id, raw[4]]
    assert [type(s.output_id) for s in samples] == [int, str, float, str, int]


def test_export_writes_the_original_ids_and_reloads_them(tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    assert main(["data", "export", str(KEPT), "-o", str(out)]) == 0
    exported = [row["id"] for row in _jsonl(out)]
    assert exported == [7, "b-2", 3.5, "gretel:data_ids_kept.jsonl:3", 12345678901234567890]
    assert load_samples(str(out)).samples == load_samples(str(KEPT)).samples


class _Echo:
    """A generator that answers every prompt with one fixed, well-formed completion."""

    name = "echo"

    def generate_batches(
        self, prompts: Sequence[str]
    ) -> Iterator[tuple[list[int], list[list[str]]]]:
        answer = "<reasoning>\ncount\n</reasoning>\n<sql>\nSELECT COUNT(*) FROM t;\n</sql>"
        yield list(range(len(prompts))), [[answer] for _ in prompts]


def test_predictions_carry_the_original_ids_and_resume_on_them(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from eval_tiny_model import tiny_model_dir
    from sqlgrpo.evaluation.evaluate import EvalConfig, evaluate
    from sqlgrpo.generation import GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir(tmp_path / "model")))
    cfg = EvalConfig(
        model="echo",
        data=str(KEPT),
        out_dir=str(tmp_path / "ev"),
        generation=GenerationConfig(show_progress=False),
    )
    evaluate(cfg, tokenizer=tokenizer, generator=_Echo())
    records = _jsonl(tmp_path / "ev" / "predictions.jsonl")
    ids = [r["id"] for r in records]
    assert ids == [row.get("id", "gretel:data_ids_kept.jsonl:3") for row in _jsonl(KEPT)]
    assert [type(i) for i in ids] == [int, str, float, str, int]
    assert records[0]["match"] is True  # id 7 asks for COUNT(*)
    again = evaluate(cfg, tokenizer=tokenizer, generator=_Echo())
    assert again.n_resumed == 5 and again.n_generated == 0  # 7 in the file is sample "7"

    # a list of ids to evaluate may name them as numbers or as text
    wanted = tmp_path / "ids.json"
    wanted.write_text(json.dumps([7, "3.5"]))
    only = EvalConfig(
        model="echo",
        data=str(KEPT),
        out_dir=str(tmp_path / "ev2"),
        ids_file=str(wanted),
        generation=GenerationConfig(show_progress=False),
    )
    evaluate(only, tokenizer=tokenizer, generator=_Echo())
    assert [r["id"] for r in _jsonl(tmp_path / "ev2" / "predictions.jsonl")] == [7, 3.5]


def test_validate_fails_on_a_reused_id_across_types(capsys: pytest.CaptureFixture[str]) -> None:
    """5 twice with different questions fails; so do 6 and "6" (one id, compared as text);
    8 and "8" on the same question are only a duplicate warning."""
    assert main(["data", "validate", str(CONFLICT)]) == 1
    out = capsys.readouterr().out
    assert "duplicate_id: 2" in out
    assert "id 5 of sample 3 is already used by sample 1 with different content" in out
    assert "id '6' of sample 4 is already used as 6 by sample 2 with different content" in out
    assert "1 duplicate(s): 8 (= 8)" in out


@pytest.mark.parametrize(
    ("line", "column", "problem"),
    [
        (2, "sql", "must be text, got a number (42)"),
        (3, "evidence", "must be text, got an object ({'x': 1})"),
        (4, "id", "must be a string or a number, got a list (['list'])"),
        (5, "id", "must be a string or a number, got a boolean (True)"),
        (6, "sql_prompt", "must be text, got a list (['How many rows?'])"),
        (7, "sql_context", "must be text, got a number (7)"),
        (8, "domain", "must be text or a number, got an object ({'name': 'retail'})"),
        (9, "db_path", "must be text, got a number (3)"),
    ],
)
def test_a_wrong_type_is_named_by_file_line_and_column(
    tmp_path: Path, line: int, column: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = WRONG_TYPES.read_text().splitlines()
    path = tmp_path / "rows.jsonl"
    path.write_text(lines[0] + "\n" + lines[line - 1] + "\n")  # a good row, then the bad one
    with pytest.raises(DataError) as exc:
        load_samples(str(path))
    assert str(exc.value) == f"{path}, line 2: column {column!r} {problem}"
    assert main(["data", "validate", str(path)]) == 2  # validate fails, naming the row
    assert f"{path}, line 2: column {column!r}" in capsys.readouterr().err


def test_skip_invalid_lists_every_wrong_type(capsys: pytest.CaptureFixture[str]) -> None:
    result = load_samples(str(WRONG_TYPES), skip_invalid=True)
    assert [s.id for s in result.samples] == ["ok-1", "ok-2"]
    assert result.samples[1].metadata["difficulty"] == "2"  # a number is fine as metadata
    assert [(row.row, row.reason.split(" must")[0]) for row in result.skipped] == [
        ("line 2", "column 'sql'"),
        ("line 3", "column 'evidence'"),
        ("line 4", "column 'id'"),
        ("line 5", "column 'id'"),
        ("line 6", "column 'sql_prompt'"),
        ("line 7", "column 'sql_context'"),
        ("line 8", "column 'domain'"),
        ("line 9", "column 'db_path'"),
    ]
    assert main(["data", "validate", str(WRONG_TYPES), "--skip-invalid"]) == 0
    out = capsys.readouterr().out
    assert "skipped 8 invalid row(s):" in out and f"{WRONG_TYPES}, line 2: column 'sql'" in out
