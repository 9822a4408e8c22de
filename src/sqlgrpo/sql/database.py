"""Databases for checking SQL: built from a gretel context or opened read-only.

A :class:`Database` keeps one *base* connection on which nothing can write.
A statement that may write (DML, DDL, anything not a query, gold scripts) runs
on a fresh ``:memory:`` copy made with the SQLite backup API and hardened
(:func:`sqlgrpo.sql.sandbox.harden`), so no statement can see what another one
did. (Running DML on the base would leave a write transaction open, after
which ``backup()`` waits forever.) Queries (SELECT / WITH ... SELECT) run on the
base itself under the read-only authorizer, which allows only reads, functions,
recursion and read-only pragmas: no write, temp object, transaction or attach
can happen there, so the base stays pristine and the per-query cost of a copy
(a new connection plus a backup, about 0.1 ms) is saved for the common case.

:class:`DatabaseCache` builds each distinct context or file once (LRU).

Contexts are trusted dataset text, built under their own, larger
:class:`ContextLimits` (a size guard first, then one deadline for the whole
build, sqlglot only for statements up to ``max_transpile_chars``); the base is
then switched to the untrusted :class:`~sqlgrpo.sql.sandbox.SandboxLimits`.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.isolation import needs_isolation
from sqlgrpo.sql.sandbox import (  # noqa: F401 (limits re-exported)
    DEFAULT_CONTEXT_LIMITS,
    DEFAULT_LIMITS,
    DEFAULT_MAX_COPY_BYTES,
    ContextLimits,
    ExecResult,
    SandboxGuard,
    SandboxLimits,
    failure,
    harden,
    restrict_to_reads,
    run_untrusted,
)
from sqlgrpo.sql.statements import QUERY_TYPES, split_statements, statement_type

logger = logging.getLogger(__name__)

#: Dialects tried, in order, when SQLite rejects a context statement.
TRANSPILE_DIALECTS = ("mysql", "postgres", "tsql", "oracle")


def connect_read_only(path: str | Path, **kwargs: Any) -> sqlite3.Connection:
    """Connect to an existing SQLite file by URI with ``mode=ro``: nothing can be written, and
    a missing file is an error, never a new empty database. ``kwargs`` go to ``connect``."""
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, **kwargs)


def _memory_connection() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)


class Database:
    """One database: a pristine base plus a way to run statements on copies."""

    def __init__(
        self,
        key: str,
        base: sqlite3.Connection,
        limits: SandboxLimits,
        *,
        diagnostics: list[str] | None = None,
        build_error: str | None = None,
        shared_read_only: bool = False,
        guard: SandboxGuard | None = None,
        spec: tuple[str, str] | None = None,
        context_limits: ContextLimits | None = None,
    ) -> None:
        self.key = key
        #: How to build it again (``("ctx", script)`` or ``("path", file)``): the worker's copy.
        self.spec = spec
        self.context_limits = context_limits or DEFAULT_CONTEXT_LIMITS
        self._decisions: dict[str, bool] = {}  # statement -> runs in the worker
        self.diagnostics: list[str] = diagnostics if diagnostics is not None else []
        self.build_error = build_error
        self.limits = limits
        self._base = base
        self._lock = threading.Lock()
        self._row_count: int | None = None
        self._shared_guard: SandboxGuard | None = None
        if shared_read_only:  # a connection hardened while building only needs the authorizer
            self._shared_guard = (
                restrict_to_reads(base, guard, limits)
                if guard is not None
                else harden(base, limits, read_only=True)
            )

    @classmethod
    def from_context(
        cls,
        sql_context: str,
        limits: SandboxLimits = DEFAULT_LIMITS,
        *,
        key: str | None = None,
        context_limits: ContextLimits = DEFAULT_CONTEXT_LIMITS,
    ) -> Database:
        """Build an in-memory database from a CREATE/INSERT script.

        The script is trusted and built under ``context_limits``; afterwards the
        database answers untrusted statements under ``limits``. Statements SQLite
        rejects are transpiled with sqlglot from :data:`TRANSPILE_DIALECTS`; each
        rewrite is noted in ``diagnostics``. Statements that fail anyway, or a
        context over the size or time limits, are listed in ``build_error``.
        """
        key = key or context_key(sql_context)
        origin: dict[str, Any] = {"spec": ("ctx", sql_context), "context_limits": context_limits}
        if len(sql_context) > context_limits.max_context_chars:
            return cls(
                key,
                _memory_connection(),
                limits,
                build_error=(
                    f"context of {len(sql_context)} characters exceeds "
                    f"max_context_chars={context_limits.max_context_chars}"
                ),
            )
        build_limits = context_limits.sandbox_limits()
        deadline = time.monotonic() + context_limits.timeout_s
        base = _memory_connection()
        guard = harden(base, build_limits)
        guard.arm(context_limits.timeout_s)
        try:  # fast path: SQLite takes the whole script as it is (the common case)
            base.executescript(sql_context)
        except Exception as exc:  # noqa: BLE001 - rebuild statement by statement below
            base.close()
            if guard.fired:  # a slow script would only be slower statement by statement
                return cls(
                    key,
                    _memory_connection(),
                    limits,
                    build_error=(
                        f"build exceeded ContextLimits.timeout_s={context_limits.timeout_s:g}"
                        f" ({type(exc).__name__}: {str(exc)[:200]})"
                    ),
                )
        else:
            if base.in_transaction:
                base.commit()
            return cls(key, base, limits, shared_read_only=True, guard=guard, **origin)
        base = _memory_connection()
        guard = harden(base, build_limits)
        diagnostics: list[str] = []
        errors: list[str] = []
        for number, statement in enumerate(split_statements(sql_context), start=1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.append(
                    f"statement {number}: build exceeded ContextLimits.timeout_s="
                    f"{context_limits.timeout_s:g}"
                )
                break
            guard.arm(remaining)
            try:
                base.execute(statement).close()
                continue
            except Exception as exc:  # noqa: BLE001 - dataset text, report and go on
                error = str(exc)
            if len(statement) > context_limits.max_transpile_chars:
                errors.append(
                    f"statement {number}: {error} (not transpiled: {len(statement)} characters"
                    f" > max_transpile_chars={context_limits.max_transpile_chars}):"
                    f" {statement[:120]}"
                )
                continue
            dialect = _run_transpiled(base, statement, guard, deadline)
            if dialect is not None:
                diagnostics.append(f"statement {number}: transpiled from {dialect} ({error})")
            else:
                errors.append(f"statement {number}: {error}: {statement[:120]}")
        if base.in_transaction:
            base.commit()
        build_error = "; ".join(errors) if errors else None
        if build_error:
            logger.debug("context %s did not build: %s", key, build_error)
        return cls(
            key,
            base,
            limits,
            diagnostics=diagnostics,
            build_error=build_error,
            shared_read_only=build_error is None,
            guard=guard,
            **origin,
        )

    @classmethod
    def from_path(
        cls,
        db_path: str | Path,
        limits: SandboxLimits = DEFAULT_LIMITS,
        *,
        max_copy_bytes: int = DEFAULT_MAX_COPY_BYTES,
    ) -> Database:
        """Open an existing SQLite file read-only (URI ``mode=ro``).

        Raises FileNotFoundError for a missing path (never creates a file) and
        ValueError for a file that is not a SQLite database. Files up to
        ``max_copy_bytes`` are copied into memory once; larger ones answer
        SELECTs on a shared read-only connection and copy only for writes.
        """
        path = Path(db_path).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"SQLite database not found: {db_path}")
        if path.stat().st_size == 0:
            raise ValueError(f"{db_path}: empty database (0-byte file, no tables)")
        source = connect_read_only(path, isolation_level=None, check_same_thread=False)
        try:
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            source.close()
            raise ValueError(f"{db_path}: not a readable SQLite database ({exc})") from exc
        key = f"file:{path}"
        size = path.stat().st_size
        if size <= max_copy_bytes:
            base = _memory_connection()
            source.backup(base)
            source.close()
            return cls(
                key,
                base,
                limits,
                diagnostics=[f"copied {size} bytes into memory"],
                shared_read_only=True,
                spec=("path", str(path)),
            )
        return cls(
            key,
            source,
            limits,
            diagnostics=[f"{size} bytes: SELECTs read the file in place (read-only)"],
            shared_read_only=True,
            spec=("path", str(path)),
        )

    def run(
        self,
        sql: str,
        *,
        capture_state: bool = False,
        allow_multiple: bool = False,
        deadline: float | None = None,
    ) -> ExecResult:
        """Run one untrusted statement on a pristine copy; never raises.

        A statement that could run long inside one SQLite instruction goes to the worker
        process instead (:meth:`isolated`, :mod:`sqlgrpo.sql.worker`).

        ``allow_multiple`` lets a trusted script (gold SQL) run several
        statements in order; the result is the last one's. ``deadline``
        (``time.monotonic()``) is the statement's batch's, when it has one.
        """
        if self.build_error is not None:
            return failure(
                _stype(sql), ErrorClass.OTHER, f"database did not build: {self.build_error}"
            )
        if self.isolated(sql, allow_multiple):
            from sqlgrpo.sql.worker import run_remote  # starts a process: imported when used

            return run_remote([(self, sql, capture_state, allow_multiple)], deadline=deadline)[0]
        return self.run_here(
            sql, capture_state=capture_state, allow_multiple=allow_multiple, deadline=deadline
        )

    def run_here(
        self,
        sql: str,
        *,
        capture_state: bool = False,
        allow_multiple: bool = False,
        deadline: float | None = None,
    ) -> ExecResult:
        """:meth:`run` in this process, whatever the statement; never raises."""
        if self.build_error is not None:
            return failure(
                _stype(sql), ErrorClass.OTHER, f"database did not build: {self.build_error}"
            )
        try:
            if self._shared_guard is not None and not capture_state:
                if isinstance(sql, str) and statement_type(sql) in QUERY_TYPES:
                    with self._lock:
                        result = run_untrusted(
                            self._base,
                            sql,
                            self.limits,
                            guard=self._shared_guard,
                            deadline=deadline,
                        )
                    # a trusted script of several statements runs in order on a copy
                    if not (
                        allow_multiple and result.error_class is ErrorClass.MULTIPLE_STATEMENTS
                    ):
                        return result
            copy = self.copy()
        except Exception as exc:  # noqa: BLE001
            return failure("UNKNOWN", ErrorClass.OTHER, f"could not copy the database: {exc}")
        try:
            return run_untrusted(
                copy,
                sql,
                self.limits,
                capture_state=capture_state,
                allow_multiple=allow_multiple,
                deadline=deadline,
            )
        finally:
            copy.close()

    def isolated(self, sql: Any, allow_multiple: bool = False) -> bool:
        """True when this untrusted statement runs in the worker process
        (``limits.isolation == "process"`` and :func:`sqlgrpo.sql.isolation.needs_isolation`);
        trusted scripts (``allow_multiple``) never do."""
        if self.limits.isolation != "process" or self.spec is None or allow_multiple:
            return False
        if not isinstance(sql, str):
            return False
        decision = self._decisions.get(sql)
        if decision is None:
            decision = needs_isolation(sql, lambda: self.row_count)
            if len(self._decisions) >= 4096:
                self._decisions.clear()
            self._decisions[sql] = decision
        return decision

    def copy(self) -> sqlite3.Connection:
        """A fresh, unhardened ``:memory:`` copy of the base (caller closes it)."""
        copy = _memory_connection()
        with self._lock:
            self._base.backup(copy)
        return copy

    @property
    def row_count(self) -> int:
        """Rows in all the tables together (counted once; for a file read in place, an
        upper estimate from its size): how many rows a cross join of N sources can reach."""
        if self._row_count is None:
            count = 0
            try:
                with self._lock:
                    if self.diagnostics and "in place" in self.diagnostics[0]:
                        count = int(self.diagnostics[0].split(" ", 1)[0]) // 16
                    else:
                        for (name,) in self._base.execute(
                            "SELECT name FROM sqlite_master WHERE type = 'table'"
                            " AND name NOT LIKE 'sqlite_%'"
                        ).fetchall():
                            quoted = '"' + name.replace('"', '""') + '"'
                            count += self._base.execute(
                                f"SELECT count(*) FROM {quoted}"
                            ).fetchone()[0]
            except (sqlite3.Error, ValueError):
                count = 1 << 40  # unknown: assume big
            self._row_count = count
        return self._row_count

    def tables(self) -> list[str]:
        """Names of the ordinary tables, sorted."""
        with self._lock:
            rows = self._base.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        return sorted(row[0] for row in rows)

    def close(self) -> None:
        """Close the base connection."""
        self._base.close()


def _run_transpiled(
    conn: sqlite3.Connection, statement: str, guard: SandboxGuard, deadline: float
) -> str | None:
    """Execute ``statement`` rewritten by sqlglot; returns the dialect that worked.
    Stops at ``deadline`` (``time.monotonic()``)."""
    import sqlglot  # lazy: only contexts SQLite rejects pay for it

    for dialect in TRANSPILE_DIALECTS:
        if time.monotonic() > deadline:
            return None
        try:
            rewritten = sqlglot.transpile(statement, read=dialect, write="sqlite")
        except Exception:  # noqa: BLE001 - sqlglot errors, recursion, ...
            continue
        if not rewritten:
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        guard.arm(remaining)
        try:
            conn.execute("SAVEPOINT transpile")
            for piece in rewritten:
                conn.execute(piece).close()
            conn.execute("RELEASE transpile")
            return dialect
        except Exception:  # noqa: BLE001
            if conn.in_transaction:
                conn.execute("ROLLBACK TO transpile")
                conn.execute("RELEASE transpile")
    return None


def cache_key(*, sql_context: str | None = None, db_path: str | Path | None = None) -> str:
    """The :attr:`Database.key` of a context script or a SQLite file (exactly one of them)."""
    if (sql_context is None) == (db_path is None):
        raise ValueError("DatabaseCache.get needs exactly one of sql_context or db_path")
    if sql_context is not None:
        return context_key(sql_context)
    return f"file:{Path(db_path).expanduser().resolve()}"  # type: ignore[arg-type]


def _stype(sql: Any) -> str:
    try:
        return statement_type(sql) if isinstance(sql, str) else "UNKNOWN"
    except Exception:  # noqa: BLE001
        return "UNKNOWN"


def context_key(sql_context: str) -> str:
    """Cache key of a context script."""
    digest = hashlib.blake2b(sql_context.encode("utf-8", "surrogatepass"), digest_size=12)
    return "ctx:" + digest.hexdigest()


class DatabaseCache:
    """Build each distinct context / open each file once; LRU of ``max_entries``."""

    def __init__(
        self,
        limits: SandboxLimits = DEFAULT_LIMITS,
        max_entries: int = 512,
        max_copy_bytes: int = DEFAULT_MAX_COPY_BYTES,
        context_limits: ContextLimits = DEFAULT_CONTEXT_LIMITS,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"DatabaseCache.max_entries must be >= 1, got {max_entries}")
        self.limits = limits
        self.max_entries = max_entries
        self.max_copy_bytes = max_copy_bytes
        self.context_limits = context_limits
        self._entries: OrderedDict[str, Database] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, *, sql_context: str | None = None, db_path: str | None = None) -> Database:
        """The database for a context script or a SQLite file (exactly one of them).

        Raises ValueError when neither or both are given, FileNotFoundError /
        ValueError for a bad ``db_path`` (see :meth:`Database.from_path`).
        """
        key = cache_key(sql_context=sql_context, db_path=db_path)
        with self._lock:
            database = self._entries.get(key)
            if database is not None:
                self._entries.move_to_end(key)
                return database
        if sql_context is not None:
            database = Database.from_context(
                sql_context, self.limits, key=key, context_limits=self.context_limits
            )
        else:
            database = Database.from_path(db_path, self.limits, max_copy_bytes=self.max_copy_bytes)
        with self._lock:
            self._entries[key] = database
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return database

    def peek(self, key: str) -> Database | None:
        """The cached database with this :attr:`Database.key` (marked recently used), or
        None when it is not cached."""
        with self._lock:
            database = self._entries.get(key)
            if database is not None:
                self._entries.move_to_end(key)
            return database

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every cached database."""
        with self._lock:
            self._entries.clear()

    def __getstate__(self) -> dict:
        # Connections cannot be pickled; a copy in another process starts empty.
        return {
            "limits": self.limits,
            "max_entries": self.max_entries,
            "max_copy_bytes": self.max_copy_bytes,
            "context_limits": self.context_limits,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)
