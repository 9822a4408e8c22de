"""PostgreSQL behind the engine interface (psycopg 3, imported when an engine opens).

Every untrusted statement gets its own transaction, always rolled back, opened by us with
settings the statement cannot change (docs/sandbox.md, "Engines"):

* **what may run**: queries (``SELECT``, ``WITH ... SELECT``, ``VALUES``, ``TABLE``) in a
  ``READ ONLY`` transaction; ``INSERT`` / ``UPDATE`` / ``DELETE`` (``ask``'s what-would-change
  summary, DML golds) in a read-write one that is rolled back. Anything else (``SET``,
  ``COPY``, ``DO``, ``CALL``, DDL, ``LISTEN``, transaction control, ...) is refused before it
  is sent. One statement only: queries go through a server-side cursor and DML through the
  extended protocol, both of which refuse a second command.
* **a role that may only read**: when the URL names a superuser, queries run under
  ``SET LOCAL ROLE pg_read_all_data`` (PostgreSQL 14+): no superuser rights, no
  ``pg_read_server_files`` / ``pg_execute_server_program``.
* **not resting on the role alone**: functions and relations that reach files, programs,
  the network, other sessions or settings, or run SQL held in a string, are refused by name
  before the statement is sent (:data:`DENIED_FUNCTIONS`, :data:`DENIED_PREFIXES`,
  :data:`DENIED_RELATIONS`; the text is tokenized as PostgreSQL reads it: comments, nested
  comments, ``E''`` and dollar-quoted strings, quoted identifiers; ``U&`` escapes are
  refused). ``set_config`` is one of them: no statement can undo the role or the timeouts.
* **bounded time**: ``statement_timeout`` and ``lock_timeout`` ``SET LOCAL`` by us before the
  statement (a ``SET`` is refused, ``set_config`` is refused); the client also cancels the
  statement at the deadline (``cancel_safe``), so even a stuck server is left at the deadline.
* **bounded memory and rows**: ``work_mem`` = :data:`WORK_MEM`, no parallel workers,
  ``temp_file_limit`` = ``max_memory_bytes`` where the role may set it (superuser); rows are
  fetched from the cursor in chunks, at most ``max_rows``, and ``max_result_bytes`` is
  checked per row.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
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
)
from sqlgrpo.sql.engines.load import TableData
from sqlgrpo.sql.errors import ErrorClass, classify_message
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, ExecResult, SandboxLimits, failure
from sqlgrpo.sql.statements import DML_TYPES, QUERY_TYPES, split_statements, statement_type

logger = logging.getLogger(__name__)

#: Memory one sort or hash of a statement may use before spilling.
WORK_MEM = "16MB"
#: Statement types (``sqlgrpo.sql.statements.statement_type``) that may run.
READ_TYPES = QUERY_TYPES | {"TABLE"}
WRITE_TYPES = frozenset({"INSERT", "UPDATE", "DELETE"})
#: PostgreSQL's command words: a statement starting with another word is a syntax error.
COMMAND_WORDS = frozenset(
    """ABORT ALTER ANALYZE BEGIN CALL CHECKPOINT CLOSE CLUSTER COMMENT COMMIT COPY CREATE
    DEALLOCATE DECLARE DELETE DISCARD DO DROP END EXECUTE EXPLAIN FETCH GRANT IMPORT INSERT
    LISTEN LOAD LOCK MERGE MOVE NOTIFY PREPARE REASSIGN REFRESH REINDEX RELEASE RESET REVOKE
    ROLLBACK SAVEPOINT SECURITY SELECT SET SHOW START TABLE TRUNCATE UNLISTEN UPDATE VACUUM
    VALUES WITH""".split()
)
#: Role queries run as when the URL names a superuser (PostgreSQL 14+).
READ_ROLE = "pg_read_all_data"
#: Functions refused when called: files, programs, network, other sessions, settings,
#: sequences (not transactional) and SQL run from a string.
DENIED_FUNCTIONS = frozenset(
    """set_config query_to_xml query_to_xml_and_xmlschema query_to_xmlschema cursor_to_xml
    cursor_to_xmlschema table_to_xml table_to_xml_and_xmlschema table_to_xmlschema
    schema_to_xml schema_to_xml_and_xmlschema schema_to_xmlschema database_to_xml
    database_to_xml_and_xmlschema database_to_xmlschema ts_stat ts_rewrite pg_stat_file
    pg_logdir_ls pg_reload_conf pg_rotate_logfile pg_promote pg_switch_wal
    pg_terminate_backend pg_cancel_backend pg_import_system_collations nextval setval
    pg_notify loread lowrite pg_log_backend_memory_contexts pg_backup_start pg_backup_stop
    pg_start_backup pg_stop_backup""".split()
)
DENIED_PREFIXES = (
    "pg_read_", "pg_write_", "pg_ls_", "pg_file_", "lo_", "dblink", "pg_advisory",
    "pg_try_advisory", "pg_replication_", "pg_create_", "pg_drop_", "pg_stat_reset",
    "pg_wal_replay", "pg_stat_statements_reset",
)  # fmt: skip
#: Relations refused wherever they are named (passwords, settings, other sessions, files).
DENIED_RELATIONS = frozenset(
    """pg_authid pg_shadow pg_user_mapping pg_user_mappings pg_settings pg_file_settings
    pg_hba_file_rules pg_ident_file_mappings pg_largeobject pg_largeobject_metadata
    pg_stat_activity""".split()
)
#: Column kinds from :mod:`sqlgrpo.sql.engines.load` as PostgreSQL types.
LOAD_TYPES = {"integer": "BIGINT", "real": "DOUBLE PRECISION", "text": "TEXT", "blob": "BYTEA"}


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EngineError(
            "psycopg is not installed: pip install 'sqlgrpo[engines]' (or 'psycopg[binary]')"
        ) from exc
    return psycopg


# --- the statement text, as PostgreSQL tokenizes it --------------------------------------


class UnsafeText(ValueError):
    """Text the tokenizer refuses (``U&`` escapes, unterminated quotes)."""


def pg_tokens(sql: str) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` for the words (lowercased), quoted identifiers (as written, unquoted)
    and punctuation of ``sql``; comments and string constants are skipped. Raises
    :class:`UnsafeText` for ``U&`` identifiers or strings."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif ch == "'":
            i = _skip_string(sql, i, backslashes=False)
        elif ch == '"':
            j, name = i + 1, []
            while True:
                end = sql.find('"', j)
                if end < 0:
                    raise UnsafeText("unterminated quoted identifier")
                name.append(sql[j:end])
                if sql.startswith('""', end):
                    name.append('"')
                    j = end + 2
                    continue
                i = end + 1
                break
            yield "ident", "".join(name)
        elif ch == "$" and (m := _DOLLAR.match(sql, i)) and not _word_before(sql, i):
            end = sql.find(m.group(0), m.end())
            if end < 0:
                raise UnsafeText("unterminated dollar-quoted string")
            i = end + len(m.group(0))
        elif ch.isalpha() or ch == "_":
            m = _WORD.match(sql, i)
            assert m is not None
            word = m.group(0)
            following = sql[m.end() : m.end() + 1]
            if word.lower() == "u" and sql.startswith("&", m.end()):
                raise UnsafeText("U& escapes are not allowed")
            if word.lower() in ("e", "b", "x", "n") and following == "'":
                i = _skip_string(sql, m.end(), backslashes=word.lower() == "e")
                continue
            yield "word", word.lower()
            i = m.end()
        else:
            yield "punct", ch
            i += 1


def _skip_string(sql: str, i: int, *, backslashes: bool) -> int:
    """The index after the string constant starting at ``sql[i] == "'"``."""
    j, n = i + 1, len(sql)
    while j < n:
        c = sql[j]
        if backslashes and c == "\\":
            j += 2
            continue
        if c == "'":
            if sql.startswith("''", j):
                j += 2
                continue
            return j + 1
        j += 1
    raise UnsafeText("unterminated string constant")


def _word_before(sql: str, i: int) -> bool:
    return i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$")


_DOLLAR = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def denied_reason(sql: str) -> str | None:
    """Why ``sql`` may not be sent (a denied function called, a denied relation named,
    unsafe text), or None."""
    try:
        toks = list(pg_tokens(sql))
    except UnsafeText as exc:
        return str(exc)
    for index, (kind, text) in enumerate(toks):
        if kind == "punct":
            continue
        name = text  # words are lowercased; a quoted name is exact, as PostgreSQL reads it
        if name in DENIED_RELATIONS:
            return f"{name} may not be read"
        called = index + 1 < len(toks) and toks[index + 1] == ("punct", "(")
        if called and (name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)):
            return f"{name}() may not be called"
    return None


# --- errors --------------------------------------------------------------------------------


_SQLSTATE_CLASSES = {
    "42601": ErrorClass.SYNTAX,
    "42P01": ErrorClass.MISSING_TABLE,
    "3F000": ErrorClass.MISSING_TABLE,  # schema does not exist
    "42703": ErrorClass.MISSING_COLUMN,
    "42702": ErrorClass.AMBIGUOUS_COLUMN,
    "42725": ErrorClass.UNKNOWN_FUNCTION,  # ambiguous function
    "42804": ErrorClass.TYPE_MISMATCH,
    "42846": ErrorClass.TYPE_MISMATCH,  # cannot coerce
    "22P02": ErrorClass.TYPE_MISMATCH,  # invalid text representation
    "21000": ErrorClass.TYPE_MISMATCH,  # more than one row returned by a subquery
    "42601_multi": ErrorClass.MULTIPLE_STATEMENTS,
    "57014": ErrorClass.TIMEOUT,
    "55P03": ErrorClass.TIMEOUT,  # lock not available (lock_timeout)
    "25006": ErrorClass.READONLY,
    "42501": ErrorClass.FORBIDDEN,
    "2F003": ErrorClass.FORBIDDEN,
    "0A000": ErrorClass.FORBIDDEN,  # feature not supported (e.g. in a read-only context)
}


def classify_postgres(exc: BaseException) -> ErrorClass:
    """The :class:`ErrorClass` of a psycopg exception (by SQLSTATE, then by message)."""
    if isinstance(exc, (ResultTooBig, MemoryError, RecursionError, OverflowError)):
        return ErrorClass.RESOURCE_LIMIT
    state = getattr(exc, "sqlstate", None) or ""
    text = str(exc).lower()
    if "multiple commands" in text:
        return ErrorClass.MULTIPLE_STATEMENTS
    if state == "42883":  # undefined function, or an operator for the wrong types
        return (
            ErrorClass.TYPE_MISMATCH
            if "operator does not exist" in text
            else ErrorClass.UNKNOWN_FUNCTION
        )
    if state in _SQLSTATE_CLASSES:
        return _SQLSTATE_CLASSES[state]
    if state.startswith("23"):
        return ErrorClass.CONSTRAINT
    if state.startswith(("53", "54")):  # insufficient resources, program limit exceeded
        return ErrorClass.RESOURCE_LIMIT
    if state.startswith("22"):
        return ErrorClass.TYPE_MISMATCH if "invalid input syntax" in text else ErrorClass.OTHER
    return classify_message(text)


# --- the engine ----------------------------------------------------------------------------


class PostgresEngine(Engine):
    """A PostgreSQL database (one schema of it, when the target names one)."""

    name = "postgres"

    def __init__(
        self, target: DbTarget, limits: SandboxLimits = DEFAULT_LIMITS, *, schema: str = ""
    ) -> None:
        super().__init__(f"postgres:{target.label}" + (f"#{schema}" if schema else ""), limits)
        self.target = target
        self.schema = schema
        self._lock = threading.Lock()
        self._watchdog = Watchdog()
        self._conn: Any = None
        self._connect()

    @classmethod
    def open(
        cls, target: DbTarget, limits: SandboxLimits = DEFAULT_LIMITS, *, schema: str = ""
    ) -> PostgresEngine:
        """Connect to the server; :class:`EngineError` when it cannot be reached."""
        return cls(target, limits, schema=schema)

    def _connect(self) -> None:
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(
                self.target.location,
                autocommit=True,
                connect_timeout=10,
                application_name="sqlgrpo",
            )
        except psycopg.Error as exc:
            raise EngineError(
                f"{self.target.label}: cannot connect to PostgreSQL ({message_of(exc)})"
            ) from exc
        self._conn = conn
        self.superuser = conn.info.parameter_status("is_superuser") == "on"
        self.server_version = conn.info.server_version
        if self.superuser and self.server_version < 140000:
            self.diagnostics.append(
                "superuser on PostgreSQL < 14: no read-only role to switch to; queries rely on "
                "the READ ONLY transaction and the denied names"
            )
        elif self.superuser:
            self.diagnostics.append(f"superuser URL: queries run as {READ_ROLE}")

    def _begin(self, *, read_only: bool, timeout_ms: int) -> None:
        """Open our transaction with the settings the statement runs under."""
        settings = [
            f"SET LOCAL statement_timeout = {timeout_ms}",
            f"SET LOCAL lock_timeout = {timeout_ms}",
            f"SET LOCAL idle_in_transaction_session_timeout = {timeout_ms + 60_000}",
            f"SET LOCAL work_mem = '{WORK_MEM}'",
            "SET LOCAL max_parallel_workers_per_gather = 0",
        ]
        if self.superuser:
            kb = max(1, self.limits.max_memory_bytes // 1024)
            settings.append(f"SET LOCAL temp_file_limit = {kb}")
        if self.schema:
            settings.append(
                f"SET LOCAL search_path = {quote_identifier(self.schema, fold_lower=True)}"
            )
        if read_only and self.superuser and self.server_version >= 140000:
            settings.append(f"SET LOCAL ROLE {READ_ROLE}")
        begin = "BEGIN READ ONLY" if read_only else "BEGIN READ WRITE"
        self._conn.execute("; ".join([begin, *settings]))

    def _end(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - a broken connection is reopened on the next call
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _ensure(self) -> None:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._connect()

    # --- describing ------------------------------------------------------------------

    def _trusted(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Our own catalog query, read-only, under the same time limit."""
        with self._lock:
            self._ensure()
            self._begin(read_only=True, timeout_ms=int(max(self.limits.timeout_s, 10.0) * 1000))
            try:
                return self._conn.execute(sql, list(params)).fetchall()
            finally:
                self._end()

    def _relations(self) -> list[tuple[int, str, str]]:
        return [
            (oid, schema, name)
            for oid, schema, name in self._trusted(
                "SELECT c.oid, n.nspname, c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') "
                "AND n.nspname = ANY (current_schemas(false)) "
                "AND has_table_privilege(c.oid, 'SELECT') ORDER BY n.nspname, c.relname"
            )
        ]

    def tables(self) -> list[str]:
        return sorted(name for _, _, name in self._relations())

    def schema_text(self, sample_rows: int = 0) -> str:
        if sample_rows < 0:
            raise ValueError(f"sample_rows must be >= 0, got {sample_rows}")
        relations = self._relations()
        if not relations:
            return ""
        oids = [oid for oid, _, _ in relations]
        columns: dict[int, list[tuple[int, str, str, bool]]] = {}
        for relid, attnum, name, typ, notnull in self._trusted(
            "SELECT attrelid::bigint, attnum, attname, format_type(atttypid, atttypmod), "
            "attnotnull FROM pg_attribute WHERE attrelid = ANY (%s::oid[]) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attrelid, attnum",
            [oids],
        ):
            columns.setdefault(relid, []).append((attnum, name, typ, notnull))
        keys: dict[int, list[tuple[str, list[int], int | None, list[int]]]] = {}
        ref_columns: dict[tuple[int, int], str] = {}
        for relid, kind, conkey, confrelid, confkey in self._trusted(
            "SELECT conrelid::bigint, contype, conkey, confrelid::bigint, confkey "
            "FROM pg_constraint WHERE conrelid = ANY (%s::oid[]) AND contype IN ('p', 'f') "
            "ORDER BY conrelid, contype DESC, conname",
            [oids],
        ):
            keys.setdefault(relid, []).append(
                (kind, list(conkey or []), confrelid, list(confkey or []))
            )
        referenced = {c for entries in keys.values() for _, _, c, _ in entries if c}
        for relid, attnum, name in self._trusted(
            "SELECT attrelid::bigint, attnum, attname FROM pg_attribute "
            "WHERE attrelid = ANY (%s::oid[]) AND attnum > 0",
            [sorted(referenced) or [0]],
        ):
            ref_columns[(relid, attnum)] = name
        ref_names = dict(
            self._trusted(
                "SELECT oid::bigint, relname FROM pg_class WHERE oid = ANY (%s::oid[])",
                [sorted(referenced) or [0]],
            )
        )
        quote = lambda n: quote_identifier(n, fold_lower=True)  # noqa: E731
        parts = []
        for oid, schema, name in relations:
            cols = columns.get(oid, [])
            by_num = {num: col for num, col, _, _ in cols}
            primary: tuple[str, ...] = ()
            foreign = []
            for kind, conkey, confrelid, confkey in keys.get(oid, []):
                if kind == "p":
                    primary = tuple(by_num[k] for k in conkey if k in by_num)
                elif confrelid:
                    foreign.append(
                        ForeignKey(
                            tuple(by_num[k] for k in conkey if k in by_num),
                            ref_names.get(confrelid, "?"),
                            tuple(ref_columns.get((confrelid, k), "?") for k in confkey),
                        )
                    )
            info = TableInfo(
                name,
                tuple(Column(c, t, bool(nn) and c not in primary) for _, c, t, nn in cols),
                primary,
                tuple(foreign),
            )
            ddl = info.ddl(quote)
            if sample_rows:
                table = f"{quote(schema)}.{quote(name)}"
                rows = self._trusted(f"SELECT * FROM {table} LIMIT {int(sample_rows)}")
                if rows:
                    ddl += "\n" + example_rows_comment(
                        name, [c for _, c, _, _ in cols], [tuple(r) for r in rows]
                    )
            parts.append(ddl)
        return "\n".join(parts)

    def state(self) -> dict[str, list[tuple]]:
        with self._lock:
            self._ensure()
            self._begin(read_only=True, timeout_ms=int(self.limits.timeout_s * 1000))
            try:
                return _capture(self._conn, self.limits)
            finally:
                self._end()

    # --- running ---------------------------------------------------------------------

    def run(
        self, sql: str, *, capture_state: bool = False, allow_multiple: bool = False
    ) -> ExecResult:
        prepared = self.check_statement(sql, allow_multiple=allow_multiple)
        if isinstance(prepared, ExecResult):
            return prepared
        stype = prepared.statement_type
        pieces = [prepared.sql]
        if allow_multiple:
            pieces = split_statements(prepared.sql) or [prepared.sql]
        for piece in pieces:
            refused = self._refusal(piece, stype if len(pieces) == 1 else None)
            if refused is not None:
                return finish(refused, prepared)
        with self._lock:
            try:
                self._ensure()
            except EngineError as exc:
                return finish(failure(stype, ErrorClass.OTHER, str(exc)), prepared)
            return finish(self._run(prepared, pieces, capture_state), prepared)

    def _refusal(self, sql: str, stype: str | None) -> ExecResult | None:
        kind = stype or statement_type(sql)
        if kind not in COMMAND_WORDS and kind != "UNKNOWN":
            return failure(kind, ErrorClass.SYNTAX, f'syntax error at or near "{kind.lower()}"')
        if kind not in READ_TYPES | WRITE_TYPES:
            return failure(
                kind,
                ErrorClass.FORBIDDEN,
                f"{kind} statements are not allowed (PostgreSQL: queries and "
                "INSERT / UPDATE / DELETE only)",
            )
        reason = denied_reason(sql)
        if reason is not None:
            return failure(kind, ErrorClass.FORBIDDEN, reason)
        return None

    def _run(self, prepared: Prepared, pieces: list[str], capture_state: bool) -> ExecResult:
        stype = prepared.statement_type
        kinds = [statement_type(p) for p in pieces]
        writes = capture_state or any(k in WRITE_TYPES for k in kinds)
        timeout_ms = max(1, int(self.limits.timeout_s * 1000))
        deadline = time.monotonic() + self.limits.timeout_s
        fired = threading.Event()
        conn = self._conn

        def cancel() -> None:
            fired.set()
            try:
                conn.cancel_safe(timeout=2.0)
            except Exception:  # noqa: BLE001 - the server-side timeout still holds
                pass

        try:
            self._begin(read_only=not writes, timeout_ms=timeout_ms)
        except Exception as exc:  # noqa: BLE001
            self._end()
            return failure(stype, classify_postgres(exc), message_of(exc))
        self._watchdog.arm(self.limits.timeout_s, cancel)
        try:
            for piece in pieces[:-1]:  # a trusted script's leading statements
                conn.cursor().execute(piece, binary=True)
            last, last_kind = pieces[-1], kinds[-1]
            columns: tuple[str, ...] = ()
            rows: list[tuple] = []
            truncated = False
            rowcount = -1
            if last_kind in READ_TYPES:
                cursor = conn.cursor(name="sqlgrpo_statement")
                cursor.execute(last)
                if cursor.description is not None:
                    columns = tuple(d.name for d in cursor.description)
                    rows, truncated = fetch_plain(cursor.fetchmany, self.limits)
                cursor.close()
            else:
                cursor = conn.cursor()
                cursor.execute(last, binary=True)
                rowcount = cursor.rowcount
                if cursor.description is not None:  # RETURNING
                    columns = tuple(d.name for d in cursor.description)
                    rows, truncated = fetch_plain(cursor.fetchmany, self.limits)
            state = _capture(conn, self.limits) if capture_state else None
            if fired.is_set() or time.monotonic() > deadline:
                return _timeout(stype, self.limits)
            return ExecResult(
                ok=True,
                statement_type=stype,
                columns=columns,
                rows=rows,
                truncated=truncated,
                state=state,
                rowcount=rowcount if stype in DML_TYPES else -1,
            )
        except Exception as exc:  # noqa: BLE001 - untrusted input: every failure is a result
            if fired.is_set():
                return _timeout(stype, self.limits)
            return failure(stype, classify_postgres(exc), message_of(exc))
        finally:
            self._watchdog.disarm()
            self._end()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None


def _timeout(stype: str, limits: SandboxLimits) -> ExecResult:
    return failure(
        stype, ErrorClass.TIMEOUT, f"statement exceeded the {limits.timeout_s:g} s limit"
    )


def _capture(conn: Any, limits: SandboxLimits) -> dict[str, list[tuple]]:
    """Every table on the search path (lowercased name -> at most ``max_rows`` rows)."""
    names = conn.execute(
        "SELECT schemaname, tablename FROM pg_tables "
        "WHERE schemaname = ANY (current_schemas(false)) ORDER BY 1, 2"
    ).fetchall()
    state: dict[str, list[tuple]] = {}
    for schema, name in names:
        quote = lambda n: quote_identifier(n, fold_lower=True)  # noqa: E731
        cursor = conn.cursor(name="sqlgrpo_state")
        cursor.execute(f"SELECT * FROM {quote(schema)}.{quote(name)}")
        state[name.lower()] = fetch_plain(cursor.fetchmany, limits)[0]
        cursor.close()
    return state


# --- loading (trusted: evaluation data) ----------------------------------------------------


def load_tables(
    url: str, schema: str, tables: Sequence[TableData], *, replace: bool = True
) -> None:
    """Create ``schema`` on the server at ``url`` and fill it with ``tables`` (names
    lowercased, so unquoted references in any case find them). This writes: it is for
    loading evaluation data into a database of your own, never for a user's database."""
    psycopg = _psycopg()
    quote = lambda n: quote_identifier(n.lower(), fold_lower=True)  # noqa: E731
    with psycopg.connect(url, autocommit=False, connect_timeout=10) as conn:
        if replace:
            conn.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
        conn.execute(f"CREATE SCHEMA {quote(schema)}")
        for table in tables:
            name = f"{quote(schema)}.{quote(table.name)}"
            seen: dict[str, int] = {}
            cols = []
            for column, kind in zip(table.columns, table.kinds, strict=True):
                lowered = column.lower()
                seen[lowered] = seen.get(lowered, 0) + 1
                if seen[lowered] > 1:
                    raise EngineError(
                        f"{table.name}: two columns named {lowered!r} once lowercased"
                    )
                cols.append(f"{quote(column)} {LOAD_TYPES[kind]}")
            conn.execute(f"CREATE TABLE {name} ({', '.join(cols)})")
            if table.rows:
                with conn.cursor().copy(f"COPY {name} FROM STDIN") as copy:
                    for row in table.rows:
                        copy.write_row(row)
        conn.commit()
