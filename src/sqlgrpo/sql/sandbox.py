"""Run one untrusted SQL statement on a SQLite connection, safely.

The connection is expected to be a private, throw-away copy (see
:mod:`sqlgrpo.sql.database`). :func:`harden` installs, once per connection:

* a progress handler that interrupts any statement running past its deadline
  (SQLite checks it every few hundred VM instructions, so it also stops
  runaway recursive CTEs and cross joins; no threads involved), and the
  elapsed time compared with the deadline after every statement, so one that
  overran inside a single instruction is a timeout, never a statement that ran;
* ``Connection.setlimit`` caps on value size, SQL length, LIKE/GLOB pattern
  length, result columns, expression depth, compound SELECTs, triggers,
  attached databases (0), ...;
* SQLite's process-wide hard heap limit, set to the memory in use plus
  ``max_memory_bytes`` for the duration of each untrusted statement
  (:func:`heap_budget`);
* an authorizer that denies ATTACH/DETACH (and so ``VACUUM INTO``), every
  PRAGMA except read-only schema introspection, ``load_extension`` and other
  file-touching functions, and virtual tables;
* in-memory temporary storage, so sorts and temp tables never create files.

What one SQLite instruction does (``instr``, ``replace``, ``trim`` with long
arguments) cannot be interrupted in-process; :mod:`sqlgrpo.sql.worker` runs
the statements in a worker process that is killed at the deadline.

:func:`run_untrusted` never raises: every failure becomes an
:class:`ExecResult` with an :class:`~sqlgrpo.sql.errors.ErrorClass`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlgrpo.sql.errors import ErrorClass, classify_exception
from sqlgrpo.sql.statements import DML_TYPES, rename_identifier, split_statements, statement_type

logger = logging.getLogger(__name__)

#: PRAGMAs a completion may run: read-only schema introspection.
READ_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "collation_list",
        "function_list",
    }
)
#: SQL functions a completion may not call (file access, extension loading).
DENIED_FUNCTIONS = frozenset(
    {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "zipfile"}
)
#: Statement types refused before they reach SQLite.
FORBIDDEN_TYPES = frozenset({"ATTACH", "DETACH", "VACUUM"})
_PROGRESS_EVERY = 1000  # VM instructions between deadline checks
#: How untrusted statements are isolated: in a killable worker process, or in this one.
ISOLATION_MODES = ("process", "inline")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits applied to every untrusted statement (see docs/sandbox.md)."""

    timeout_s: float = 2.0  # per completion (statement, state capture, case-fix retry)
    max_rows: int = 10_000  # rows fetched; more sets ExecResult.truncated
    max_value_length: int = 1_000_000  # SQLITE_LIMIT_LENGTH (bytes in one string/blob/row)
    max_sql_length: int = 100_000  # SQLITE_LIMIT_SQL_LENGTH, also checked up front
    max_result_bytes: int = 64_000_000  # text/blob bytes fetched per statement, checked per row
    max_expr_depth: int = 200  # SQLITE_LIMIT_EXPR_DEPTH
    max_compound_select: int = 100  # SQLITE_LIMIT_COMPOUND_SELECT
    max_like_pattern_length: int = 200  # SQLITE_LIMIT_LIKE_PATTERN_LENGTH (bytes)
    max_columns: int = 1000  # SQLITE_LIMIT_COLUMN (result columns, table columns, ...)
    max_function_args: int = 100  # SQLITE_LIMIT_FUNCTION_ARG
    max_memory_bytes: int = 512 * 1024 * 1024  # SQLite heap (and worker address space) budget
    isolation: str = "process"  # "process": a worker killed at the deadline; "inline": none
    kill_margin_s: float = 0.5  # the worker is killed at timeout_s + kill_margin_s
    workers: int = 4  # worker processes that run one batch's isolated statements side by side
    #: One deadline for all the predictions of a batch (ExecutionChecker.prefetch /
    #: check_many, so one reward call): past it, what still runs is stopped and what has
    #: not started is a ``timeout`` without running. None: ``batch_budget_s()`` (about
    #: 2 x timeout_s); ``math.inf``: no batch deadline (each statement keeps its own).
    batch_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"SandboxLimits.timeout_s must be > 0, got {self.timeout_s}")
        for name in (
            "max_rows",
            "max_value_length",
            "max_sql_length",
            "max_result_bytes",
            "max_like_pattern_length",
            "max_columns",
            "max_function_args",
            "max_memory_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"SandboxLimits.{name} must be >= 1, got {getattr(self, name)}")
        if self.isolation not in ISOLATION_MODES:
            raise ValueError(
                f"SandboxLimits.isolation must be one of {ISOLATION_MODES}, got {self.isolation!r}"
            )
        if not self.kill_margin_s >= 0:
            raise ValueError(f"SandboxLimits.kill_margin_s must be >= 0, got {self.kill_margin_s}")
        if self.workers < 1:
            raise ValueError(f"SandboxLimits.workers must be >= 1, got {self.workers}")
        if self.batch_timeout_s is not None and not self.batch_timeout_s > 0:
            raise ValueError(
                f"SandboxLimits.batch_timeout_s must be > 0 (math.inf: none), got "
                f"{self.batch_timeout_s}"
            )

    def batch_budget_s(self) -> float:
        """Seconds one batch of predictions may run: ``batch_timeout_s``, by default
        ``max(2 * timeout_s, timeout_s + kill_margin_s)`` (a statement alone always has its
        own full allowance; a whole batch ends within 2 x timeout_s + kill_margin_s)."""
        if self.batch_timeout_s is not None:
            return self.batch_timeout_s
        return max(2 * self.timeout_s, self.timeout_s + self.kill_margin_s)


#: The default limits (frozen, so safe to share).
DEFAULT_LIMITS = SandboxLimits()


@dataclass
class ExecResult:
    """What one statement did: its rows, or why it failed."""

    ok: bool
    statement_type: str  # "SELECT", "INSERT", ..., "UNKNOWN"
    columns: tuple[str, ...] = ()
    rows: list[tuple] = field(default_factory=list)
    error_class: ErrorClass | None = None
    error_message: str | None = None
    truncated: bool = False  # hit max_rows (or max_result_bytes)
    case_fixed: bool = False  # ran only after fixing table-name case
    state: dict[str, list[tuple]] | None = None  # every table's rows after DML
    elapsed_s: float = 0.0
    rowcount: int = -1  # rows changed by DML, -1 for queries
    # Rows normalised for comparison, filled lazily by sqlgrpo.sql.compare.
    normalized_rows: list[tuple] | None = field(default=None, init=False, repr=False, compare=False)


def failure(
    statement_type: str, error_class: ErrorClass, message: str, elapsed_s: float = 0.0
) -> ExecResult:
    """Build a failed :class:`ExecResult`."""
    return ExecResult(
        ok=False,
        statement_type=statement_type,
        error_class=error_class,
        error_message=message,
        elapsed_s=elapsed_s,
    )


class SandboxGuard:
    """Per-connection deadline state read by the progress handler."""

    __slots__ = ("deadline", "fired")

    def __init__(self) -> None:
        self.deadline = math.inf
        self.fired = False

    def arm(self, timeout_s: float) -> None:
        """Start the clock for the next statement."""
        self.deadline = time.monotonic() + timeout_s
        self.fired = False

    def __call__(self) -> int:
        if time.monotonic() > self.deadline:
            self.fired = True
            return 1
        return 0

    def overran(self) -> bool:
        """True when the deadline has passed (checked after every statement: an overrun
        inside one SQLite instruction is never seen by the progress handler)."""
        if time.monotonic() > self.deadline:
            self.fired = True
        return self.fired


def _authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None):
    if action == sqlite3.SQLITE_READ or action == sqlite3.SQLITE_SELECT:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return (
            sqlite3.SQLITE_DENY if (arg2 or "").lower() in DENIED_FUNCTIONS else sqlite3.SQLITE_OK
        )
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_OK if (arg1 or "").lower() in READ_PRAGMAS else sqlite3.SQLITE_DENY
    if action in _DENIED_ACTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _readonly_authorizer(
    action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None
):
    if action in _READONLY_ACTIONS:
        return _authorizer(action, arg1, arg2, db, src)
    return sqlite3.SQLITE_DENY


_DENIED_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_DETACH,
        getattr(sqlite3, "SQLITE_CREATE_VTABLE", 29),
        getattr(sqlite3, "SQLITE_DROP_VTABLE", 30),
    }
)
_READONLY_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_PRAGMA,
        getattr(sqlite3, "SQLITE_RECURSIVE", 33),
    }
)


def _limit_settings(limits: SandboxLimits) -> tuple[tuple[int, int], ...]:
    """The ``setlimit`` calls for ``limits`` (only those that differ from SQLite's
    defaults in a way that matters; each call costs about a microsecond)."""
    return (
        (sqlite3.SQLITE_LIMIT_LENGTH, limits.max_value_length),
        (sqlite3.SQLITE_LIMIT_SQL_LENGTH, limits.max_sql_length),
        (sqlite3.SQLITE_LIMIT_EXPR_DEPTH, limits.max_expr_depth),
        (sqlite3.SQLITE_LIMIT_COMPOUND_SELECT, limits.max_compound_select),
        (sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, limits.max_like_pattern_length),
        (sqlite3.SQLITE_LIMIT_COLUMN, limits.max_columns),
        (sqlite3.SQLITE_LIMIT_FUNCTION_ARG, limits.max_function_args),
        (sqlite3.SQLITE_LIMIT_ATTACHED, 0),
        (sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    )


def apply_limits(conn: sqlite3.Connection, limits: SandboxLimits) -> None:
    """Set ``limits``' ``setlimit`` caps on ``conn`` (Python >= 3.11; a no-op before)."""
    if hasattr(conn, "setlimit"):
        for category, value in _limit_settings(limits):
            conn.setlimit(category, value)


def _load_sqlite_library() -> ctypes.CDLL | None:
    """The C library behind this process's ``sqlite3`` module, when it is a shared library
    (so its process-wide heap limit can be set); None when it cannot be found."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "libsqlite3" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.sqlite3_memory_used.restype = ctypes.c_int64
            lib.sqlite3_hard_heap_limit64.restype = ctypes.c_int64
            lib.sqlite3_hard_heap_limit64.argtypes = [ctypes.c_int64]
        except (OSError, AttributeError):
            continue
        return lib
    return None


_SQLITE_LIB: ctypes.CDLL | None | bool = False  # False: not looked up yet


def _sqlite_lib() -> ctypes.CDLL | None:
    global _SQLITE_LIB
    if _SQLITE_LIB is False:
        _SQLITE_LIB = _load_sqlite_library()
    return _SQLITE_LIB  # type: ignore[return-value]


def heap_limit_available() -> bool:
    """True when :func:`heap_budget` can bound SQLite's heap in this process."""
    return _sqlite_lib() is not None


_HEAP_LOCK = threading.Lock()
_heap_state = {"active": 0, "previous": 0}


@contextlib.contextmanager
def heap_budget(budget_bytes: int) -> Iterator[None]:
    """Let SQLite allocate at most ``budget_bytes`` more than it holds now, until the block
    ends (``sqlite3_hard_heap_limit64``; past it every allocation fails and the statement
    raises ``MemoryError``). The previous limit is restored afterwards. The limit is
    process-wide: statements running at once in several threads share the first one's
    budget. Without access to the C library it does nothing."""
    lib = _sqlite_lib()
    if lib is None:
        yield
        return
    with _HEAP_LOCK:
        if _heap_state["active"] == 0:
            previous = lib.sqlite3_hard_heap_limit64(-1)
            limit = lib.sqlite3_memory_used() + budget_bytes
            if previous > 0:
                limit = min(limit, previous)
            _heap_state["previous"] = previous
            lib.sqlite3_hard_heap_limit64(limit)
        _heap_state["active"] += 1
    try:
        yield
    finally:
        with _HEAP_LOCK:
            _heap_state["active"] -= 1
            if _heap_state["active"] == 0:
                lib.sqlite3_hard_heap_limit64(_heap_state["previous"])


def harden(
    conn: sqlite3.Connection, limits: SandboxLimits, *, read_only: bool = False
) -> SandboxGuard:
    """Install limits, authorizer and progress handler on ``conn``; returns its guard.

    ``read_only=True`` also denies every write, temp object and transaction,
    for connections that are shared between statements instead of copied.
    """
    # executescript: measured ~3x cheaper than execute for this one-off pragma.
    conn.executescript("PRAGMA temp_store = MEMORY")
    if hasattr(conn, "enable_load_extension"):
        conn.enable_load_extension(False)
    apply_limits(conn, limits)
    conn.set_authorizer(_readonly_authorizer if read_only else _authorizer)
    guard = SandboxGuard()
    conn.set_progress_handler(guard, _PROGRESS_EVERY)
    return guard


def restrict_to_reads(
    conn: sqlite3.Connection, guard: SandboxGuard, limits: SandboxLimits | None = None
) -> SandboxGuard:
    """Switch a connection :func:`harden` set up to the read-only authorizer (``temp_store``
    stays; ``limits``, when given, replace the caps it was built under); returns ``guard``,
    now its progress handler again."""
    if limits is not None:
        apply_limits(conn, limits)
    conn.set_authorizer(_readonly_authorizer)
    conn.set_progress_handler(guard, _PROGRESS_EVERY)
    return guard


def run_untrusted(
    conn: sqlite3.Connection,
    sql: str,
    limits: SandboxLimits = DEFAULT_LIMITS,
    *,
    capture_state: bool = False,
    guard: SandboxGuard | None = None,
    fix_case: bool = True,
    allow_multiple: bool = False,
    deadline: float | None = None,
) -> ExecResult:
    """Run one untrusted statement on ``conn`` and report what happened.

    ``conn`` must be private to this statement (changes are not rolled back).
    ``guard`` is the value :func:`harden` returned for ``conn``; without it the
    connection is hardened first. ``capture_state`` records every table's rows
    afterwards (for DML judged by state). ``fix_case`` retries a DML statement
    whose table name matches an existing table only under Unicode case folding
    (see docs/sandbox.md) and sets ``case_fixed``. ``allow_multiple`` is for
    trusted scripts (gold SQL): stacked statements run in order, each with its
    own ``timeout_s``, and the last one's result is returned; otherwise they fail
    as MULTIPLE_STATEMENTS. One ``timeout_s`` covers the statement, the state
    capture and the case-fix retry; SQLite may allocate at most
    ``max_memory_bytes`` meanwhile. ``deadline`` (``time.monotonic()``) is its batch's:
    the statement stops there if that comes first, and does not start once it has passed
    (both ``timeout``). Never raises.
    """
    started = time.perf_counter()
    budget = limits.timeout_s
    if deadline is not None:
        budget = min(budget, deadline - time.monotonic())
        if budget <= 0:
            return failure(_stype(sql), ErrorClass.TIMEOUT, BATCH_DEADLINE_NOT_RUN)
    stype = "UNKNOWN"
    try:
        if not isinstance(sql, str):
            return failure(stype, ErrorClass.SYNTAX, f"SQL must be text, got {type(sql).__name__}")
        if len(sql) > limits.max_sql_length:
            return failure(
                stype,
                ErrorClass.RESOURCE_LIMIT,
                f"statement of {len(sql)} characters exceeds max_sql_length={limits.max_sql_length}",
            )
        stype = statement_type(sql)
        if stype == "UNKNOWN" and not split_statements(sql):
            return failure(stype, ErrorClass.EMPTY, "no SQL statement")
        if stype in FORBIDDEN_TYPES:
            return failure(stype, ErrorClass.FORBIDDEN, f"{stype} is not allowed")
        if guard is None:
            guard = harden(conn, limits)
        guard.arm(budget)
        with heap_budget(limits.max_memory_bytes):
            result = _execute(conn, sql, stype, limits, guard, capture_state, allow_multiple)
            if (
                fix_case
                and not result.ok
                and result.error_class is ErrorClass.MISSING_TABLE
                and stype in DML_TYPES
            ):
                fixed_sql = _case_fixed_sql(conn, sql, result.error_message or "")
                if fixed_sql is not None:
                    retry = _execute(conn, fixed_sql, stype, limits, guard, capture_state)
                    if retry.ok:
                        retry.case_fixed = True
                        result = retry
    except Exception as exc:  # noqa: BLE001 - untrusted input: every failure is a result
        result = failure(stype, classify_exception(exc), _message(exc))
    result.elapsed_s = time.perf_counter() - started
    if result.error_class is ErrorClass.TIMEOUT and budget < limits.timeout_s:
        result.error_message = f"stopped at its batch's deadline after {result.elapsed_s:.2f} s"
    return result


#: Message of a statement a batch's deadline classified before it ran.
BATCH_DEADLINE_NOT_RUN = "not run: its batch's deadline had passed"


def _stype(sql: object) -> str:
    try:
        return statement_type(sql) if isinstance(sql, str) else "UNKNOWN"
    except Exception:  # noqa: BLE001
        return "UNKNOWN"


def _timeout(stype: str, limits: SandboxLimits) -> ExecResult:
    return failure(
        stype, ErrorClass.TIMEOUT, f"statement exceeded the {limits.timeout_s:g} s limit"
    )


def _execute(
    conn: sqlite3.Connection,
    sql: str,
    stype: str,
    limits: SandboxLimits,
    guard: SandboxGuard,
    capture_state: bool,
    allow_multiple: bool = False,
) -> ExecResult:
    try:
        try:
            cursor = conn.execute(sql)
        except sqlite3.ProgrammingError as exc:
            if "one statement at a time" not in str(exc):
                raise
            parts = split_statements(sql)  # trailing ";;" or comments after ";"
            if len(parts) > 1 and not allow_multiple:
                return failure(
                    stype,
                    ErrorClass.MULTIPLE_STATEMENTS,
                    f"{len(parts)} statements; exactly one is allowed",
                )
            for part in parts[:-1]:  # trusted scripts only: all but the last
                _fetch(conn.execute(part), limits)
                if guard.overran():
                    return _timeout(stype, limits)
                guard.arm(limits.timeout_s)
            cursor = conn.execute(parts[-1])
        columns: tuple[str, ...] = ()
        rows: list[tuple] = []
        truncated = False
        if cursor.description is not None:
            columns = tuple(d[0] for d in cursor.description)
            rows, truncated = _fetch(cursor, limits)
        rowcount = cursor.rowcount if stype in DML_TYPES else -1
        if guard.overran():
            return _timeout(stype, limits)
        state = None
        if capture_state:
            state = capture_tables(conn, limits)
            if guard.overran():
                return _timeout(stype, limits)
        return ExecResult(
            ok=True,
            statement_type=stype,
            columns=columns,
            rows=rows,
            truncated=truncated,
            state=state,
            rowcount=rowcount,
        )
    except Exception as exc:  # noqa: BLE001
        if guard.overran():
            return _timeout(stype, limits)
        return failure(stype, classify_exception(exc), _message(exc))


def _fetch(
    cursor: sqlite3.Cursor, limits: SandboxLimits, budget: list[int] | None = None
) -> tuple[list[tuple], bool]:
    """At most ``max_rows`` rows and whether more were left. The text/blob bytes are
    counted row by row against ``max_result_bytes`` (``budget`` shares one count between
    several fetches); past it, ``DataError``."""
    rows: list[tuple] = []
    size = 0 if budget is None else budget[0]
    cap = limits.max_result_bytes
    max_rows = limits.max_rows
    truncated = False
    for row in cursor:
        if len(rows) >= max_rows:
            truncated = True
            break
        for value in row:
            if isinstance(value, (str, bytes)):
                size += len(value)
        if size > cap:
            raise sqlite3.DataError(f"result too big: more than max_result_bytes={cap}")
        rows.append(row)
    if budget is not None:
        budget[0] = size
    return rows, truncated


def capture_tables(conn: sqlite3.Connection, limits: SandboxLimits) -> dict[str, list[tuple]]:
    """Every ordinary table's rows (lowercased name -> rows, at most max_rows each; all the
    tables' text/blob bytes together count against ``max_result_bytes``)."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    state: dict[str, list[tuple]] = {}
    budget = [0]
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        state[name.lower()] = _fetch(conn.execute(f"SELECT * FROM {quoted}"), limits, budget)[0]
    return state


def _case_fixed_sql(conn: sqlite3.Connection, sql: str, message: str) -> str | None:
    """The statement with its missing table renamed to the existing table whose
    name matches under Unicode case folding, or None when there is none."""
    _, _, missing = message.partition("no such table:")
    missing = missing.strip()
    if "." in missing:
        missing = missing.split(".", 1)[1]
    if not missing:
        return None
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    matches = [t for t in tables if t.casefold() == missing.casefold() and t != missing]
    if len(matches) != 1:
        return None
    fixed = rename_identifier(sql, missing, matches[0])
    return fixed if fixed != sql else None


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if len(text) > 500:
        text = text[:500] + "..."
    return f"{type(exc).__name__}: {text}"


#: Files up to this size are copied into memory once; bigger ones are read in place.
DEFAULT_MAX_COPY_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ContextLimits:
    """Limits for building a trusted ``sql_context`` script (larger than the untrusted ones).

    ``max_context_chars`` is checked before anything runs; ``timeout_s`` bounds the whole
    build (every statement and every sqlglot attempt together); statements longer than
    ``max_transpile_chars`` are never handed to sqlglot (parsing is superlinear there).
    """

    timeout_s: float = 20.0
    max_context_chars: int = 64_000_000
    max_statement_chars: int = 64_000_000  # SQLITE_LIMIT_SQL_LENGTH while building
    max_value_length: int = 64_000_000  # SQLITE_LIMIT_LENGTH while building
    max_transpile_chars: int = 20_000

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"ContextLimits.timeout_s must be > 0, got {self.timeout_s}")
        for name in (
            "max_context_chars",
            "max_statement_chars",
            "max_value_length",
            "max_transpile_chars",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ContextLimits.{name} must be >= 1, got {getattr(self, name)}")

    def sandbox_limits(self) -> SandboxLimits:
        """The :class:`SandboxLimits` a context is built under."""
        return SandboxLimits(
            timeout_s=self.timeout_s,
            max_value_length=self.max_value_length,
            max_sql_length=self.max_statement_chars,
            max_expr_depth=1000,
            max_compound_select=500,
            max_like_pattern_length=50_000,
            max_columns=2000,
            max_function_args=127,
            isolation="inline",
        )


#: The default context limits (frozen, so safe to share).
DEFAULT_CONTEXT_LIMITS = ContextLimits()
