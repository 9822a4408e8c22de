"""Error classes for failed SQL and the partial credit each one earns (SPEC 2.4).

Every failure of untrusted SQL, whatever raised it (sqlite3, the Python
driver, the interpreter itself), is mapped to one :class:`ErrorClass`.
``ERROR_CREDIT`` gives the fraction of the execution reward's weight ``w``
that the class earns; the reasoning behind each value is in docs/sandbox.md.
"""

from __future__ import annotations

import sqlite3
from enum import Enum


class ErrorClass(str, Enum):
    """Why a statement failed; the values are the lowercase names."""

    SYNTAX = "syntax"
    MISSING_TABLE = "missing_table"
    MISSING_COLUMN = "missing_column"
    AMBIGUOUS_COLUMN = "ambiguous_column"
    TYPE_MISMATCH = "type_mismatch"
    CONSTRAINT = "constraint"
    UNKNOWN_FUNCTION = "unknown_function"
    TIMEOUT = "timeout"
    RESOURCE_LIMIT = "resource_limit"
    FORBIDDEN = "forbidden"
    MULTIPLE_STATEMENTS = "multiple_statements"
    EMPTY = "empty"
    READONLY = "readonly"
    OTHER = "other"


#: Fraction of the execution weight ``w`` earned by a failing statement.
#: Small, local mistakes (the statement parsed and named real tables) earn
#: 0.05..0.2; structural failures and anything the sandbox stopped earn 0.
ERROR_CREDIT: dict[ErrorClass, float] = {
    ErrorClass.AMBIGUOUS_COLUMN: 0.2,  # fixed by SPEC 2.4: one qualifier away
    ErrorClass.MISSING_COLUMN: 0.15,  # right tables, one wrong column name
    ErrorClass.TYPE_MISMATCH: 0.1,  # right shape, wrong arity / operand type
    ErrorClass.CONSTRAINT: 0.1,  # valid DML that breaks a declared constraint
    ErrorClass.UNKNOWN_FUNCTION: 0.1,  # usually another dialect's function
    ErrorClass.MISSING_TABLE: 0.05,  # parsed, but not grounded in the schema
    ErrorClass.SYNTAX: 0.0,
    ErrorClass.TIMEOUT: 0.0,
    ErrorClass.RESOURCE_LIMIT: 0.0,
    ErrorClass.FORBIDDEN: 0.0,
    ErrorClass.MULTIPLE_STATEMENTS: 0.0,
    ErrorClass.EMPTY: 0.0,
    ErrorClass.READONLY: 0.0,
    ErrorClass.OTHER: 0.0,
}

# (substring of the lowercased message, class); the first match wins.
_MESSAGE_RULES: tuple[tuple[str, ErrorClass], ...] = (
    ("not authorized", ErrorClass.FORBIDDEN),
    ("prohibited", ErrorClass.FORBIDDEN),
    ("may not be modified", ErrorClass.FORBIDDEN),
    ("too many attached databases", ErrorClass.FORBIDDEN),
    ("cannot attach", ErrorClass.FORBIDDEN),
    ("interrupted", ErrorClass.TIMEOUT),
    ("one statement at a time", ErrorClass.MULTIPLE_STATEMENTS),
    ("ambiguous column name", ErrorClass.AMBIGUOUS_COLUMN),
    ("no such table", ErrorClass.MISSING_TABLE),
    ("no such view", ErrorClass.MISSING_TABLE),
    ("no such column", ErrorClass.MISSING_COLUMN),
    ("has no column named", ErrorClass.MISSING_COLUMN),
    ("no such function", ErrorClass.UNKNOWN_FUNCTION),
    ("wrong number of arguments to function", ErrorClass.UNKNOWN_FUNCTION),
    ("unknown function", ErrorClass.UNKNOWN_FUNCTION),
    ("datatype mismatch", ErrorClass.TYPE_MISMATCH),
    ("values for", ErrorClass.TYPE_MISMATCH),  # "3 values for 2 columns"
    ("values were supplied", ErrorClass.TYPE_MISMATCH),
    ("do not have the same number of result columns", ErrorClass.TYPE_MISMATCH),
    ("sub-select returns", ErrorClass.TYPE_MISMATCH),
    ("row value misused", ErrorClass.TYPE_MISMATCH),
    ("constraint failed", ErrorClass.CONSTRAINT),
    ("readonly database", ErrorClass.READONLY),
    ("read-only", ErrorClass.READONLY),
    ("too big", ErrorClass.RESOURCE_LIMIT),
    ("too large", ErrorClass.RESOURCE_LIMIT),
    ("too long", ErrorClass.RESOURCE_LIMIT),
    ("too many", ErrorClass.RESOURCE_LIMIT),
    ("stack overflow", ErrorClass.RESOURCE_LIMIT),
    ("out of memory", ErrorClass.RESOURCE_LIMIT),
    ("pattern too complex", ErrorClass.RESOURCE_LIMIT),  # SQLITE_LIMIT_LIKE_PATTERN_LENGTH
    ("exceeds", ErrorClass.RESOURCE_LIMIT),
    ("syntax error", ErrorClass.SYNTAX),
    ("incomplete input", ErrorClass.SYNTAX),
    ("unrecognized token", ErrorClass.SYNTAX),
    ("null character", ErrorClass.SYNTAX),
    ("unterminated", ErrorClass.SYNTAX),
    ("number of bindings", ErrorClass.SYNTAX),  # "?" or ":name" placeholders
)


def classify_message(message: str) -> ErrorClass:
    """Map an SQLite error message to its :class:`ErrorClass` (``OTHER`` if unknown)."""
    text = message.lower()
    for needle, error_class in _MESSAGE_RULES:
        if needle in text:
            return error_class
    return ErrorClass.OTHER


def classify_exception(exc: BaseException) -> ErrorClass:
    """Classify any exception raised while running untrusted SQL."""
    if isinstance(exc, (MemoryError, RecursionError, OverflowError)):
        return ErrorClass.RESOURCE_LIMIT
    if isinstance(exc, (UnicodeError, TypeError)):
        return ErrorClass.SYNTAX  # text SQLite cannot even receive (lone surrogates, ...)
    error_class = classify_message(str(exc))
    if error_class is ErrorClass.OTHER:
        if isinstance(exc, sqlite3.IntegrityError):
            return ErrorClass.CONSTRAINT
        if isinstance(exc, sqlite3.DataError):
            return ErrorClass.RESOURCE_LIMIT
    return error_class
