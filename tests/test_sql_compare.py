"""The comparison rules (seed, spider, bird) and DML state matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlgrpo.sql import (
    COMPARE_RULES,
    ErrorClass,
    ExecResult,
    compare_results,
    normalize_value,
    states_match,
)

CASES = json.loads((Path(__file__).parent / "fixtures" / "sql_compare_cases.json").read_text())


def _result(spec: dict) -> ExecResult:
    if "error" in spec:
        return ExecResult(
            ok=False,
            statement_type="SELECT",
            error_class=ErrorClass(spec["error"]),
            error_message="x",
        )
    return ExecResult(
        ok=True,
        statement_type="SELECT",
        columns=tuple(spec["columns"]),
        rows=[tuple(row) for row in spec["rows"]],
    )


@pytest.mark.parametrize("rule", COMPARE_RULES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_comparison_rules(case: dict, rule: str) -> None:
    exact, similarity = case["expect"][rule]
    result = compare_results(
        _result(case["gold"]), _result(case["pred"]), rule, order_matters=case["order_matters"]
    )
    assert result.rule == rule
    assert result.exact is exact
    assert result.similarity == pytest.approx(similarity)


def test_unknown_rule_is_rejected() -> None:
    gold = _result({"columns": ["a"], "rows": [[1]]})
    with pytest.raises(ValueError, match="unknown comparison rule"):
        compare_results(gold, gold, "exact")


def test_spider_permutation_search_handles_columns_with_equal_values() -> None:
    # Columns b and c hold the same multiset, so the search must try both assignments.
    gold = _result({"columns": ["a", "b", "c"], "rows": [[1, 1, 2], [2, 2, 1]]})
    pred = _result({"columns": ["c", "a", "b"], "rows": [[2, 1, 1], [1, 2, 2]]})
    assert compare_results(gold, pred, "spider").exact
    wrong = _result({"columns": ["c", "a", "b"], "rows": [[2, 1, 2], [1, 2, 2]]})
    assert not compare_results(gold, wrong, "spider").exact


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, 1), (2.0, 2), (-0.0, 0), (1 / 3, 0.3333333), (1e300, 1e300), (None, None), ("1", "1")],
)
def test_normalize_value(value: object, expected: object) -> None:
    normalized = normalize_value(value)
    assert normalized == expected and type(normalized) is type(expected)


def _state(tables: dict[str, list[list]], ok: bool = True) -> ExecResult:
    return ExecResult(
        ok=ok,
        statement_type="UPDATE",
        state={name: [tuple(r) for r in rows] for name, rows in tables.items()},
    )


def test_states_match_compares_every_table_as_a_multiset() -> None:
    gold = _state({"t": [[1, "a"], [2, "b"]], "u": [[1]]})
    assert states_match(gold, _state({"t": [[2, "b"], [1.0, "a"]], "u": [[1]]}))
    assert not states_match(gold, _state({"t": [[1, "a"], [2, "b"]], "u": [[1], [1]]}))
    assert not states_match(gold, _state({"t": [[1, "a"], [2, "b"]]}))  # a table dropped
    assert not states_match(gold, _state({"t": [[1, "a"], [2, "B"]], "u": [[1]]}))
    assert not states_match(gold, _state({"t": [[1, "a"], [2, "b"]], "u": [[1]]}, ok=False))
    no_state = ExecResult(ok=True, statement_type="UPDATE")
    assert not states_match(gold, no_state) and not states_match(no_state, no_state)
