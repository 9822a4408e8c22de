"""Schema text for prompts: CREATE statements from a context script, DDL from SQLite files."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from sqlgrpo.data.sample import DataError
from sqlgrpo.sql.database import connect_read_only
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


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_schema(db_path: str | Path, *, sample_rows: int = 0) -> str:
    """DDL of a SQLite file's tables and views, optionally with N example rows per table.

    Example rows go in a ``/* ... */`` comment after each CREATE TABLE statement.
    """
    if sample_rows < 0:
        raise ValueError(f"sample_rows must be >= 0, got {sample_rows}")
    conn = open_readonly(db_path)
    try:
        entries = conn.execute(
            "SELECT type, name, sql FROM sqlite_master "
            "WHERE type IN ('table', 'view') AND sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        ).fetchall()
        parts: list[str] = []
        for kind, name, sql in entries:
            ddl = sql.strip().rstrip(";") + ";"
            if kind == "table" and sample_rows:
                cur = conn.execute(
                    f"SELECT * FROM {_quote_identifier(name)} LIMIT ?", (sample_rows,)
                )
                columns = [d[0] for d in cur.description]
                rows = cur.fetchall()
                if rows:
                    lines = [f"/* {len(rows)} example rows from {name}:", "\t".join(columns)]
                    lines += ["\t".join(_cell(v) for v in row) for row in rows]
                    ddl += "\n" + "\n".join(lines) + "\n*/"
            parts.append(ddl)
    except sqlite3.Error as exc:
        raise DataError(f"{db_path}: could not read the schema ({exc})") from exc
    finally:
        conn.close()
    return "\n".join(parts)


def _cell(value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value).replace("\n", " ").replace("*/", "* /")
    return text if len(text) <= 60 else text[:57] + "..."
