"""Pull the reasoning and the SQL out of a completion, and table/column names out of a schema.

Everything here runs on every completion of a GRPO batch, so it is regex based and
cheap; nothing here executes SQL. Tags are matched case-sensitively, exactly as the
format reward matches them (SPEC section 1).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from pathlib import Path

from sqlgrpo.sql.database import connect_read_only

logger = logging.getLogger(__name__)

_FENCE_LANGUAGES = frozenset({"", "sql", "sqlite", "mysql", "postgresql", "postgres"})
# Upper case only: in prose "select", "update" or "create" are ordinary words.
_STATEMENT_START = re.compile(
    r"(?<![\w.])(WITH|SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b"
)
_STATEMENT_END = re.compile(r";|\n\s*\n|```")
#: Candidate statements tried by the lenient extraction before it gives up.
MAX_LENIENT_CANDIDATES = 16


def tag_content(text: str, tag: str) -> str | None:
    """Raw text between the first ``<tag>`` and the first ``</tag>`` after it, else None.

    Same result as ``re.search(r"<tag>(.*?)</tag>", text, re.DOTALL)`` but linear in the text
    length whatever the input (hostile completions may repeat tags thousands of times).
    """
    open_tag, close_tag = f"<{tag}>", f"</{tag}>"
    start = text.find(open_tag)
    if start < 0:
        return None
    end = text.find(close_tag, start + len(open_tag))
    if end < 0:
        return None
    return text[start + len(open_tag) : end]


def _fenced(text: str) -> str | None:
    """Body of the first markdown code fence in ``text`` with a SQL (or no) language tag."""
    start = text.find("```")
    while start >= 0:
        line_end = text.find("\n", start + 3)
        end = text.find("```", start + 3)
        if end < 0:
            return None
        if 0 <= line_end < end and text[start + 3 : line_end].strip().lower() in _FENCE_LANGUAGES:
            return text[line_end + 1 : end]
        if line_end < 0 or line_end > end:  # one-line fence: ```SELECT 1```
            return text[start + 3 : end]
        start = text.find("```", end + 3)
    return None


def _strip_fence(sql: str) -> str:
    """Remove a markdown code fence wrapped around the whole of ``sql`` (models often add one)."""
    stripped = sql.strip()
    if stripped.startswith("```") and stripped.endswith("```") and len(stripped) >= 6:
        body = _fenced(stripped)
        if body is not None:
            return body
    return sql


def extract_sql(text: str) -> str | None:
    """SQL inside the first ``<sql>...</sql>``, stripped (and unfenced); None if absent or blank."""
    content = tag_content(text, "sql")
    if content is None:
        return None
    sql = _strip_fence(content).strip()
    return sql or None


def extract_reasoning(text: str) -> str | None:
    """Text inside the first ``<reasoning>...</reasoning>``, stripped; None when the tags are absent."""
    content = tag_content(text, "reasoning")
    return content.strip() if content is not None else None


def _is_sql_statement(candidate: str) -> bool:
    """True when sqlglot parses ``candidate`` as a real statement (not its raw-command fallback)."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(candidate, read="sqlite", error_level=sqlglot.ErrorLevel.RAISE)
    except Exception:  # noqa: BLE001 - any parser failure means "not SQL"
        return False
    return tree is not None and not isinstance(tree, exp.Command)


def extract_sql_lenient(text: str) -> str | None:
    """``<sql>`` tags, else a ```sql fence, else the first statement found in the text.

    The last fallback tries each upper-case statement keyword in turn, takes the text up to
    ``;``, a blank line or a fence, and keeps the first candidate that sqlglot parses, so
    prose such as "create a new farm" is not mistaken for SQL.
    """
    sql = extract_sql(text)
    if sql is not None:
        return sql
    fence = _fenced(text)
    if fence is not None and fence.strip():
        return fence.strip()
    for n, start in enumerate(_STATEMENT_START.finditer(text)):
        if n >= MAX_LENIENT_CANDIDATES:
            break
        rest = text[start.start() :]
        end = _STATEMENT_END.search(rest)
        candidate = (
            rest[: end.end()]
            if end and end.group() == ";"
            else rest[: end.start()]
            if end
            else rest
        ).strip()
        if candidate and _is_sql_statement(candidate):
            return candidate
    return None


# --- schema names ---------------------------------------------------------------------------

_CREATE = re.compile(
    r"\bCREATE\s+(?:TEMP(?:ORARY)?\s+)?(TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?", re.I
)
_IDENT = re.compile(r'"((?:[^"]|"")+)"|`([^`]+)`|\[([^\]]+)\]|([\w$]+)')
_CONSTRAINT_WORDS = frozenset(
    {"primary", "foreign", "unique", "check", "constraint", "key", "index", "fulltext", "spatial"}
)


def _read_identifier(text: str, pos: int) -> tuple[str | None, int]:
    """Read a possibly dotted, possibly quoted identifier at ``pos``; returns (last part, end)."""
    name = None
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        match = _IDENT.match(text, pos)
        if match is None:
            return name, pos
        name = next(g for g in match.groups() if g is not None).replace('""', '"')
        pos = match.end()
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return name, pos


def _split_top_level(body: str) -> list[str]:
    """Split a parenthesised column list on commas that are not nested or quoted."""
    parts, depth, start, quote_char = [], 0, 0, ""
    for i, ch in enumerate(body):
        if quote_char:
            if ch == quote_char:
                quote_char = ""
        elif ch in "'\"`":
            quote_char = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return parts


def _paren_body(text: str, open_pos: int) -> str:
    """Text between the parenthesis at ``open_pos`` and its match (or the end of ``text``)."""
    depth, quote_char = 0, ""
    for i in range(open_pos, len(text)):
        ch = text[i]
        if quote_char:
            if ch == quote_char:
                quote_char = ""
        elif ch in "'\"`":
            quote_char = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[open_pos + 1 : i]
    return text[open_pos + 1 :]


def schema_names(schema_or_context: str) -> set[str]:
    """Lowercased table, view and column names declared by CREATE TABLE / CREATE VIEW statements.

    Works on a bare schema or a gretel ``sql_context`` (INSERTs are ignored). Dotted names
    contribute their last part; view column lists are not inferred. Never raises.
    """
    return set(cached_schema_names(schema_or_context))


@functools.lru_cache(maxsize=4096)
def cached_schema_names(schema_or_context: str) -> frozenset[str]:
    """Memoised, immutable form of :func:`schema_names` (for the per-completion hot path)."""
    names: set[str] = set()
    for create in _CREATE.finditer(schema_or_context):
        name, pos = _read_identifier(schema_or_context, create.end())
        if name is None:
            continue
        names.add(name.lower())
        if create.group(1).upper() != "TABLE":
            continue
        while pos < len(schema_or_context) and schema_or_context[pos].isspace():
            pos += 1
        if pos >= len(schema_or_context) or schema_or_context[pos] != "(":
            continue
        for element in _split_top_level(_paren_body(schema_or_context, pos)):
            column, _ = _read_identifier(element, 0)
            if column is None or column.lower() in _CONSTRAINT_WORDS:
                continue
            names.add(column.lower())
    return frozenset(names)


def schema_names_from_db(db_path: str) -> set[str]:
    """Lowercased table, view and column names of an existing SQLite file, opened read-only.

    Raises ``FileNotFoundError`` for a missing file and ``sqlite3.Error`` for a bad one.
    """
    return set(cached_schema_names_from_db(db_path))


@functools.lru_cache(maxsize=256)
def cached_schema_names_from_db(db_path: str) -> frozenset[str]:
    """Memoised, immutable form of :func:`schema_names_from_db`."""
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"{db_path}: no such SQLite file")
    names: set[str] = set()
    with contextlib.closing(connect_read_only(path)) as conn:
        objects = conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        for (table,) in objects:
            names.add(str(table).lower())
            for row in conn.execute("SELECT name FROM pragma_table_info(?)", (table,)):
                names.add(str(row[0]).lower())
    return frozenset(names)


# --- key columns ----------------------------------------------------------------------------

_PRIMARY_KEY = re.compile(r"\bprimary\s+key\b", re.I)


@functools.lru_cache(maxsize=4096)
def primary_key_columns(schema_or_context: str) -> frozenset[str]:
    """Lowercased names of the columns declared PRIMARY KEY by the CREATE TABLE statements of
    a schema or gretel ``sql_context``: inline (``id INT PRIMARY KEY``) or as a table
    constraint (``PRIMARY KEY (a, b)``, also after ``CONSTRAINT name``). Never raises."""
    keys: set[str] = set()
    for create in _CREATE.finditer(schema_or_context):
        if create.group(1).upper() != "TABLE":
            continue
        _, pos = _read_identifier(schema_or_context, create.end())
        while pos < len(schema_or_context) and schema_or_context[pos].isspace():
            pos += 1
        if pos >= len(schema_or_context) or schema_or_context[pos] != "(":
            continue
        for element in _split_top_level(_paren_body(schema_or_context, pos)):
            marker = _PRIMARY_KEY.search(element)
            if marker is None:
                continue
            column, _ = _read_identifier(element, 0)
            if column is not None and column.lower() not in _CONSTRAINT_WORDS:
                keys.add(column.lower())  # inline: the element's own column
                continue
            start = element.find("(", marker.end())
            if start >= 0:  # table constraint: the parenthesised column list
                for part in _split_top_level(_paren_body(element, start)):
                    name, _ = _read_identifier(part, 0)
                    if name is not None:
                        keys.add(name.lower())
    return frozenset(keys)


@functools.lru_cache(maxsize=256)
def primary_key_columns_from_db(db_path: str) -> frozenset[str]:
    """Lowercased primary-key column names of every table of an existing SQLite file, opened
    read-only. Raises ``FileNotFoundError`` for a missing file and ``sqlite3.Error`` for a bad one."""
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"{db_path}: no such SQLite file")
    keys: set[str] = set()
    with contextlib.closing(connect_read_only(path)) as conn:
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute("SELECT name FROM pragma_table_info(?) WHERE pk > 0", (table,))
            keys.update(str(row[0]).lower() for row in rows)
    return frozenset(keys)


def primary_keys_of(sql_context: str | None = None, db_path: str | None = None) -> frozenset[str]:
    """The primary-key columns of a row's schema: from its ``sql_context`` when it has one,
    else from its ``db_path`` file; empty when neither can be read (never raises)."""
    if sql_context:
        return primary_key_columns(sql_context)
    if db_path:
        try:
            return primary_key_columns_from_db(db_path)
        except Exception as exc:  # noqa: BLE001 - unreadable file: no keys known
            logger.debug("%s: primary keys unreadable: %s", db_path, exc)
    return frozenset()
