"""Cheap, linear-time statement helpers: type, splitting, ORDER BY detection.

These run on the reward hot path, so they use a single regular-expression
tokenizer (strings, quoted identifiers and comments are understood) instead of
a full parser. ``sqlite3.complete_statement`` settles the one case a tokenizer
cannot: semicolons inside ``CREATE TRIGGER ... BEGIN ... END`` bodies.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

#: Statement types that change the database (judged by state, SPEC 2.4 "DML").
DML_TYPES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
#: Statement types that return rows.
QUERY_TYPES = frozenset({"SELECT"})

_TOKEN = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<string>'(?:[^']|'')*(?:'|\Z))
    |(?P<ident>"(?:[^"]|"")*(?:"|\Z)|`(?:[^`]|``)*(?:`|\Z)|\[[^\]]*(?:\]|\Z))
    |(?P<semi>;)
    |(?P<open>\()
    |(?P<close>\))
    |(?P<word>\w+)
    |(?P<other>[^\w\s'"`\[;()\-/]+|.)
    """,
    re.S | re.X,
)
_MAIN_AFTER_WITH = {"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "VALUES"}
_LEADING_WORD = re.compile(r"\s*([A-Za-z_]+)\b")


def tokens(sql: str) -> Iterator[tuple[str, str]]:
    """Yield ``(kind, text)`` pairs covering ``sql`` completely, in order.

    Kinds: ws, comment, string, ident (quoted identifier), semi, open, close,
    word, other. Unterminated strings and comments run to the end of the text.
    """
    for match in _TOKEN.finditer(sql):
        yield match.lastgroup or "other", match.group()


def _significant(sql: str) -> Iterator[tuple[str, str]]:
    for kind, text in tokens(sql):
        if kind != "ws" and kind != "comment":
            yield kind, text


def statement_type(sql: str) -> str:
    """Return the statement's type: "SELECT" (also ``WITH ... SELECT`` and
    ``VALUES``), "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", ...;
    "UNKNOWN" for empty text or text that does not start with a keyword."""
    quick = _LEADING_WORD.match(sql)
    if quick is not None:
        word = quick.group(1).upper()
        if word != "WITH":
            return "SELECT" if word == "VALUES" else word
    significant = _significant(sql)
    first = ""
    for kind, text in significant:
        if kind == "open":
            continue
        first = text.upper() if kind == "word" else ""
        break
    if not first or first[0].isdigit():
        return "UNKNOWN"
    if first == "WITH":
        depth = 0
        for kind, text in significant:
            if kind == "open":
                depth += 1
            elif kind == "close":
                depth -= 1
            elif kind == "semi":
                break
            elif depth == 0 and kind == "word" and text.upper() in _MAIN_AFTER_WITH:
                first = text.upper()
                break
        else:
            return "UNKNOWN"
        if first == "WITH":
            return "UNKNOWN"
    return "SELECT" if first == "VALUES" else first


def split_statements(sql: str) -> list[str]:
    """Split a script into its non-empty statements, comments left out.

    Each statement is returned stripped and without its terminating ``;``.
    Semicolons inside strings, quoted identifiers, comments and trigger
    bodies do not split.
    """
    statements: list[str] = []
    parts: list[str] = []
    words_seen = 0
    is_trigger = False
    for kind, text in tokens(sql):
        if kind == "comment":
            parts.append(" ")
            continue
        if kind == "semi":
            if is_trigger and not sqlite3.complete_statement("".join(parts) + ";"):
                parts.append(text)
                continue
            statement = "".join(parts).strip()
            if statement:
                statements.append(statement)
            parts, words_seen, is_trigger = [], 0, False
            continue
        parts.append(text)
        if kind == "word" and words_seen < 3:
            words_seen += 1
            if text.upper() == "TRIGGER":
                is_trigger = True
    statement = "".join(parts).strip()
    if statement:
        statements.append(statement)
    return statements


_ORDER_WORD = re.compile(r"order", re.I)


def has_order_by(sql: str) -> bool:
    """True when the statement's outermost query has an ORDER BY clause."""
    if _ORDER_WORD.search(sql) is None:  # the common case, decided without tokenizing
        return False
    depth = 0
    previous = ""
    for kind, text in _significant(sql):
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif kind == "word" and depth == 0:
            upper = text.upper()
            if upper == "BY" and previous == "ORDER":
                return True
            previous = upper
            continue
        previous = ""
    return False


def rename_identifier(sql: str, old: str, new: str) -> str:
    """Replace every identifier token spelled exactly ``old`` (bare or quoted)
    with ``new`` in double quotes; strings and comments are left alone."""
    quoted_new = '"' + new.replace('"', '""') + '"'
    out: list[str] = []
    for kind, text in tokens(sql):
        if kind == "word" and text == old:
            out.append(quoted_new)
        elif kind == "ident" and _unquote(text) == old:
            out.append(quoted_new)
        else:
            out.append(text)
    return "".join(out)


def _unquote(text: str) -> str:
    if text[:1] == "[":
        return text[1:-1] if text.endswith("]") else text[1:]
    quote = text[:1]
    body = text[1:-1] if len(text) > 1 and text.endswith(quote) else text[1:]
    return body.replace(quote * 2, quote)
