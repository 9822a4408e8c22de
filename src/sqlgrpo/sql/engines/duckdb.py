"""DuckDB behind the engine interface (PyPI ``duckdb``, imported when an engine opens).

What holds for every untrusted statement (docs/sandbox.md, "Engines"):

* **nothing written**: a ``.duckdb`` file is opened ``read_only``; Parquet / CSV files are
  views in an in-memory database. Every statement runs inside ``BEGIN`` ... ``ROLLBACK``
  and only these statement types run at all: SELECT (on the read-only base), INSERT /
  UPDATE / DELETE / CREATE / DROP / ALTER (on an in-memory copy, made once, whose
  transaction is rolled back, so the next statement sees it pristine). Transaction control,
  SET / RESET (configuration and variables), PRAGMA, ATTACH / DETACH, COPY, EXPORT, INSTALL /
  LOAD, PREPARE / EXECUTE, CALL and the rest are refused (``forbidden``) before they run.
* **no file, program or network reach**: ``enable_external_access=false`` (no
  ``read_csv('/etc/passwd')``, ``COPY ... TO``, ``ATTACH``, ``INSTALL`` / ``LOAD``, httpfs;
  data-file views read only their own files through ``allowed_paths``),
  ``autoinstall/autoload_known_extensions=false``, ``python_enable_replacements=false`` (a
  table name never resolves to a Python variable of the caller), then
  ``lock_configuration=true``: no statement can change a setting back.
* **bounded time**: ``interrupt()`` from a timer at the deadline (DuckDB checks for it
  between vectors); the elapsed time is checked afterwards, so an overrun is a ``timeout``.
  Work inside one function call (``repeat('x', 1e9)``) is not interruptible: the
  process-isolated engine (:mod:`sqlgrpo.sql.engines.isolated`) kills its worker at
  ``timeout_s + kill_margin_s``.
* **bounded memory and rows**: ``memory_limit`` = ``max_memory_bytes``, no temporary
  directory (nothing spills to disk: past the limit a statement fails as
  ``resource_limit``), ``threads`` = :data:`THREADS`; at most ``max_rows`` rows fetched
  (results stream: ``range(1e12)`` is never materialised), ``max_result_bytes`` checked per
  row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlgrpo.sql.engines.base import (
    Column,
    DbTarget,
    Engine,
    EngineError,
    ForeignKey,
    Prepared,
    ResultTooBig,
    TableInfo,
    Watchdog,
    example_rows_comment,
    fetch_plain,
    finish,
    message_of,
    quote_identifier,
    view_name,
)
from sqlgrpo.sql.engines.load import TableData, read_sqlite_tables
from sqlgrpo.sql.errors import ErrorClass, classify_message
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, ExecResult, SandboxLimits, failure
from sqlgrpo.sql.statements import DML_TYPES

logger = logging.getLogger(__name__)

#: Threads a DuckDB database may use for one statement.
THREADS = 1
#: DuckDB statement types that may run: reads on the base, the others on the in-memory copy.
READ_STATEMENTS = frozenset({"SELECT"})
WRITE_STATEMENTS = frozenset({"INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER"})
#: Column types for data read from SQLite (see :mod:`sqlgrpo.sql.engines.load`).
LOAD_TYPES = {"integer": "BIGINT", "real": "DOUBLE", "text": "VARCHAR", "blob": "BLOB"}


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EngineError(
            "DuckDB is not installed: pip install 'sqlgrpo[engines]' (or pip install duckdb)"
        ) from exc
    return duckdb


def _config(limits: SandboxLimits) -> dict[str, Any]:
    """Settings fixed when a connection opens (locked afterwards by :func:`_lock_down`)."""
    return {
        "python_enable_replacements": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "temp_directory": "",
        "threads": THREADS,
        "memory_limit": f"{max(1, limits.max_memory_bytes // (1024 * 1024))}MiB",
    }


def _lock_down(conn: Any, allowed_paths: Sequence[str] = ()) -> None:
    """No file, network or extension reach, then no setting may change."""
    if allowed_paths:
        listed = ", ".join("'" + p.replace("'", "''") + "'" for p in allowed_paths)
        conn.execute(f"SET allowed_paths = [{listed}]")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")


def classify_duckdb(exc: BaseException) -> ErrorClass:
    """The :class:`ErrorClass` of a DuckDB exception."""
    duckdb = _duckdb()
    text = str(exc).lower()
    if isinstance(exc, ResultTooBig) or isinstance(exc, duckdb.OutOfMemoryException):
        return ErrorClass.RESOURCE_LIMIT
    if isinstance(exc, (MemoryError, RecursionError, OverflowError)):
        return ErrorClass.RESOURCE_LIMIT
    if isinstance(exc, duckdb.InterruptException):
        return ErrorClass.TIMEOUT
    if isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in text:
        return ErrorClass.FORBIDDEN
    if "read-only mode" in text or "read only" in text:
        return ErrorClass.READONLY
    if isinstance(exc, (duckdb.ParserException, duckdb.SyntaxException)):
        return ErrorClass.SYNTAX
    if isinstance(exc, duckdb.ConstraintException):
        return ErrorClass.CONSTRAINT
    if "ambiguous reference" in text:
        return ErrorClass.AMBIGUOUS_COLUMN
    if "referenced column" in text or ("column" in text and "not found" in text):
        return ErrorClass.MISSING_COLUMN
    if "table with name" in text or "table function with name" in text:
        return ErrorClass.MISSING_TABLE
    if "function with name" in text or "macro function" in text:
        return ErrorClass.UNKNOWN_FUNCTION
    if isinstance(exc, (duckdb.ConversionException, duckdb.TypeMismatchException)) or (
        "no function matches" in text
        or "could not choose a best candidate" in text
        or "cannot compare" in text
        or "cannot mix" in text
        or "set operations can only" in text
    ):
        return ErrorClass.TYPE_MISMATCH
    return classify_message(text)


class DuckdbEngine(Engine):
    """A DuckDB database: a ``.duckdb`` file, Parquet/CSV views, or a copy of an SQLite one."""

    name = "duckdb"

    def __init__(
        self,
        key: str,
        conn: Any,
        limits: SandboxLimits = DEFAULT_LIMITS,
        *,
        target: DbTarget | None = None,
        writable: bool = False,
    ) -> None:
        super().__init__(key, limits)
        self._conn = conn
        self._target = target
        self._copy: Any = conn if writable else None  # where statements that write run
        self._lock = threading.Lock()
        self._watchdog = Watchdog()
        self._closed = False

    # --- opening ---------------------------------------------------------------------

    @classmethod
    def open(cls, target: DbTarget, limits: SandboxLimits = DEFAULT_LIMITS) -> DuckdbEngine:
        """Open a ``.duckdb`` file read-only, or data files as views; :class:`EngineError`
        when DuckDB cannot read them."""
        duckdb = _duckdb()
        try:
            if target.kind == "data":
                conn = duckdb.connect(":memory:", config=_config(limits))
                names = _create_views(conn, target.files)
                _lock_down(conn, target.files)
                engine = cls(f"duckdb:{target.location}", conn, limits, target=target)
                engine.diagnostics.append(f"views over {len(names)} file(s): {', '.join(names)}")
            else:
                conn = duckdb.connect(target.location, read_only=True, config=_config(limits))
                _lock_down(conn)
                engine = cls(f"duckdb:{target.location}", conn, limits, target=target)
                engine.diagnostics.append("opened read-only")
        except duckdb.Error as exc:
            raise EngineError(
                f"{target.label}: cannot open with DuckDB ({message_of(exc)})"
            ) from exc
        return engine

    @classmethod
    def from_tables(
        cls, key: str, tables: Sequence[TableData], limits: SandboxLimits = DEFAULT_LIMITS
    ) -> DuckdbEngine:
        """An in-memory database holding ``tables`` (read from SQLite by
        :func:`sqlgrpo.sql.engines.load.read_sqlite_tables`); statements that write run on it
        inside a transaction that is rolled back."""
        duckdb = _duckdb()
        conn = duckdb.connect(":memory:", config=_config(limits))
        for table in tables:
            _load_table(conn, table)
        _lock_down(conn)
        return cls(key, conn, limits, writable=True)

    @classmethod
    def from_sqlite(
        cls, sqlite_conn: Any, key: str, limits: SandboxLimits = DEFAULT_LIMITS
    ) -> DuckdbEngine:
        """An in-memory copy of an SQLite database (a ``sqlite3`` connection)."""
        return cls.from_tables(key, read_sqlite_tables(sqlite_conn), limits)

    def _writable(self) -> Any:
        """The in-memory copy statements that write run on (made on first use)."""
        if self._copy is not None:
            return self._copy
        duckdb = _duckdb()
        target = self._target
        assert target is not None
        conn = duckdb.connect(":memory:", config=_config(self.limits))
        if target.kind == "data":
            for path in target.files:
                name = quote_identifier(view_name(path), fold_lower=False)
                conn.execute(f"CREATE TABLE {name} AS SELECT * FROM {_reader(path)}")
        else:
            quoted = target.location.replace("'", "''")
            conn.execute(f"ATTACH '{quoted}' AS sqlgrpo_source (READ_ONLY)")
            conn.execute("COPY FROM DATABASE sqlgrpo_source TO memory")
            conn.execute("DETACH sqlgrpo_source")
        _lock_down(conn)
        self._copy = conn
        self.diagnostics.append("statements that write run on an in-memory copy")
        return conn

    # --- describing ------------------------------------------------------------------

    def _relations(self) -> list[tuple[str, str]]:
        """(schema, name) of every table and view of the database, in order."""
        rows = self._conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal "
            "AND database_name = current_database() UNION ALL "
            "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
            "AND database_name = current_database() ORDER BY 1, 2"
        ).fetchall()
        return [(schema, name) for schema, name in rows if not schema.startswith("pg_")]

    def tables(self) -> list[str]:
        with self._lock:
            return sorted(name for _, name in self._relations())

    def table_info(self, schema: str, name: str) -> TableInfo:
        """Columns with types, primary key and foreign keys of one table or view."""
        cols = self._conn.execute(
            "SELECT column_name, data_type, NOT is_nullable FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [schema, name],
        ).fetchall()
        constraints = self._conn.execute(
            "SELECT constraint_type, constraint_column_names, referenced_table, "
            "referenced_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') ORDER BY constraint_index",
            [schema, name],
        ).fetchall()
        primary: tuple[str, ...] = ()
        foreign: list[ForeignKey] = []
        for kind, columns, ref_table, ref_columns in constraints:
            if kind == "PRIMARY KEY":
                primary = tuple(columns)
            elif ref_table:
                foreign.append(ForeignKey(tuple(columns), ref_table, tuple(ref_columns or ())))
        return TableInfo(
            name,
            tuple(Column(c, t, bool(nn) and c not in primary) for c, t, nn in cols),
            primary,
            tuple(foreign),
        )

    def schema_text(self, sample_rows: int = 0) -> str:
        if sample_rows < 0:
            raise ValueError(f"sample_rows must be >= 0, got {sample_rows}")
        parts = []
        with self._lock:
            for schema, name in self._relations():
                info = self.table_info(schema, name)
                ddl = info.ddl(lambda n: quote_identifier(n, fold_lower=False))
                if sample_rows:
                    cur = self._conn.execute(
                        f"SELECT * FROM {_qualified(schema, name)} LIMIT {int(sample_rows)}"
                    )
                    rows = cur.fetchall()
                    if rows:
                        columns = [d[0] for d in cur.description]
                        ddl += "\n" + example_rows_comment(name, columns, rows)
                parts.append(ddl)
        return "\n".join(parts)

    def state(self) -> dict[str, list[tuple]]:
        with self._lock:
            conn = self._writable()
            return _capture(conn, self.limits)

    # --- running ---------------------------------------------------------------------

    def run(
        self, sql: str, *, capture_state: bool = False, allow_multiple: bool = False
    ) -> ExecResult:
        prepared = self.check_statement(sql, allow_multiple=allow_multiple)
        if isinstance(prepared, ExecResult):
            return prepared
        try:
            with self._lock:
                return finish(self._run(prepared, capture_state, allow_multiple), prepared)
        except Exception as exc:  # noqa: BLE001 - untrusted input: every failure is a result
            return finish(
                failure(prepared.statement_type, classify_duckdb(exc), message_of(exc)), prepared
            )

    def _run(self, prepared: Prepared, capture_state: bool, allow_multiple: bool) -> ExecResult:
        stype = prepared.statement_type
        if self._closed:
            return failure(stype, ErrorClass.OTHER, "the database is closed")
        try:
            statements = self._conn.extract_statements(prepared.sql)
        except Exception as exc:  # noqa: BLE001 - DuckDB's parser: classified
            return failure(stype, classify_duckdb(exc), message_of(exc))
        if not statements:
            return failure(stype, ErrorClass.EMPTY, "no SQL statement")
        if len(statements) > 1 and not allow_multiple:
            return failure(
                stype,
                ErrorClass.MULTIPLE_STATEMENTS,
                f"{len(statements)} statements; exactly one is allowed",
            )
        kinds = [st.type.name for st in statements]
        refused = [k for k in kinds if k not in READ_STATEMENTS | WRITE_STATEMENTS]
        if refused:
            return failure(stype, ErrorClass.FORBIDDEN, f"{refused[0]} statements are not allowed")
        writes = capture_state or any(k in WRITE_STATEMENTS for k in kinds)
        conn = self._writable() if writes else self._conn
        deadline = time.monotonic() + self.limits.timeout_s
        fired = threading.Event()

        def interrupt() -> None:
            fired.set()
            conn.interrupt()

        conn.execute("BEGIN TRANSACTION")
        self._watchdog.arm(self.limits.timeout_s, interrupt)
        try:
            for statement in statements[:-1]:  # a trusted script's leading statements
                conn.execute(statement).fetchall()
            cursor = conn.execute(statements[-1])
            columns: tuple[str, ...] = ()
            rows: list[tuple] = []
            truncated = False
            rowcount = -1
            last = kinds[-1]
            if cursor.description is not None:
                columns = tuple(d[0] for d in cursor.description)
                rows, truncated = fetch_plain(cursor.fetchmany, self.limits)
                if last in ("INSERT", "UPDATE", "DELETE") and columns == ("Count",) and rows:
                    rowcount, rows, columns = int(rows[0][0]), [], ()
            state = _capture(conn, self.limits) if capture_state else None
            if fired.is_set() or time.monotonic() > deadline:
                return _timeout(stype, self.limits)
            return ExecResult(
                ok=True,
                statement_type=stype if stype != "UNKNOWN" else last,
                columns=columns,
                rows=rows,
                truncated=truncated,
                state=state,
                rowcount=rowcount if stype in DML_TYPES else -1,
            )
        except Exception as exc:  # noqa: BLE001
            if fired.is_set():
                return _timeout(stype, self.limits)
            return failure(stype, classify_duckdb(exc), message_of(exc))
        finally:
            self._watchdog.disarm()
            try:
                conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - no transaction left to end
                pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            for conn in {id(c): c for c in (self._conn, self._copy) if c is not None}.values():
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass


def _timeout(stype: str, limits: SandboxLimits) -> ExecResult:
    return failure(
        stype, ErrorClass.TIMEOUT, f"statement exceeded the {limits.timeout_s:g} s limit"
    )


def _qualified(schema: str, name: str) -> str:
    table = quote_identifier(name, fold_lower=False)
    return table if schema == "main" else f"{quote_identifier(schema, fold_lower=False)}.{table}"


def _reader(path: str) -> str:
    quoted = "'" + path.replace("'", "''") + "'"
    if path.lower().endswith(".parquet"):
        return f"read_parquet({quoted})"
    if path.lower().endswith((".tsv", ".tsv.gz")):
        return f"read_csv({quoted}, delim = '\\t')"
    return f"read_csv({quoted})"


def _create_views(conn: Any, files: Sequence[str]) -> list[str]:
    names: dict[str, str] = {}
    for path in files:
        name = view_name(path)
        if name.lower() in names:
            raise EngineError(
                f"{path}: two data files would both be the view {name!r} "
                f"(the other: {names[name.lower()]})"
            )
        names[name.lower()] = path
        conn.execute(
            f"CREATE VIEW {quote_identifier(name, fold_lower=False)} AS SELECT * FROM {_reader(path)}"
        )
        conn.execute(f"SELECT * FROM {quote_identifier(name, fold_lower=False)} LIMIT 0").fetchall()
    return [view_name(p) for p in files]


def _load_table(conn: Any, table: TableData) -> None:
    """Create ``table`` and fill it (through Arrow, one column at a time)."""
    import pyarrow as pa

    arrow_types = {
        "integer": pa.int64(),
        "real": pa.float64(),
        "text": pa.string(),
        "blob": pa.binary(),
    }
    name = quote_identifier(table.name, fold_lower=False)
    columns = ", ".join(
        f"{quote_identifier(c, fold_lower=False)} {LOAD_TYPES[k]}"
        for c, k in zip(table.columns, table.kinds, strict=True)
    )
    conn.execute(f"CREATE TABLE {name} ({columns})")
    if not table.rows:
        return
    arrays = [
        pa.array([row[i] for row in table.rows], type=arrow_types[kind])
        for i, kind in enumerate(table.kinds)
    ]
    data = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])
    conn.register("sqlgrpo_load", data)
    try:
        conn.execute(f"INSERT INTO {name} SELECT * FROM sqlgrpo_load")
    finally:
        conn.unregister("sqlgrpo_load")


def _capture(conn: Any, limits: SandboxLimits) -> dict[str, list[tuple]]:
    """Every base table's rows (lowercased name -> at most ``max_rows`` rows)."""
    names = conn.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal "
        "AND database_name = current_database() ORDER BY 1, 2"
    ).fetchall()
    state: dict[str, list[tuple]] = {}
    for schema, name in names:
        cursor = conn.execute(f"SELECT * FROM {_qualified(schema, name)}")
        state[name.lower()] = fetch_plain(cursor.fetchmany, limits)[0]
    return state
