"""How far the LLM judge can be trusted: its SQL score against execution match.

A judgement "praises" the SQL when its SQL score is at least :data:`PRAISE_THRESHOLD`
(4 of 5). Over the judgements that have both a SQL score and an execution verdict,
:func:`judge_execution_agreement` builds the 2x2 table (praised or not x execution
match or not), the agreement rate, and lists the rows where the judge praised SQL
that returns the wrong result, the judge's most misleading failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

PRAISE_THRESHOLD = 4.0


def judge_execution_agreement(
    judgements: Iterable[dict[str, Any]], threshold: float = PRAISE_THRESHOLD
) -> dict[str, Any]:
    """The 2x2 table of judge praise (SQL score >= ``threshold``) against execution match,
    the agreement rate, Cohen's kappa and the praised-but-wrong rows (id, score,
    explanation, error type). Judgements without a SQL score or a match are left out."""
    pairs = []
    praised_wrong = []
    for j in judgements:
        score = (j.get("scores") or {}).get("sql")
        if j.get("status", "ok") != "ok" or score is None or j.get("match") is None:
            continue
        praised, match = score >= threshold, bool(j["match"])
        pairs.append((praised, match))
        if praised and not match:
            praised_wrong.append(
                {
                    "id": j.get("id"),
                    "sql_score": score,
                    "explanation": j.get("explanation"),
                    "error_type": j.get("error_type"),
                }
            )
    table = Counter(pairs)
    n = len(pairs)
    agree = table[(True, True)] + table[(False, False)]
    return {
        "n": n,
        "threshold": threshold,
        "judge_high_and_match": table[(True, True)],
        "judge_high_no_match": table[(True, False)],
        "judge_low_but_match": table[(False, True)],
        "judge_low_and_no_match": table[(False, False)],
        "table": [
            [table[(True, True)], table[(True, False)]],
            [table[(False, True)], table[(False, False)]],
        ],
        "table_labels": {
            "rows": ["judge SQL score >= threshold", "judge SQL score < threshold"],
            "columns": ["execution match", "execution wrong"],
        },
        "rate": agree / n if n else None,
        "kappa": _kappa(table, n),
        "praised_but_wrong": praised_wrong,
    }


def _kappa(table: Counter, n: int) -> float | None:
    """Cohen's kappa of the 2x2 table (None when undefined)."""
    if not n:
        return None
    observed = (table[(True, True)] + table[(False, False)]) / n
    praised = (table[(True, True)] + table[(True, False)]) / n
    matched = (table[(True, True)] + table[(False, True)]) / n
    expected = praised * matched + (1 - praised) * (1 - matched)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)
