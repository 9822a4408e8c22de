"""Judge trustworthiness: the judge's SQL score against execution match, on a scripted judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlgrpo.evaluation.agreement import judge_execution_agreement
from sqlgrpo.evaluation.judge import parse_judgement, summarize

SPEC = json.loads((Path(__file__).parent / "fixtures" / "judge_agreement_cases.json").read_text())


def _judgements() -> list[dict]:
    out = []
    for row in SPEC["rows"]:
        parsed = parse_judgement(row["reply"])
        out.append(
            {
                "id": row["id"],
                "match": row["match"],
                "status": "ok" if parsed.parsed_any else "unparsed",
                "scores": parsed.scores,
                "score_status": parsed.status,
                "explanation": parsed.explanation,
                "error_type": parsed.error_type,
            }
        )
    return out


def test_agreement_table_rate_and_praised_but_wrong_rows() -> None:
    got = judge_execution_agreement(_judgements())
    want = SPEC["expect"]
    assert got["n"] == want["n"]
    assert got["table"] == want["table"]
    assert got["rate"] == pytest.approx(want["rate"])
    assert got["kappa"] == pytest.approx(want["kappa"])
    assert [r["id"] for r in got["praised_but_wrong"]] == want["praised_but_wrong"]
    first = got["praised_but_wrong"][0]
    assert first["sql_score"] == 5 and first["explanation"].startswith("Looks right")


def test_the_judge_summary_reports_it() -> None:
    summary = summarize(_judgements())
    agreement = summary["sql_score_vs_execution"]
    assert agreement["table"] == SPEC["expect"]["table"]
    assert agreement["judge_high_no_match"] == len(SPEC["expect"]["praised_but_wrong"])


def test_no_pairs_gives_no_rate() -> None:
    got = judge_execution_agreement([])
    assert got["n"] == 0 and got["rate"] is None and got["kappa"] is None
