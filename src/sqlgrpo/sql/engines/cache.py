"""Evaluation and rewards on DuckDB or PostgreSQL: each sample's SQLite database, copied into
the engine once, with gold SQL transpiled from SQLite's dialect.

:class:`EngineCache` stands in for :class:`sqlgrpo.sql.database.DatabaseCache` in an
:class:`~sqlgrpo.sql.execution.ExecutionChecker` (``ExecutionChecker(cache=EngineCache(...))``):
``get(sql_context=..., db_path=...)`` builds the SQLite database as today (a gretel context, a
Spider / BIRD file), reads its tables (:mod:`sqlgrpo.sql.engines.load`) and loads them into

* DuckDB: an in-memory database (in a worker process killed at the deadline with
  ``isolation="process"``, as :func:`~sqlgrpo.sql.engines.factory.open_engine` does);
* PostgreSQL: a schema of its own (``sqlgrpo_<name>_<digest>``) in the database ``url``
  names, created once and queried through ``search_path``. Loading writes: point ``url`` at a
  database kept for evaluation, never at your production data.

Predictions run as they are (the model was asked for the engine's dialect); a gold statement
(a trusted script: ``allow_multiple=True``) is transpiled from ``source_dialect`` with sqlglot
first (:func:`transpile_script`); one sqlglot cannot read runs unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlgrpo.sql.database import Database, cache_key
from sqlgrpo.sql.engines.base import ENGINE_NAMES, SQLGLOT_DIALECTS, DbTarget, Engine
from sqlgrpo.sql.engines.factory import build_engine
from sqlgrpo.sql.engines.isolated import EngineRecipe, IsolatedEngine
from sqlgrpo.sql.engines.load import SchemaTypes, read_schema_types, read_sqlite_tables
from sqlgrpo.sql.engines.transpile import transpile_script
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, ExecResult, SandboxLimits

logger = logging.getLogger(__name__)


class EngineDatabase:
    """One sample database on an engine, with the interface the checker uses."""

    def __init__(
        self, engine: Engine, source_dialect: str = "sqlite", schema: SchemaTypes | None = None
    ) -> None:
        self.engine = engine
        self.schema = schema  # the source database's names and column types
        self.key = engine.key
        self.source_dialect = source_dialect
        self.diagnostics = engine.diagnostics
        self.build_error = engine.build_error
        self.limits = engine.limits
        self._transpiled: dict[str, str] = {}

    def gold_sql(self, sql: str) -> str:
        """A trusted statement as it runs here (transpiled once, then remembered)."""
        if sql not in self._transpiled:
            if len(self._transpiled) > 4096:
                self._transpiled.clear()
            self._transpiled[sql] = transpile_script(
                sql, self.source_dialect, SQLGLOT_DIALECTS[self.engine.name], self.schema
            )
        return self._transpiled[sql]

    def run(
        self, sql: str, *, capture_state: bool = False, allow_multiple: bool = False
    ) -> ExecResult:
        """:meth:`Engine.run`; a trusted script (``allow_multiple``) is transpiled first."""
        if allow_multiple and isinstance(sql, str):
            sql = self.gold_sql(sql)
        return self.engine.run(sql, capture_state=capture_state, allow_multiple=allow_multiple)

    def close(self) -> None:
        self.engine.close()


class EngineCache:
    """Sample databases copied into ``engine`` once each (LRU of ``max_entries``; an in-memory
    DuckDB database costs about 4 MB beyond its data, so 128 of them about half a GB)."""

    def __init__(
        self,
        engine: str,
        limits: SandboxLimits = DEFAULT_LIMITS,
        *,
        url: str | None = None,
        max_entries: int = 128,
        isolation: str = "inline",
        source_dialect: str = "sqlite",
    ) -> None:
        if engine not in ENGINE_NAMES or engine == "sqlite":
            raise ValueError(f"EngineCache engine must be duckdb or postgres, got {engine!r}")
        if engine == "postgres" and not url:
            raise ValueError("EngineCache('postgres') needs the url of a database to load into")
        if max_entries < 1:
            raise ValueError(f"EngineCache.max_entries must be >= 1, got {max_entries}")
        self.engine = engine
        self.limits = limits
        self.url = url
        self.max_entries = max_entries
        self.isolation = isolation
        self.source_dialect = source_dialect
        self._entries: OrderedDict[str, EngineDatabase] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, *, sql_context: str | None = None, db_path: str | None = None) -> EngineDatabase:
        """The engine copy of a context script or SQLite file (built on first use)."""
        key = cache_key(sql_context=sql_context, db_path=db_path)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        entry = self._build(key, sql_context, db_path)
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)[1].close()
        return entry

    def _build(self, key: str, sql_context: str | None, db_path: str | None) -> EngineDatabase:
        recipe = EngineRecipe(
            self.engine, f"{self.engine}:{key}", self.limits, sqlite_path=db_path,
            sql_context=sql_context,
        )  # fmt: skip
        if self.engine == "duckdb" and self.isolation == "process":
            engine: Engine = IsolatedEngine(recipe, build_engine)
            return EngineDatabase(engine, self.source_dialect, _sqlite_schema(sql_context, db_path))
        with _sqlite_copy(sql_context, db_path) as (source, copy):
            tables = read_sqlite_tables(copy) if source.build_error is None else []
            types = read_schema_types(copy, tables)
        if self.engine == "duckdb":
            from sqlgrpo.sql.engines.duckdb import DuckdbEngine

            engine = DuckdbEngine.from_tables(recipe.key, tables, self.limits)
        else:
            from sqlgrpo.sql.engines.postgres import PostgresEngine, load_tables

            schema = schema_name(key, db_path)
            if source.build_error is None:
                load_tables(self.url, schema, tables)  # type: ignore[arg-type]
            target = DbTarget("postgres", self.url, kind="url")  # type: ignore[arg-type]
            engine = PostgresEngine(target, self.limits, schema=schema)
        engine.build_error = source.build_error
        engine.diagnostics.extend(note for table in tables for note in table.notes)
        return EngineDatabase(engine, self.source_dialect, types)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Close and forget every engine copy."""
        with self._lock:
            for entry in self._entries.values():
                entry.close()
            self._entries.clear()

    def __getstate__(self) -> dict[str, Any]:
        # connections and workers stay here: a copy in another process starts empty
        return {
            "engine": self.engine,
            "limits": self.limits,
            "url": self.url,
            "max_entries": self.max_entries,
            "isolation": self.isolation,
            "source_dialect": self.source_dialect,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        engine = state.pop("engine")
        self.__init__(engine, **state)


def schema_name(key: str, db_path: str | None = None) -> str:
    """The PostgreSQL schema a sample database loads into: readable and unique."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()
    stem = re.sub(r"[^a-z0-9_]", "_", Path(db_path).stem.lower())[:30] if db_path else "ctx"
    return f"sqlgrpo_{stem}_{digest}"


@contextmanager
def _sqlite_copy(
    sql_context: str | None, db_path: str | None
) -> Iterator[tuple[Database, sqlite3.Connection]]:
    """A sample's SQLite database (built from its context or opened read-only) and a private
    in-memory copy of it; both closed on exit."""
    source = (
        Database.from_context(sql_context)
        if sql_context is not None
        else Database.from_path(db_path)  # type: ignore[arg-type]
    )
    try:
        copy = source.copy()
        try:
            yield source, copy
        finally:
            copy.close()
    finally:
        source.close()


def _sqlite_schema(sql_context: str | None, db_path: str | None) -> SchemaTypes:
    """The names and column types of a sample's SQLite database."""
    with _sqlite_copy(sql_context, db_path) as (_, copy):
        return read_schema_types(copy)
