"""Schema text for prompts: CREATE statements from a context script, DDL from SQLite files."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from sqlgrpo.data.sample import DataError
from sqlgrpo.sql.database import connect_read_only
from sqlgrpo.sql.engines.sqlite import sqlite_ddl
from sqlgrpo.sql.statements import split_statements

_SCHEMA_STATEMENT = re.compile(
    r"^\s*CREATE\s+(?:(?:TEMP|TEMPORARY)\s+)?(?:TABLE|VIEW)\b", re.IGNORECASE
)


def create_statements(sql_context: str) -> str:
    """The CREATE TABLE / CREATE VIEW statements of a context script, one per line.

    INSERTs and everything else stay out, as in the original prompt format.
    """
    kept = [s + ";" for s in split_statements(sql_context) if _SCHEMA_STATEMENT.match(s)]
    return "\n".join(kept)


def open_readonly(db_path: str | Path) -> sqlite3.Connection:
    """Open an existing SQLite file read-only (never creates one); DataError when unusable."""
    path = Path(db_path)
    if not path.is_file():
        raise DataError(f"{path}: SQLite database file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty database (0-byte file, no tables)")
    try:
        conn = connect_read_only(path)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise DataError(f"{path}: not a readable SQLite database ({exc})") from exc
    return conn


def sqlite_schema(db_path: str | Path, *, sample_rows: int = 0) -> str:
    """DDL of a SQLite file's tables and views, optionally with N example rows per table.

    Example rows go in a ``/* ... */`` comment after each CREATE TABLE statement
    (:func:`sqlgrpo.sql.engines.sqlite.sqlite_ddl`).
    """
    if sample_rows < 0:
        raise ValueError(f"sample_rows must be >= 0, got {sample_rows}")
    conn = open_readonly(db_path)
    try:
        return sqlite_ddl(conn, sample_rows=sample_rows)
    except sqlite3.Error as exc:
        raise DataError(f"{db_path}: could not read the schema ({exc})") from exc
    finally:
        conn.close()
