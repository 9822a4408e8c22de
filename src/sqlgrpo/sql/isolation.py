"""Which untrusted statements must run in the worker process (pure SQL-text analysis).

A statement goes to the worker (:mod:`sqlgrpo.sql.worker`, killed at the deadline) when it
uses a construct that can run long inside one SQLite instruction, where the progress
handler cannot stop it (long LIKE/GLOB patterns, ``instr`` / ``replace`` with long needles,
string builders, recursive CTEs, window functions), or when it sorts more rows than one
instruction can sort before the deadline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from sqlgrpo.sql.statements import tokens

ISOLATED_PATTERN = re.compile(
    r"\|\||\b(?:instr|replace|trim|ltrim|rtrim|like|glob|regexp|match|printf|format|zeroblob"
    r"|randomblob|hex|unhex|quote|char|group_concat|string_agg|concat|concat_ws|json\w*"
    r"|soundex|unistr|with|recursive|over|window)\b",
    re.IGNORECASE,
)


#: Keywords that make SQLite sort, and VALUES (rows written out in the statement).
SORT_PATTERN = re.compile(r"\b(?:order|group|distinct|union|intersect|except)\b", re.IGNORECASE)
_VALUES = re.compile(r"\bvalues\b", re.IGNORECASE)
#: A sort over more rows than this may run past the deadline inside one instruction.
SORT_ROWS_LIMIT = 200_000
_CLAUSE_END = frozenset(
    {"WHERE", "GROUP", "ORDER", "LIMIT", "HAVING", "WINDOW", "UNION", "INTERSECT", "EXCEPT",
     "SELECT", "RETURNING", "SET", "VALUES"}
)  # fmt: skip


def count_sources(sql: str) -> int:
    """Tables, views and subqueries joined in ``sql``'s FROM clauses, all queries together
    (comma-separated items and JOINs): the exponent of how many rows it can produce."""
    sources = 0
    in_from: list[bool] = [False]
    for kind, text in tokens(sql):
        if kind == "open":
            in_from.append(False)
        elif kind == "close":
            if len(in_from) > 1:
                in_from.pop()
        elif kind == "word":
            word = text.upper()
            if word == "FROM":
                in_from[-1] = True
                sources += 1
            elif word == "JOIN":
                sources += 1
            elif word in _CLAUSE_END:
                in_from[-1] = False
        elif kind == "other" and text == "," and in_from[-1]:
            sources += 1
    return sources


_ISOLATED_WORDS = ("||", "instr", "replace", "trim", "like", "glob", "regexp", "match",
                   "printf", "format", "zeroblob", "randomblob", "hex", "quote", "char",
                   "group_concat", "string_agg", "concat", "json", "soundex", "unistr",
                   "with", "recursive", "over", "window")  # fmt: skip
_SORT_WORDS = ("order", "group", "distinct", "union", "intersect", "except")


def needs_isolation(sql: str, row_count: int | Callable[[], int] = 1 << 40) -> bool:
    """True when ``sql`` must run in the worker: it uses a construct of
    :data:`ISOLATED_PATTERN`, or it sorts and its sources can produce more than
    :data:`SORT_ROWS_LIMIT` rows from a database of ``row_count`` rows (a sort of what was
    gathered before the deadline is one instruction; VALUES rows count as unknown).
    ``row_count`` may be a function, called only when the answer depends on it."""
    low = sql.lower()
    # substring tests first (fast); the word-boundary patterns confirm a hit
    if any(word in low for word in _ISOLATED_WORDS) and ISOLATED_PATTERN.search(sql):
        return True
    if not any(word in low for word in _SORT_WORDS) or SORT_PATTERN.search(sql) is None:
        return False
    if "values" in low and _VALUES.search(sql) is not None:
        return True
    if callable(row_count):
        row_count = row_count()
    if row_count <= 1:
        return False
    needed = math.floor(math.log(SORT_ROWS_LIMIT) / math.log(row_count)) + 1
    if sql.count(",") + low.count("join") + low.count("from") < needed:
        return False  # not enough sources possible: no need to tokenize
    return count_sources(sql) >= needed
