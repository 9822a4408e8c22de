"""Engines: one sandboxed interface over SQLite, DuckDB and PostgreSQL.

* :mod:`~sqlgrpo.sql.engines.base`: the :class:`Engine` interface, ``--db`` parsing
  (:func:`parse_db`), schema text, result values;
* :mod:`~sqlgrpo.sql.engines.sqlite`: today's SQLite sandbox behind it;
* :mod:`~sqlgrpo.sql.engines.duckdb`: DuckDB files and Parquet / CSV views;
* :mod:`~sqlgrpo.sql.engines.postgres`: a PostgreSQL server;
* :mod:`~sqlgrpo.sql.engines.isolated`: an engine in a worker killed at the deadline;
* :mod:`~sqlgrpo.sql.engines.load`: SQLite data for another engine;
* :mod:`~sqlgrpo.sql.engines.cache`: engine copies of SQLite databases for evaluation and
  rewards, gold SQL transpiled with sqlglot;
* :mod:`~sqlgrpo.sql.engines.factory`: :func:`open_engine`.

DuckDB and psycopg are imported only when an engine of theirs opens.
"""

from sqlgrpo.sql.engines.base import (
    ENGINE_LABELS,
    ENGINE_NAMES,
    DbTarget,
    Engine,
    EngineError,
    EngineName,
    parse_db,
)
from sqlgrpo.sql.engines.factory import open_engine

__all__ = [
    "ENGINE_LABELS",
    "ENGINE_NAMES",
    "DbTarget",
    "Engine",
    "EngineError",
    "EngineName",
    "open_engine",
    "parse_db",
]
