"""The engine interface: a user's database (SQLite, DuckDB, PostgreSQL) behind one sandbox.

An :class:`Engine` opens a database read-only, describes it for a prompt
(:meth:`Engine.schema_text`: CREATE TABLE statements with types, keys and example rows) and
runs one untrusted statement within :class:`~sqlgrpo.sql.sandbox.SandboxLimits`
(:meth:`Engine.run`), returning an :class:`~sqlgrpo.sql.sandbox.ExecResult` whose values are
plain Python values (:func:`plain_value`), the form the comparison rules take. ``run`` never
raises. What each engine guarantees, and how, is in docs/sandbox.md ("Engines").

``--db`` arguments are read by :func:`parse_db` into a :class:`DbTarget`:

* an SQLite file, a DuckDB file (told apart by their headers);
* a Parquet / CSV / TSV file, or a folder of them (opened through DuckDB as views);
* a URL: ``postgresql://user@host:port/db`` (or ``postgres://``), ``duckdb:///path``,
  ``sqlite:///path``.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, ExecResult, SandboxLimits, failure
from sqlgrpo.sql.statements import split_statements, statement_type

#: The engines, named once; CLIs and configs take their choices from it.
EngineName = Literal["sqlite", "duckdb", "postgres"]
ENGINE_NAMES: tuple[str, ...] = get_args(EngineName)
#: How prompts and docs name each engine.
ENGINE_LABELS = {"sqlite": "SQLite", "duckdb": "DuckDB", "postgres": "PostgreSQL"}
#: sqlglot's name for each engine's dialect.
SQLGLOT_DIALECTS = {"sqlite": "sqlite", "duckdb": "duckdb", "postgres": "postgres"}
#: File suffixes DuckDB opens as views (``name.csv`` -> view ``name``).
DATA_FILE_SUFFIXES = (".parquet", ".csv", ".tsv", ".csv.gz", ".tsv.gz")

SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of a DuckDB file
_URL_SCHEMES = {"postgresql": "postgres", "postgres": "postgres", "duckdb": "duckdb"}


class EngineError(ValueError):
    """A database that cannot be opened; the message names it and the problem."""


@dataclass(frozen=True)
class DbTarget:
    """What ``--db`` names: which engine opens it, and where it is."""

    engine: str  # one of ENGINE_NAMES
    location: str  # a file or folder path, or a PostgreSQL URL
    kind: str = "file"  # "file" (a database file), "data" (Parquet/CSV files), "url"
    files: tuple[str, ...] = ()  # kind "data": the files, one view each

    @property
    def label(self) -> str:
        """The location with any password masked (safe to print and log)."""
        return mask_password(self.location) if self.kind == "url" else self.location


def mask_password(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_db(spec: str | Path) -> DbTarget:
    """Read a ``--db`` argument (see the module docstring); raises :class:`EngineError`
    for a missing path, an unknown URL scheme or a file no engine opens."""
    text = str(spec).strip()
    if not text:
        raise EngineError("empty --db argument")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme:
        if scheme in ("postgresql", "postgres"):
            return DbTarget("postgres", text, kind="url")
        if scheme in ("duckdb", "sqlite"):
            path = urlsplit(text).path
            if not path:
                raise EngineError(f"{text}: no path in the URL (write {scheme}:///path/to/file)")
            target = _parse_path(path, text)
            if target.engine != scheme:
                raise EngineError(
                    f"{text}: the file is a {ENGINE_LABELS[target.engine]} database, "
                    f"not {ENGINE_LABELS[scheme]}"
                )
            return target
        raise EngineError(
            f"{text}: unknown URL scheme {scheme!r} (postgresql://, duckdb:///, sqlite:///)"
        )
    return _parse_path(text, text)


def _parse_path(path_text: str, given: str) -> DbTarget:
    path = Path(path_text).expanduser()
    if path.is_dir():
        files = sorted(str(p.resolve()) for p in path.iterdir() if p.is_file() and _is_data_file(p))
        if not files:
            raise EngineError(
                f"{given}: folder without data files ({', '.join(DATA_FILE_SUFFIXES)})"
            )
        return DbTarget("duckdb", str(path.resolve()), kind="data", files=tuple(files))
    if not path.is_file():
        raise EngineError(f"{given}: no such file or folder")
    if _is_data_file(path):
        resolved = str(path.resolve())
        return DbTarget("duckdb", resolved, kind="data", files=(resolved,))
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise EngineError(f"{given}: cannot read the file ({exc})") from exc
    if head == SQLITE_MAGIC:
        return DbTarget("sqlite", str(path.resolve()))
    if head[8:12] == DUCKDB_MAGIC:
        return DbTarget("duckdb", str(path.resolve()))
    raise EngineError(
        f"{given}: not a SQLite database (no SQLite or DuckDB header), nor a "
        f"{'/'.join(DATA_FILE_SUFFIXES)} file"
    )


def _is_data_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in DATA_FILE_SUFFIXES)


def view_name(path: str) -> str:
    """The view a data file is opened as: its name without the data suffix."""
    name = Path(path).name
    for suffix in sorted(DATA_FILE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# --- schema text -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column as the prompt shows it."""

    name: str
    type: str
    not_null: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """``FOREIGN KEY (columns) REFERENCES table (ref_columns)``."""

    columns: tuple[str, ...]
    table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableInfo:
    """A table (or view) with its types and keys, rendered as a CREATE TABLE statement."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()

    def ddl(self, quote: Callable[[str], str]) -> str:
        """``CREATE TABLE`` text with ``quote`` applied to every identifier."""
        lines = [
            f"  {quote(c.name)} {c.type}" + (" NOT NULL" if c.not_null else "")
            for c in self.columns
        ]
        if self.primary_key:
            lines.append(f"  PRIMARY KEY ({', '.join(quote(c) for c in self.primary_key)})")
        for fk in self.foreign_keys:
            lines.append(
                f"  FOREIGN KEY ({', '.join(quote(c) for c in fk.columns)}) REFERENCES "
                f"{quote(fk.table)} ({', '.join(quote(c) for c in fk.ref_columns)})"
            )
        return f"CREATE TABLE {quote(self.name)} (\n" + ",\n".join(lines) + "\n);"


def example_rows_comment(table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """The ``/* N example rows from T: ... */`` block put after a table's DDL in prompts."""
    lines = [f"/* {len(rows)} example rows from {table}:", "\t".join(columns)]
    lines += ["\t".join(_cell(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n*/"


def _cell(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    text = str(value).replace("\n", " ").replace("*/", "* /")
    return text if len(text) <= 60 else text[:57] + "..."


_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Words that must be quoted as identifiers in every engine's dialect (the common ones).
_RESERVED = frozenset(
    """all and any as asc between by case cast check collate column constraint create cross
    current_date current_time current_timestamp default desc distinct do else end except false
    fetch for foreign from full grant group having in inner intersect into is join lateral
    leading left like limit natural not null offset on or order outer primary references right
    select table then to trailing true union unique user using when where window with""".split()
)


def quote_identifier(name: str, *, fold_lower: bool) -> str:
    """``name`` as an identifier: bare when the dialect reads it back unchanged, else in
    double quotes. ``fold_lower``: the dialect folds bare names to lowercase (PostgreSQL),
    so a name with capitals must be quoted."""
    plain = _PLAIN_IDENTIFIER.fullmatch(name) is not None and name.lower() not in _RESERVED
    if plain and (not fold_lower or name == name.lower()):
        return name
    return '"' + name.replace('"', '""') + '"'


# --- values and results ------------------------------------------------------------------


def plain_value(value: Any) -> Any:
    """One result value in the form the comparison rules take (the types SQLite returns):
    decimals become int (integral) or float, dates and times their ISO text (``str()``, as
    SQLite databases store them), UUIDs and intervals text, byte strings ``bytes``, lists
    tuples, maps their text."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return float(value)
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return tuple(plain_value(v) for v in value)
    return str(value)


def value_size(value: Any) -> int:
    """Bytes a plain value holds (text and blobs; nested tuples summed)."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, tuple):
        return sum(value_size(v) for v in value)
    return 0


class ResultTooBig(Exception):
    """The rows fetched hold more than ``max_result_bytes`` (classified ``resource_limit``)."""


def fetch_plain(
    fetchmany: Callable[[int], Sequence[Sequence[Any]]],
    limits: SandboxLimits,
    *,
    chunk: int = 256,
) -> tuple[list[tuple], bool]:
    """At most ``max_rows`` rows as plain values and whether more were left, fetched
    ``chunk`` rows at a time; the text/blob bytes are counted row by row against
    ``max_result_bytes`` (past it :class:`ResultTooBig`)."""
    rows: list[tuple] = []
    size = 0
    while True:
        want = min(chunk, limits.max_rows + 1 - len(rows))
        batch = fetchmany(want)
        if not batch:
            return rows, False
        for raw in batch:
            if len(rows) >= limits.max_rows:
                return rows, True
            row = tuple(plain_value(v) for v in raw)
            size += sum(value_size(v) for v in row)
            if size > limits.max_result_bytes:
                raise ResultTooBig(
                    f"result too big: more than max_result_bytes={limits.max_result_bytes}"
                )
            rows.append(row)
        if len(batch) < want:
            return rows, False


# --- deadlines ---------------------------------------------------------------------------


class Watchdog:
    """One thread that calls ``action()`` when an armed deadline passes: the per-statement
    interrupt of an engine without starting a thread per statement."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._action: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None

    def arm(self, timeout_s: float, action: Callable[[], None]) -> None:
        """Call ``action`` in ``timeout_s`` seconds unless :meth:`disarm` comes first."""
        with self._cond:
            self._deadline = time.monotonic() + timeout_s
            self._action = action
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="sqlgrpo-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> None:
        """Cancel the armed deadline; once this returns, ``action`` is not running and will
        not run for it."""
        with self._cond:
            self._deadline = None
            self._action = None

    def _loop(self) -> None:
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait(60.0)
                    if self._deadline is None:
                        self._thread = None
                        return
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                action, self._deadline, self._action = self._action, None, None
                if action is not None:
                    action()  # under the lock: disarm() waits until it has returned


# --- the interface -----------------------------------------------------------------------


@dataclass
class Prepared:
    """An untrusted statement that passed the engine-independent checks."""

    sql: str
    statement_type: str
    started: float = field(default_factory=time.perf_counter)


class Engine(ABC):
    """One database behind the sandbox (see the module docstring).

    ``key`` identifies the database (caches key on it); ``diagnostics`` notes how it was
    opened or built; ``build_error``, when set, makes every :meth:`run` fail with it.
    """

    name: str = ""  # one of ENGINE_NAMES

    def __init__(self, key: str, limits: SandboxLimits = DEFAULT_LIMITS) -> None:
        self.key = key
        self.limits = limits
        self.diagnostics: list[str] = []
        self.build_error: str | None = None

    @property
    def label(self) -> str:
        """The engine's name as prompts and messages show it ("PostgreSQL")."""
        return ENGINE_LABELS[self.name]

    @property
    def dialect(self) -> str:
        """sqlglot's name for this engine's dialect."""
        return SQLGLOT_DIALECTS[self.name]

    @abstractmethod
    def tables(self) -> list[str]:
        """The tables (and views) a statement can read, sorted."""

    @abstractmethod
    def schema_text(self, sample_rows: int = 0) -> str:
        """CREATE TABLE statements with types and keys, each followed by up to
        ``sample_rows`` example rows in a comment (:func:`example_rows_comment`)."""

    @abstractmethod
    def run(
        self, sql: str, *, capture_state: bool = False, allow_multiple: bool = False
    ) -> ExecResult:
        """Run one untrusted statement within ``limits``; never raises, never writes.

        A statement that would write runs where its changes are thrown away afterwards;
        ``capture_state`` records every table's rows as the statement left them.
        ``allow_multiple`` is for trusted scripts (gold SQL): their statements run in order
        and the last one's result counts.
        """

    @abstractmethod
    def state(self) -> dict[str, list[tuple]]:
        """Every table's rows as the database holds them (lowercased name -> at most
        ``max_rows`` rows): the "before" of a what-would-change summary."""

    def close(self) -> None:  # noqa: B027 - engines without connections keep this no-op
        """Release connections (idempotent)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_statement(self, sql: Any, *, allow_multiple: bool = False) -> Prepared | ExecResult:
        """The engine-independent checks: text, length, emptiness. A failed
        :class:`ExecResult` when the statement may not run, else a :class:`Prepared`."""
        if not isinstance(sql, str):
            return failure(
                "UNKNOWN", ErrorClass.SYNTAX, f"SQL must be text, got {type(sql).__name__}"
            )
        if len(sql) > self.limits.max_sql_length:
            return failure(
                "UNKNOWN",
                ErrorClass.RESOURCE_LIMIT,
                f"statement of {len(sql)} characters exceeds "
                f"max_sql_length={self.limits.max_sql_length}",
            )
        if "\x00" in sql:
            return failure("UNKNOWN", ErrorClass.SYNTAX, "NUL character in the statement")
        try:
            stype = statement_type(sql)
        except Exception:  # noqa: BLE001 - the engine's parser will say what is wrong
            stype = "UNKNOWN"
        if not sql.strip() or not _has_code(sql):
            return failure(stype, ErrorClass.EMPTY, "no SQL statement")
        if self.build_error is not None:
            return failure(stype, ErrorClass.OTHER, f"database did not build: {self.build_error}")
        return Prepared(sql, stype)


def _has_code(sql: str) -> bool:
    """True when ``sql`` holds something besides blanks, comments and semicolons."""
    try:
        return bool(split_statements(sql))
    except Exception:  # noqa: BLE001
        return True


def finish(result: ExecResult, prepared: Prepared) -> ExecResult:
    """Stamp the elapsed time on ``result`` (from the statement's start)."""
    result.elapsed_s = time.perf_counter() - prepared.started
    return result


def lower_state(tables: Iterable[tuple[str, list[tuple]]]) -> dict[str, list[tuple]]:
    """``{lowercased table name: rows}``."""
    return {name.lower(): rows for name, rows in tables}


def message_of(exc: BaseException) -> str:
    """An exception as one bounded line: ``Type: first line``."""
    text = (str(exc) or type(exc).__name__).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if len(first) > 500:
        first = first[:500] + "..."
    return f"{type(exc).__name__}: {first}"
