"""SQLite behind the engine interface: today's sandbox (:mod:`sqlgrpo.sql.database`,
:mod:`sqlgrpo.sql.sandbox`), unchanged.

The file is opened read-only by URI and copied into memory (:meth:`Database.from_path`);
queries run under the read-only authorizer, anything else on a fresh in-memory copy, and
statements able to run long inside one SQLite instruction in the worker process killed at the
deadline. :func:`sqlite_ddl` is the one reader of a SQLite file's DDL for prompts
(:func:`sqlgrpo.data.sqlite_schema` uses it too).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlgrpo.sql.database import Database
from sqlgrpo.sql.engines.base import Engine, EngineError, example_rows_comment
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, ExecResult, SandboxLimits, capture_tables


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_ddl(conn: sqlite3.Connection, *, sample_rows: int = 0) -> str:
    """The CREATE statements of a SQLite database's tables and views, as stored, each table
    followed by up to ``sample_rows`` example rows in a comment. Raises ``sqlite3.Error``."""
    if sample_rows < 0:
        raise ValueError(f"sample_rows must be >= 0, got {sample_rows}")
    entries = conn.execute(
        "SELECT type, name, sql FROM sqlite_master "
        "WHERE type IN ('table', 'view') AND sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    ).fetchall()
    parts: list[str] = []
    for kind, name, sql in entries:
        ddl = sql.strip().rstrip(";") + ";"
        if kind == "table" and sample_rows:
            cur = conn.execute(f"SELECT * FROM {_quote(name)} LIMIT ?", (sample_rows,))
            columns = [d[0] for d in cur.description]
            rows = cur.fetchall()
            if rows:
                ddl += "\n" + example_rows_comment(name, columns, rows)
        parts.append(ddl)
    return "\n".join(parts)


class SqliteEngine(Engine):
    """A SQLite file (or an already built :class:`Database`) behind the engine interface."""

    name = "sqlite"

    def __init__(self, database: Database, path: str | None = None) -> None:
        super().__init__(database.key, database.limits)
        self.database = database
        self.path = path
        self.diagnostics = database.diagnostics
        self.build_error = database.build_error

    @classmethod
    def open(cls, path: str | Path, limits: SandboxLimits = DEFAULT_LIMITS) -> SqliteEngine:
        """Open an SQLite file read-only; :class:`EngineError` when it cannot be read."""
        try:
            database = Database.from_path(path, limits)
        except (OSError, ValueError) as exc:
            raise EngineError(f"{path}: cannot open the SQLite database ({exc})") from exc
        return cls(database, str(Path(path).resolve()))

    def tables(self) -> list[str]:
        return self.database.tables()

    def schema_text(self, sample_rows: int = 0) -> str:
        copy = self.database.copy()
        try:
            return sqlite_ddl(copy, sample_rows=sample_rows)
        finally:
            copy.close()

    def run(
        self, sql: str, *, capture_state: bool = False, allow_multiple: bool = False
    ) -> ExecResult:
        return self.database.run(sql, capture_state=capture_state, allow_multiple=allow_multiple)

    def state(self) -> dict[str, list[tuple]]:
        copy = self.database.copy()
        try:
            return capture_tables(copy, self.limits)
        finally:
            copy.close()

    def close(self) -> None:
        self.database.close()
