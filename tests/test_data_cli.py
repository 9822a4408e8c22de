"""`sqlgrpo data` commands through the real CLI entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sqlgrpo.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "data_gretel_small.jsonl"


def _with_rows(tmp_path: Path, extra: list[dict]) -> Path:
    path = tmp_path / "rows.jsonl"
    shutil.copy(FIXTURE, path)
    with path.open("a", encoding="utf-8") as handle:
        for row in extra:
            handle.write(json.dumps(row) + "\n")
    return path


CTX = "CREATE TABLE t (a INT, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');"
BROKEN_GOLD = {"sql_prompt": "q1", "sql_context": CTX, "sql": "SELECT c FROM t;"}
EMPTY_GOLD = {"sql_prompt": "q2", "sql_context": CTX, "sql": "SELECT a FROM t WHERE b = 'z';"}
BAD_CONTEXT = {
    "sql_prompt": "q3",
    "sql_context": "CREATE TABLE u (a INT); INSERT INTO u VALUES (1, 2, 3);",
    "sql": "SELECT a FROM u;",
}


def test_validate_clean_file_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "validate", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "4 sample(s)" in out and "failures: 0" in out


def test_validate_failures_by_class_with_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _with_rows(tmp_path, [BROKEN_GOLD, EMPTY_GOLD, BAD_CONTEXT, EMPTY_GOLD])
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "8 sample(s)" in out
    assert "FAILURES: 2 sample(s)" in out
    assert "missing_column: 1" in out and "gretel:rows.jsonl:4" in out
    assert "context_build: 1" in out and "gretel:rows.jsonl:6" in out
    assert "warning: 2 gold SELECT(s) return no rows" in out
    assert "gretel:rows.jsonl:5" in out and "gretel:rows.jsonl:7" in out
    assert "1 duplicate(s): gretel:rows.jsonl:7 (= gretel:rows.jsonl:5)" in out


def test_validate_warnings_only_exit_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _with_rows(tmp_path, [EMPTY_GOLD])
    assert main(["data", "validate", str(path)]) == 0
    assert "warning: 1 gold SELECT(s) return no rows" in capsys.readouterr().out


def test_export_only_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _with_rows(tmp_path, [BROKEN_GOLD, EMPTY_GOLD, BAD_CONTEXT])
    out_path = tmp_path / "out" / "valid.jsonl"
    assert main(["data", "export", str(path), "--only-valid", "-o", str(out_path)]) == 0
    records = [json.loads(line) for line in out_path.read_text().splitlines()]
    # the fixture's own integer ids stay integers; the appended rows had none
    assert [r["id"] for r in records] == [101, 102, 103, 104, "gretel:rows.jsonl:5"]
    assert "dropped 2 sample(s)" in capsys.readouterr().out
    # the export is itself a loadable gretel file that validates cleanly
    assert main(["data", "validate", str(out_path)]) == 0
    drop_empty = tmp_path / "nonempty.jsonl"
    assert (
        main(["data", "export", str(path), "--only-valid", "--drop-empty", "-o", str(drop_empty)])
        == 0
    )
    assert len(drop_empty.read_text().splitlines()) == 4


def test_stats_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "by sql_complexity:" in out and "basic SQL: 2" in out
    assert "by domain:" in out and "maritime: 2" in out and "museums: 2" in out
    assert "by source:" in out and "gretel: 4" in out


def test_stats_bundled_split(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats", "bundled", "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "from bundled:test" in out and "by sql_task_type:" in out


def test_generate_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "generate", "--check"]) == 0
    assert "match the generator" in capsys.readouterr().out
    assert main(["data", "generate", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "train.jsonl").is_file() and (tmp_path / "manifest.json").is_file()
    assert "held-out domains:" in capsys.readouterr().out


def test_export_round_trips_sqlite_sources(
    tmp_path: Path, spider_subset_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlgrpo.data import load_samples

    out = tmp_path / "spider.jsonl"
    assert main(["data", "export", str(spider_subset_path), "--limit", "5", "-o", str(out)]) == 0
    original = load_samples(str(spider_subset_path), limit=5).samples
    again = load_samples(str(out)).samples
    assert again == original  # same ids, schema, db_path and metadata
    assert main(["data", "validate", str(out)]) == 0
