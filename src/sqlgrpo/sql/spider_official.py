"""The official Spider execution evaluator's default behaviour, reproduced.

The official evaluator (taoyds/test-suite-sql-eval, ``evaluation.py --etype exec``)
rewrites both statements before it runs them, decides whether row order matters
from the rewritten gold text, and compares the raw rows. Run *without*
``--keep_distinct`` (its default, and what papers report) it removes every
``DISTINCT`` keyword from gold and prediction, ``COUNT(DISTINCT x)`` included.
This module holds those rewrites and the result equality; the ``spider_official``
rule of :mod:`sqlgrpo.sql.compare` and :class:`~sqlgrpo.sql.execution.ExecutionChecker`
use them. Behaviour reproduced (see docs/evaluation.md):

* prediction only: every lowercase ``value`` becomes ``1`` (plain text replacement,
  identifiers included), as the evaluator does for models that emit a placeholder;
* both: ``> =``, ``< =``, ``! =`` are closed up; ``DISTINCT`` tokens (sqlparse's
  tokenizer, any case) are dropped; ``YEAR(CURDATE())`` becomes ``2020``;
* order matters when the rewritten gold contains ``order by`` anywhere (any case,
  one space; subqueries and string literals count too);
* two empty results are equal whatever their widths; otherwise the row counts and
  widths must agree, values compare with Python ``==`` (exact floats; ``1 == 1.0``),
  rows as a multiset (a list when order matters), and the prediction's columns may
  be permuted;
* before the permutation search a quick check compares each row's values sorted by
  ``str(value) + str(type(value))`` (as a set of rows, or a list when order
  matters), so a few results equal only through ``1 == 1.0`` across columns are
  rejected, as the evaluator rejects them.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence

logger = logging.getLogger(__name__)

#: Column permutations checked before giving up (the evaluator has no bound; column
#: pruning keeps real Spider results far below this).
MAX_PERMUTATIONS = 200_000
#: The evaluator's nominal per-query time limit (seconds).
OFFICIAL_TIMEOUT_S = 60.0
_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)
_SPACED_OPERATORS = (("> =", ">="), ("< =", "<="), ("! =", "!="))


def strip_distinct(sql: str) -> str:
    """``sql`` without its ``DISTINCT`` tokens (sqlparse tokens whose text is ``distinct``
    in any case; words inside strings, quoted names and comments stay)."""
    if not sql.strip():
        return sql
    import sqlparse

    statements = sqlparse.parse(sql)
    if not statements:
        return sql
    return "".join(t.value for t in statements[0].flatten() if t.value.lower() != "distinct")


def rewrite_sql(sql: str, *, prediction: bool, keep_distinct: bool = False) -> str:
    """The text the official evaluator compares, before its ``YEAR(CURDATE())`` step
    (see :func:`executed_sql`): ``value`` -> ``1`` for a prediction, spaced comparison
    operators closed up, and (unless ``keep_distinct``) ``DISTINCT`` removed."""
    if prediction:
        sql = sql.replace("value", "1")
    for spaced, closed in _SPACED_OPERATORS:
        sql = sql.replace(spaced, closed)
    if not keep_distinct:
        sql = strip_distinct(sql)
    return sql


def order_matters(rewritten_gold: str) -> bool:
    """True when the rewritten gold text contains ``order by`` (anywhere, any case)."""
    return "order by" in rewritten_gold.lower()


def executed_sql(rewritten: str) -> str:
    """The statement actually run: ``YEAR(CURDATE())`` replaced by ``2020``."""
    return _CUR_YEAR.sub("2020", rewritten)


def prepare(gold_sql: str, pred_sql: str | None, *, keep_distinct: bool = False) -> tuple:
    """``(gold to run, prediction to run or None, order matters)`` under the official rules."""
    gold = rewrite_sql(gold_sql, prediction=False, keep_distinct=keep_distinct)
    pred = None
    if pred_sql is not None:
        pred = executed_sql(rewrite_sql(pred_sql, prediction=True, keep_distinct=keep_distinct))
    return executed_sql(gold), pred, order_matters(gold)


def _value_key(value: object) -> str:
    return str(value) + str(type(value))


def _sorted_row(row: Sequence) -> tuple:
    return tuple(sorted(row, key=_value_key))


def results_equal(gold_rows: list[tuple], pred_rows: list[tuple], order_matters: bool) -> bool:
    """The official denotation equality of two raw results (see the module docstring)."""
    if not gold_rows and not pred_rows:
        return True
    if len(gold_rows) != len(pred_rows):
        return False
    width = len(gold_rows[0])
    if len(pred_rows[0]) != width:
        return False
    gold_sorted = [_sorted_row(r) for r in gold_rows]
    pred_sorted = [_sorted_row(r) for r in pred_rows]
    if order_matters:
        if gold_sorted != pred_sorted:
            return False
    elif set(gold_sorted) != set(pred_sorted):
        return False
    if width == 1:
        return _rows_equal(gold_rows, pred_rows, order_matters)
    gold_values = [{row[i] for row in gold_rows} for i in range(width)]
    pred_values = [{row[j] for row in pred_rows} for j in range(width)]
    # A prediction column can stand for a gold column only if its values all occur there.
    candidates = [
        [j for j in range(width) if pred_values[j] <= gold_values[i]] for i in range(width)
    ]
    if any(not c for c in candidates):
        return False
    gold_counts = None if order_matters else Counter(gold_rows)
    for tried, perm in enumerate(_permutations(candidates), start=1):
        if tried > MAX_PERMUTATIONS:
            logger.warning("gave up after %d column permutations (%d columns)", tried, width)
            return False
        permuted = [tuple(row[j] for j in perm) for row in pred_rows]
        if order_matters:
            if permuted == gold_rows:
                return True
        elif Counter(permuted) == gold_counts:
            return True
    return False


def _rows_equal(gold_rows: list[tuple], pred_rows: list[tuple], order_matters: bool) -> bool:
    if order_matters:
        return gold_rows == pred_rows
    return Counter(gold_rows) == Counter(pred_rows)


def _permutations(candidates: list[list[int]]) -> Iterator[tuple[int, ...]]:
    """Assignments of distinct prediction columns to the gold columns, depth first."""
    chosen: list[int] = []
    used: set[int] = set()

    def walk(i: int) -> Iterator[tuple[int, ...]]:
        if i == len(candidates):
            yield tuple(chosen)
            return
        for j in candidates[i]:
            if j in used:
                continue
            used.add(j)
            chosen.append(j)
            yield from walk(i + 1)
            chosen.pop()
            used.discard(j)

    return walk(0)
