"""Bad input: errors name the file, the line or db_id and the problem; --skip-invalid counts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlgrpo.cli import main
from sqlgrpo.data import DataError, load_samples

GOOD = {
    "sql_prompt": "How many rows?",
    "sql_context": "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2);",
    "sql": "SELECT COUNT(*) FROM t;",
}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl", [json.dumps(GOOD), '{"sql_prompt": "x", ', json.dumps(GOOD)]
    )
    with pytest.raises(DataError) as exc:
        load_samples(str(path))
    message = str(exc.value)
    assert str(path) in message and "line 2" in message and "malformed JSON" in message


def test_missing_column_names_column_and_line(tmp_path: Path) -> None:
    row = dict(GOOD)
    del row["sql"]
    path = write_jsonl(
        tmp_path / "missing.jsonl", [json.dumps(GOOD), json.dumps(GOOD), json.dumps(row)]
    )
    with pytest.raises(
        DataError, match=r"missing\.jsonl, line 3: missing or empty column\(s\) sql"
    ):
        load_samples(str(path))


def test_context_without_create(tmp_path: Path) -> None:
    row = dict(GOOD, sql_context="INSERT INTO t VALUES (1);")
    path = write_jsonl(tmp_path / "nocreate.jsonl", [json.dumps(row)])
    with pytest.raises(DataError, match="line 1: sql_context has no CREATE"):
        load_samples(str(path))


def test_skip_invalid_counts_every_bad_row(tmp_path: Path) -> None:
    no_sql = {k: v for k, v in GOOD.items() if k != "sql"}
    lines = [json.dumps(GOOD), "not json", json.dumps(no_sql), "[1, 2]", json.dumps(GOOD)]
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    result = load_samples(str(path), skip_invalid=True)
    assert len(result.samples) == 2
    assert [row.row for row in result.skipped] == ["line 2", "line 3", "line 4"]
    assert all(row.file == str(path) for row in result.skipped)
    assert "malformed JSON" in result.skipped[0].reason
    # ids keep the position in the file, so the good rows keep their own numbers
    assert [s.id for s in result.samples] == ["gretel:mixed.jsonl:0", "gretel:mixed.jsonl:4"]


def test_missing_file_and_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_samples(str(tmp_path / "absent.jsonl"))
    other = tmp_path / "data.txt"
    other.write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        load_samples(str(other))


def _spider_folder(root: Path, db_ids: list[str]) -> Path:
    (root / "database").mkdir(parents=True)
    rows = [{"db_id": d, "question": f"How many rows in {d}?", "query": "SELECT 1"} for d in db_ids]
    (root / "train.json").write_text(json.dumps(rows))
    return root


def test_missing_database_names_db_id(tmp_path: Path) -> None:
    folder = _spider_folder(tmp_path / "spider", ["ghost_db"])
    with pytest.raises(DataError) as exc:
        load_samples(str(folder))
    message = str(exc.value)
    assert "db_id 'ghost_db'" in message and "not found" in message and "row 0" in message
    assert not (folder / "database" / "ghost_db" / "ghost_db.sqlite").exists()  # never created


def test_unreadable_database_names_db_id_and_skips(tmp_path: Path) -> None:
    folder = _spider_folder(tmp_path / "spider", ["good", "broken", "broken"])
    (folder / "database" / "good").mkdir()
    conn = sqlite3.connect(folder / "database" / "good" / "good.sqlite")
    conn.execute("CREATE TABLE t (a INT)")
    conn.commit()
    conn.close()
    (folder / "database" / "broken").mkdir()
    (folder / "database" / "broken" / "broken.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match=r"row 1: db_id 'broken'.*not a readable SQLite"):
        load_samples(str(folder))
    result = load_samples(str(folder), skip_invalid=True)
    assert [s.id for s in result.samples] == ["spider:good:0"]
    assert [r.row for r in result.skipped] == ["row 1", "row 2"]
    assert all("db_id 'broken'" in r.reason for r in result.skipped)


def test_cli_reports_load_error_and_skip_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [json.dumps(GOOD), "{oops", json.dumps(GOOD)])
    assert main(["data", "stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "--skip-invalid" in err
    assert main(["data", "stats", str(path), "--skip-invalid"]) == 0
    out = capsys.readouterr().out
    assert "2 sample(s)" in out and "skipped 1 invalid row(s)" in out and "line 2" in out
