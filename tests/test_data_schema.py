"""Schema text: CREATE statements from context scripts, DDL from SQLite files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlgrpo.data import DataError, create_statements, sqlite_schema

CASES = json.loads((Path(__file__).parent / "fixtures" / "data_schema_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_create_statements(case: dict) -> None:
    assert create_statements(case["context"]) == case["expected"]


def test_create_statements_build_the_same_tables() -> None:
    """The kept statements alone build every table the full context builds."""
    for case in [c for c in CASES if c["expected"]]:
        full, schema_only = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
        full.executescript(case["context"].replace("CREATE TEMP", "CREATE"))
        schema_only.executescript(case["expected"].replace("CREATE TEMP", "CREATE"))
        query = "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
        assert full.execute(query).fetchall() == schema_only.execute(query).fetchall(), case["name"]


def _make_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT, note TEXT);"
        "INSERT INTO city VALUES (1, 'Oslo', 'line one\nline two'), (2, 'Lima', NULL),"
        " (3, 'Pune', 'x');"
        "CREATE VIEW big AS SELECT name FROM city WHERE id > 1;"
    )
    conn.commit()
    conn.close()
    return path


def test_sqlite_schema_ddl_and_sample_rows(tmp_path: Path) -> None:
    db = _make_db(tmp_path / "c.sqlite")
    plain = sqlite_schema(db)
    assert plain.splitlines()[0].startswith("CREATE TABLE city")
    assert "CREATE VIEW big" in plain and "Oslo" not in plain
    with_rows = sqlite_schema(db, sample_rows=2)
    assert "/* 2 example rows from city:" in with_rows
    assert "Oslo" in with_rows and "Lima" in with_rows and "Pune" not in with_rows
    assert "line one line two" in with_rows  # newlines inside values are flattened
    # the annotated schema still executes as a script (example rows sit in a comment)
    sqlite3.connect(":memory:").executescript(with_rows)


def test_sqlite_schema_never_creates_files(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite"
    with pytest.raises(DataError, match="not found"):
        sqlite_schema(missing)
    assert not missing.exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(DataError, match="not a readable SQLite database"):
        sqlite_schema(junk)
