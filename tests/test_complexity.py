"""sql_complexity: hand-counted features from a fixture, and a cross-check against sqlglot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlgrpo.sql.complexity import FEATURE_WEIGHTS, complexity_features, sql_complexity

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "rewards_complexity.json").read_text())


@pytest.mark.parametrize("case", FIXTURE["features"], ids=lambda c: c["sql"][:50])
def test_features_and_score_match_hand_counts(case: dict) -> None:
    features = complexity_features(case["sql"])
    expected = dict.fromkeys(FEATURE_WEIGHTS, 0) | case["counts"]
    assert {k: getattr(features, k) for k in FEATURE_WEIGHTS} == expected
    assert sql_complexity(case["sql"]) == pytest.approx(case["complexity"])


def test_simplest_query_scores_one() -> None:
    assert sql_complexity("SELECT a FROM t") == 1.0
    assert sql_complexity("select a from t;") == 1.0


def test_hostile_inputs_score_without_raising() -> None:
    assert sql_complexity("(" * 50_000 + "SELECT 1" + ")" * 50_000) > 1.0
    assert sql_complexity("SELECT '\ud800\x00' FROM t") == 1.0
    assert sql_complexity("'unterminated string JOIN") == 1.0
    assert sql_complexity("SELECT 1 " + "JOIN t " * 1_000_000) >= 1.0  # capped scan, finishes


def _sqlglot_counts(sql: str) -> dict[str, int] | None:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return None
    if tree is None:
        return None
    windows = list(tree.find_all(exp.Window))
    return {
        "joins": len(list(tree.find_all(exp.Join))),
        "set_operations": len(list(tree.find_all(exp.Union, exp.Intersect, exp.Except))),
        "ctes": len(list(tree.find_all(exp.CTE))),
        # ranking / navigation functions (RANK, LEAD, NTILE) are AggFuncs to sqlglot, but the
        # score counts them as window functions (OVER), so compare the classic aggregates only
        "aggregates": len(list(tree.find_all(exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max))),
        "case": len(list(tree.find_all(exp.Case))),
        "window_functions": len(windows),
        "group_by": len(list(tree.find_all(exp.Group))),
        "having": len(list(tree.find_all(exp.Having))),
        "distinct": len(list(tree.find_all(exp.Distinct))),
    }


def test_lexical_counts_agree_with_sqlglot_on_gretel_golds(gretel_train_path: Path) -> None:
    rows = [json.loads(line) for line in gretel_train_path.read_text().splitlines() if line.strip()]
    compared, disagreements = 0, []
    for row in rows:
        expected = _sqlglot_counts(row["sql"])
        if expected is None:
            continue
        compared += 1
        features = complexity_features(row["sql"])
        got = {k: getattr(features, k) for k in expected}
        if got != expected:
            disagreements.append((row["sql"], got, expected))
    assert compared > 800
    assert disagreements == []
