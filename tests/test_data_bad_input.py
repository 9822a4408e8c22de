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


# ---- issue 18: bytes that are not UTF-8, conflicting ids, empty sources, splits, empty files


def _csv_bytes(rows: list[dict], bad_row: int | None = None) -> bytes:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(GOOD))
    writer.writeheader()
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8")
    if bad_row is not None:
        lines = data.split(b"\r\n")
        lines[bad_row] = lines[bad_row].replace(b"How many", b"How \xff many")
        data = b"\r\n".join(lines)
    return data


@pytest.mark.parametrize("kind", ["jsonl", "csv", "json"])
def test_non_utf8_byte_names_file_and_line_and_is_skippable(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"latin1.{kind}"
    if kind == "jsonl":
        good = json.dumps(GOOD).encode()
        path.write_bytes(
            good + b"\n" + good.replace(b"How many", b"How \xff many") + b"\n" + good + b"\n"
        )
    elif kind == "csv":
        path.write_bytes(_csv_bytes([GOOD, GOOD, GOOD], bad_row=1))
    else:
        path.write_bytes(
            json.dumps([GOOD, GOOD]).encode().replace(b"How many", b"How \xff many", 1)
        )
    with pytest.raises(DataError) as exc:
        load_samples(str(path))
    message = str(exc.value)
    assert str(path) in message and "UTF-8" in message and "0xff" in message
    assert ("line 2" in message) if kind != "json" else ("line 1" in message)
    if kind != "json":  # a whole-file format cannot skip one row
        result = load_samples(str(path), skip_invalid=True)
        assert len(result.samples) == 2 and len(result.skipped) == 1
        assert result.skipped[0].row == "line 2" and "0xff" in result.skipped[0].reason


def test_jsonl_reader_names_a_non_utf8_line(tmp_path: Path) -> None:
    from sqlgrpo.data.jsonl import read_jsonl, read_jsonl_lenient

    path = tmp_path / "predictions.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b\xff"}\n')
    with pytest.raises(ValueError, match=r"predictions\.jsonl:2: not valid UTF-8 \(byte 0xff"):
        read_jsonl(path)
    rows, bad = read_jsonl_lenient(path)
    assert rows == [{"id": "a"}] and bad == [2]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", b""),
        ("blank.jsonl", b"\n\n"),
        ("empty.csv", b""),
        ("header.csv", b"sql_prompt,sql_context,sql\r\n"),
    ],  # fmt: skip
)
def test_validate_refuses_an_empty_source(
    tmp_path: Path, name: str, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "no_samples" in out and "failures: 0" not in out


def test_validate_fails_on_one_id_with_two_contents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = dict(GOOD, id="q1")
    other = dict(GOOD, id="q1", sql="SELECT MAX(a) FROM t;")
    same = dict(GOOD, id="q2")
    path = write_jsonl(
        tmp_path / "dup.jsonl", [json.dumps(r) for r in (first, same, other, dict(same))]
    )
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "duplicate_id: 1" in out and "q1" in out
    assert "duplicate(s)" in out  # q2 twice with the same content stays a warning


def test_bird_folder_without_dev_says_it_read_train(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    folder = tmp_path / "bird"
    (folder / "train_databases" / "shop").mkdir(parents=True)
    conn = sqlite3.connect(folder / "train_databases" / "shop" / "shop.sqlite")
    conn.execute("CREATE TABLE t (a INT)")
    conn.commit()
    conn.close()
    rows = [{"question": "How many?", "SQL": "SELECT COUNT(*) FROM t", "db_id": "shop"}]
    (folder / "train.json").write_text(json.dumps(rows))
    with caplog.at_level(logging.WARNING, logger="sqlgrpo.data.loaders"):
        result = load_samples(str(folder))
    assert "no --split given" in caplog.text and "train" in caplog.text
    assert "split train" in result.source and "train.json" in result.source
    assert len(result.samples) == 1


def test_zero_byte_database_is_reported_once_as_empty(tmp_path: Path) -> None:
    folder = _spider_folder(tmp_path / "spider", ["hollow", "hollow", "hollow"])
    (folder / "database" / "hollow").mkdir()
    (folder / "database" / "hollow" / "hollow.sqlite").write_bytes(b"")
    with pytest.raises(DataError, match=r"row 0: db_id 'hollow'.*empty database"):
        load_samples(str(folder))
    result = load_samples(str(folder), skip_invalid=True)
    reasons = {r.reason for r in result.skipped}
    assert len(reasons) == 1 and "empty database" in reasons.pop()
    assert not any("no such table" in r.reason for r in result.skipped)


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + _csv_bytes([GOOD]))
    for path in (jsonl, csv_path):
        assert [s.question for s in load_samples(str(path)).samples] == [GOOD["sql_prompt"]]


def test_database_without_tables_is_reported_once_as_empty(tmp_path: Path) -> None:
    folder = _spider_folder(tmp_path / "spider", ["bare", "bare"])
    (folder / "database" / "bare").mkdir()
    conn = sqlite3.connect(folder / "database" / "bare" / "bare.sqlite")
    conn.execute("PRAGMA user_version = 1")  # a valid file with no table
    conn.commit()
    conn.close()
    result = load_samples(str(folder), skip_invalid=True)
    assert len({r.reason for r in result.skipped}) == 1
    assert "empty database" in result.skipped[0].reason
