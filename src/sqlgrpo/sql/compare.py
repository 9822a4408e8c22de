"""Result comparison rules: ``seed`` (SPEC 2.4), ``spider``, ``spider_official`` and ``bird``.

Values are normalised before any comparison (:func:`normalize_value`):
booleans and integral floats become ints, other floats keep 7 significant
digits (1e-6 relative), text and blobs compare exactly, NULL equals NULL.

* ``seed``: exact when both results have the same number of columns and the
  same rows, position by position: as lists when ``order_matters`` (the gold
  has ORDER BY), else as multisets (duplicates count). Otherwise the
  similarity is a *set* Jaccard over rows (SPEC 2.4): same column-name sets ->
  Jaccard of the row sets (prediction columns aligned to the gold by name);
  different names -> both projected onto their common column names; no common
  column -> 0.
* ``spider``: Spider test-suite rule as the official evaluator
  (taoyds/test-suite-sql-eval, ``--etype exec``) applies it when run with
  ``--keep_distinct``: SQL runs as written, rows compare as multisets (as lists
  when ``order_matters``); column order is ignored by searching for a
  permutation of the prediction's columns that makes the results equal
  (bounded search).
* ``spider_official``: the official evaluator's *default* (what papers report):
  ``DISTINCT`` is removed from gold and prediction before they run (also inside
  ``COUNT(DISTINCT ...)``), with the evaluator's other rewrites; order matters
  when the rewritten gold contains ``order by`` anywhere; two empty results match
  whatever their widths; raw values compare exactly (no rounding). The rewrites
  happen in :class:`~sqlgrpo.sql.execution.ExecutionChecker`; this module only
  compares results (:func:`sqlgrpo.sql.spider_official.results_equal`).
* ``bird``: BIRD rule, ``set(pred_rows) == set(gold_rows)``: row order and
  duplicates ignored, column order matters.

For every rule a failed gold or prediction is never a match (two errors never
compare equal), and ``similarity`` is the seed set-Jaccard (1.0 when exact).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal, get_args

from sqlgrpo.sql import spider_official
from sqlgrpo.sql.sandbox import ExecResult

#: The comparison rules, named once; CLIs and configs derive their choices from it.
CompareRule = Literal["seed", "spider", "spider_official", "bird"]
COMPARE_RULES: tuple[str, ...] = get_args(CompareRule)
#: Rules whose SQL the checker rewrites as the official Spider evaluator does.
REWRITING_RULES = ("spider_official",)
#: Column permutations tried by the spider rule before giving up.
MAX_PERMUTATIONS = 5_000


@dataclass
class MatchResult:
    """Outcome of comparing a prediction's result with the gold result."""

    exact: bool
    similarity: float  # 0..1, set Jaccard of rows (1.0 when exact)
    rule: str


def normalize_value(value: object) -> object:
    """Canonical form of one SQL value for comparison."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            if value.is_integer() and abs(value) < 2**63:
                return int(value)
            return float(f"{value:.6e}")
        return value
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def normalize_rows(rows: list[tuple]) -> list[tuple]:
    """Rows with every value normalised."""
    return [tuple(normalize_value(v) for v in row) for row in rows]


def _normalized(result: ExecResult) -> list[tuple]:
    if result.normalized_rows is None:
        result.normalized_rows = normalize_rows(result.rows)
    return result.normalized_rows


def compare_results(
    gold: ExecResult, pred: ExecResult, rule: str = "seed", *, order_matters: bool = False
) -> MatchResult:
    """Compare two results under ``rule`` (one of :data:`COMPARE_RULES`)."""
    if rule not in COMPARE_RULES:
        raise ValueError(f"unknown comparison rule {rule!r}; choose one of {COMPARE_RULES}")
    if not (gold.ok and pred.ok):
        return MatchResult(False, 0.0, rule)
    if rule == "spider_official":
        if spider_official.results_equal(gold.rows, pred.rows, order_matters):
            return MatchResult(True, 1.0, rule)
        return MatchResult(False, set_jaccard(gold, pred), rule)
    width_equal = len(gold.columns) == len(pred.columns)
    # Fast path: values equal under Python's == also normalise equal.
    if rule == "bird":
        if set(gold.rows) == set(pred.rows):
            return MatchResult(True, 1.0, rule)
    elif width_equal and _same_rows(gold.rows, pred.rows, order_matters):
        return MatchResult(True, 1.0, rule)
    gold_rows = _normalized(gold)
    pred_rows = _normalized(pred)
    if rule == "seed":
        exact = width_equal and _same_rows(gold_rows, pred_rows, order_matters)
    elif rule == "spider":
        exact = width_equal and _spider_equal(
            gold_rows, pred_rows, len(gold.columns), order_matters
        )
    else:
        exact = set(gold_rows) == set(pred_rows)
    if exact:
        return MatchResult(True, 1.0, rule)
    return MatchResult(False, set_jaccard(gold, pred, gold_rows, pred_rows), rule)


def _same_rows(gold_rows: list[tuple], pred_rows: list[tuple], order_matters: bool) -> bool:
    if len(gold_rows) != len(pred_rows):
        return False
    if order_matters or gold_rows == pred_rows:
        return gold_rows == pred_rows
    return Counter(gold_rows) == Counter(pred_rows)


def _spider_equal(
    gold_rows: list[tuple], pred_rows: list[tuple], width: int, order_matters: bool
) -> bool:
    if len(gold_rows) != len(pred_rows):
        return False
    if _same_rows(gold_rows, pred_rows, order_matters):
        return True
    if width < 2:
        return False
    # Candidate prediction columns for each gold column: same multiset of values.
    gold_cols = [Counter(row[i] for row in gold_rows) for i in range(width)]
    pred_cols = [Counter(row[i] for row in pred_rows) for i in range(width)]
    candidates = [[j for j in range(width) if pred_cols[j] == gold_cols[i]] for i in range(width)]
    if any(not c for c in candidates):
        return False
    tried = 0
    for perm in itertools.product(*candidates):
        if len(set(perm)) != width:
            continue
        tried += 1
        if tried > MAX_PERMUTATIONS:
            return False
        permuted = [tuple(row[j] for j in perm) for row in pred_rows]
        if _same_rows(gold_rows, permuted, order_matters):
            return True
    return False


def set_jaccard(
    gold: ExecResult,
    pred: ExecResult,
    gold_rows: list[tuple] | None = None,
    pred_rows: list[tuple] | None = None,
) -> float:
    """SPEC 2.4 partial match: set Jaccard of rows, projected onto common columns by name."""
    gold_rows = _normalized(gold) if gold_rows is None else gold_rows
    pred_rows = _normalized(pred) if pred_rows is None else pred_rows
    gold_names = [c.lower() for c in gold.columns]
    pred_names = [c.lower() for c in pred.columns]
    if set(gold_names) == set(pred_names) and len(gold_names) == len(pred_names):
        common = gold_names  # align the prediction's columns to the gold order
    else:
        common = [name for name in dict.fromkeys(gold_names) if name in pred_names]
    if not common:
        return 0.0
    gold_idx = [gold_names.index(name) for name in common]
    pred_idx = [pred_names.index(name) for name in common]
    gold_set = {tuple(row[i] for i in gold_idx) for row in gold_rows}
    pred_set = {tuple(row[i] for i in pred_idx) for row in pred_rows}
    union = gold_set | pred_set
    if not union:
        return 0.0
    return len(gold_set & pred_set) / len(union)


def same_columns(gold: ExecResult, pred: ExecResult) -> bool:
    """True when both results have the same column names (case-insensitive, in any order,
    each as many times); their rows are then compared column by column by name."""
    return Counter(c.lower() for c in gold.columns) == Counter(c.lower() for c in pred.columns)


def states_match(gold: ExecResult, pred: ExecResult) -> bool:
    """True when both ran and left every table with the same rows (as multisets)."""
    if not (gold.ok and pred.ok) or gold.state is None or pred.state is None:
        return False
    if set(gold.state) != set(pred.state):
        return False
    return all(
        Counter(normalize_rows(gold.state[name])) == Counter(normalize_rows(pred.state[name]))
        for name in gold.state
    )
