"""Open an engine from a ``--db`` argument or a recipe (the one place that picks the class)."""

from __future__ import annotations

from pathlib import Path

from sqlgrpo.sql.engines.base import DbTarget, Engine, EngineError, parse_db
from sqlgrpo.sql.engines.isolated import EngineRecipe, IsolatedEngine
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, SandboxLimits

#: How DuckDB statements are isolated: "process" (a worker killed at the deadline) or
#: "inline" (in this process; ``interrupt()`` only). PostgreSQL runs on its server and SQLite
#: follows ``SandboxLimits.isolation``.
ENGINE_ISOLATION = ("process", "inline")


def build_engine(recipe: EngineRecipe) -> Engine:
    """The engine a recipe describes, in this process."""
    limits = recipe.limits
    if recipe.target is not None:
        target = recipe.target
        if target.engine == "sqlite":
            from sqlgrpo.sql.engines.sqlite import SqliteEngine

            return SqliteEngine.open(target.location, limits)
        if target.engine == "duckdb":
            from sqlgrpo.sql.engines.duckdb import DuckdbEngine

            return DuckdbEngine.open(target, limits)
        if target.engine == "postgres":
            from sqlgrpo.sql.engines.postgres import PostgresEngine

            return PostgresEngine.open(target, limits)
        raise EngineError(f"unknown engine {target.engine!r}")
    if recipe.engine != "duckdb":
        raise EngineError(f"{recipe.engine}: only DuckDB copies an SQLite database by recipe")
    from sqlgrpo.sql.database import Database
    from sqlgrpo.sql.engines.duckdb import DuckdbEngine

    if recipe.sql_context is not None:
        source = Database.from_context(recipe.sql_context)
    elif recipe.sqlite_path is not None:
        source = Database.from_path(recipe.sqlite_path)
    else:
        raise EngineError("an engine recipe needs a target, an SQLite file or a context")
    try:
        if source.build_error is not None:
            engine = DuckdbEngine.from_tables(recipe.key, [], limits)
            engine.build_error = source.build_error
            return engine
        copy = source.copy()
        try:
            return DuckdbEngine.from_sqlite(copy, recipe.key, limits)
        finally:
            copy.close()
    finally:
        source.close()


def open_engine(
    db: str | Path | DbTarget,
    limits: SandboxLimits = DEFAULT_LIMITS,
    *,
    isolation: str = "process",
) -> Engine:
    """Open what ``--db`` names (:func:`parse_db`) read-only behind its sandbox; DuckDB in a
    worker process unless ``isolation="inline"``. Raises :class:`EngineError`."""
    if isolation not in ENGINE_ISOLATION:
        raise ValueError(f"isolation must be one of {ENGINE_ISOLATION}, got {isolation!r}")
    target = db if isinstance(db, DbTarget) else parse_db(db)
    recipe = EngineRecipe(target.engine, f"{target.engine}:{target.label}", limits, target=target)
    if target.engine == "duckdb" and isolation == "process":
        return IsolatedEngine(recipe, build_engine)
    return build_engine(recipe)
