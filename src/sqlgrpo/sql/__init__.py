"""Untrusted-SQL sandbox and result comparison.

* :mod:`~sqlgrpo.sql.errors`: error classes and their partial credit;
* :mod:`~sqlgrpo.sql.sandbox`: limits and :func:`run_untrusted` on a connection;
* :mod:`~sqlgrpo.sql.database`: databases built from contexts or opened read-only;
* :mod:`~sqlgrpo.sql.compare`: the comparison rules (``CompareRule``: ``seed``,
  ``spider``, ``spider_official``, ``bird``);
* :mod:`~sqlgrpo.sql.spider_official`: the official Spider evaluator's rewrites and
  result equality;
* :mod:`~sqlgrpo.sql.bird_metrics`: BIRD's Soft-F1 and R-VES;
* :mod:`~sqlgrpo.sql.execution`: gold-versus-prediction checks;
* :mod:`~sqlgrpo.sql.statements`: statement type and splitting.

Parsing helpers (``parsing.py``) and ``complexity.py`` are imported from their
own modules.
"""

from sqlgrpo.sql.compare import (
    COMPARE_RULES,
    CompareRule,
    MatchResult,
    compare_results,
    normalize_value,
    set_jaccard,
    states_match,
)
from sqlgrpo.sql.database import Database, DatabaseCache
from sqlgrpo.sql.errors import ERROR_CREDIT, ErrorClass, classify_exception, classify_message
from sqlgrpo.sql.execution import GOLD_KINDS, ExecutionChecker, ExecutionOutcome, gold_kind
from sqlgrpo.sql.sandbox import ExecResult, SandboxLimits, run_untrusted
from sqlgrpo.sql.statements import (
    DML_TYPES,
    QUERY_TYPES,
    has_order_by,
    split_statements,
    statement_type,
)

__all__ = [
    "COMPARE_RULES",
    "CompareRule",
    "DML_TYPES",
    "ERROR_CREDIT",
    "GOLD_KINDS",
    "QUERY_TYPES",
    "Database",
    "DatabaseCache",
    "ErrorClass",
    "ExecResult",
    "ExecutionChecker",
    "ExecutionOutcome",
    "MatchResult",
    "SandboxLimits",
    "classify_exception",
    "classify_message",
    "compare_results",
    "gold_kind",
    "has_order_by",
    "normalize_value",
    "run_untrusted",
    "set_jaccard",
    "split_statements",
    "statement_type",
    "states_match",
]
