"""An SQLite database's tables as plain data, to load into another engine.

Evaluation and rewards on DuckDB or PostgreSQL run on a copy of the sample's SQLite database
(a Spider / BIRD file, or a gretel context built by :mod:`sqlgrpo.sql.database`). SQLite's
declared types are loose and its data sometimes disagrees with them (text in an INTEGER
column), so each column's type is chosen from the declared type's affinity *and* the values it
holds (:func:`column_kind`): ``integer``, ``real``, ``text`` or ``blob``. A column holding
more than one kind of value becomes ``text`` (its values as SQLite's ``CAST(x AS TEXT)``
writes them), and the change is listed in :attr:`TableData.notes`. Dates stay text, as SQLite
stores them, so they compare as they do there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Column kinds a target engine maps to its own types.
KINDS = ("integer", "real", "text", "blob")


@dataclass
class TableData:
    """One table: names, a kind per column, rows."""

    name: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def affinity(declared: str | None) -> str:
    """SQLite's type affinity of a declared column type (section 3.1 of its datatype doc)."""
    text = (declared or "").upper()
    if "INT" in text:
        return "integer"
    if any(word in text for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if not text or "BLOB" in text:
        return "blob"
    if any(word in text for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def column_kind(declared: str | None, values: Iterable[object]) -> tuple[str, bool]:
    """The kind a column loads as, and whether its values disagree (mixed kinds: text)."""
    return kind_of_types(declared, {type(v) for v in values if v is not None})


#: SQLite's ``typeof()`` names as the Python types its values arrive as.
SQLITE_TYPEOF = {"integer": int, "real": float, "text": str, "blob": bytes}


def kind_of_types(declared: str | None, present: set[type]) -> tuple[str, bool]:
    """:func:`column_kind` from the set of value types a column holds (NULLs left out)."""
    if not present:
        guess = affinity(declared)
        return {"integer": "integer", "real": "real", "numeric": "real"}.get(guess, "text"), False
    if present <= {int}:
        return "integer", False
    if present <= {int, float}:
        return "real", False
    if present <= {str}:
        return "text", False
    if present <= {bytes}:
        return "blob", False
    return "text", True


def _as_text(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def read_sqlite_tables(conn: sqlite3.Connection) -> list[TableData]:
    """Every ordinary table of an SQLite connection, with its kinds and rows."""
    tables = []
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY rowid"
        )
    ]
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
        columns = tuple(col[1] for col in info)
        rows = conn.execute(f"SELECT * FROM {quoted}").fetchall()
        kinds, notes = [], []
        for i, col in enumerate(info):
            kind, mixed = column_kind(col[2], (row[i] for row in rows))
            kinds.append(kind)
            if mixed:
                notes.append(f"{name}.{col[1]}: values of several types, loaded as text")
        for i, kind in enumerate(kinds):
            if kind == "real":
                rows = [(*r[:i], None if r[i] is None else float(r[i]), *r[i + 1 :]) for r in rows]
            elif kind == "text":
                rows = [(*r[:i], _as_text(r[i]), *r[i + 1 :]) for r in rows]
        tables.append(TableData(name, columns, tuple(kinds), rows, notes))
    return tables


@dataclass(frozen=True)
class SchemaTypes:
    """What transpiling SQLite's SQL needs to know of its database: the table, view and column
    names (lowercased) and, per table and column, the declared type's affinity and the kind
    the column loads as (:func:`column_kind`)."""

    names: frozenset[str] = frozenset()
    columns: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    def column(self, table: str, name: str) -> tuple[str, str] | None:
        """``(affinity, kind)`` of ``table.name`` (any case), or None when unknown."""
        return self.columns.get(table.lower(), {}).get(name.lower())


def read_schema_types(conn: sqlite3.Connection, tables: Iterable[TableData] = ()) -> SchemaTypes:
    """The :class:`SchemaTypes` of an SQLite connection: one ``typeof`` scan per table, except
    for the ``tables`` already read by :func:`read_sqlite_tables`, whose kinds are reused."""
    known = {table.name: table.kinds for table in tables}
    names: set[str] = set()
    columns: dict[str, dict[str, tuple[str, str]]] = {}
    for name, kind in conn.execute(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        quoted = '"' + name.replace('"', '""') + '"'
        info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
        names.add(name.lower())
        names.update(col[1].lower() for col in info)
        if kind != "table" or not info:
            continue
        if name in known:
            columns[name.lower()] = {
                col[1].lower(): (affinity(col[2]), loaded)
                for col, loaded in zip(info, known[name], strict=True)
            }
            continue
        scans = ", ".join(
            'group_concat(DISTINCT typeof("' + col[1].replace('"', '""') + '"))' for col in info
        )
        (seen,) = conn.execute(f"SELECT {scans} FROM {quoted}").fetchall() or [(None,) * len(info)]
        columns[name.lower()] = {
            col[1].lower(): (
                affinity(col[2]),
                kind_of_types(
                    col[2],
                    {SQLITE_TYPEOF[t] for t in (types or "").split(",") if t in SQLITE_TYPEOF},
                )[0],
            )
            for col, types in zip(info, seen, strict=True)
        }
    return SchemaTypes(frozenset(names), columns)
