"""Execution-based self-consistency voting over several sampled answers.

Each sample that ran gets a *result key*: a digest of its result's width and its
rows as a multiset (values normalised as for comparison, so ``1`` and ``1.0``
agree and row order does not split votes). The vote picks, per question, the
sample whose key most samples share; ties go to the earliest such sample, and
samples that failed or had no SQL do not vote (if none ran, the first sample is
the answer). ``sqlgrpo eval --num-samples N --vote execution`` records the vote
per question; :func:`voting_metrics` reports greedy EX, voted EX and pass@N.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal, get_args

from sqlgrpo.sql.compare import normalize_rows
from sqlgrpo.sql.sandbox import ExecResult

VoteMethod = Literal["execution"]
VOTE_METHODS: tuple[str, ...] = get_args(VoteMethod)


def _multiset(rows: Sequence[tuple]) -> list[tuple[str, int]]:
    return sorted((repr(row), count) for row, count in Counter(normalize_rows(rows)).items())


def result_key(result: ExecResult | None) -> str | None:
    """Digest of a successful result (width + rows as a multiset; for a statement run with
    its resulting state captured, that state: every table's rows as a multiset, so two DML
    answers agree only when they change the database alike); None when it failed."""
    if result is None or not result.ok:
        return None
    if result.state is not None:
        state = sorted((table, _multiset(rows)) for table, rows in result.state.items())
        text = repr(("state", state))
    else:
        text = repr((len(result.columns), _multiset(result.rows), result.statement_type))
    return hashlib.sha1(text.encode("utf-8", "backslashreplace")).hexdigest()[:16]


def vote_by_execution(keys: Sequence[str | None]) -> tuple[int, int]:
    """(index of the chosen sample, how many samples share its result) for the samples'
    result keys; (0, 0) when no sample ran."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return 0, 0
    best = max(counts.values())
    index = next(i for i, k in enumerate(keys) if k is not None and counts[k] == best)
    return index, best


def vote_record(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The vote over one question's scored samples (each with ``result_key`` and ``match``)."""
    keys = [s.get("result_key") for s in samples]
    index, votes = vote_by_execution(keys)
    return {
        "method": "execution",
        "index": index,
        "votes": votes,
        "n_samples": len(samples),
        "n_results": len({k for k in keys if k is not None}),
        "sql": samples[index].get("sql") if samples else None,
        "match": bool(samples[index].get("match")) if samples else False,
    }


def voting_metrics(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Greedy EX (each record's own completion), voted EX and pass@N side by side over the
    records that hold a vote; None when none does."""
    voted = [r for r in records if r.get("vote")]
    if not voted:
        return None
    n = len(voted)
    return {
        "method": voted[0]["vote"]["method"],
        "n": n,
        "n_samples": max(r["vote"]["n_samples"] for r in voted),
        "greedy_execution_accuracy": sum(bool(r.get("match")) for r in voted) / n,
        "voted_execution_accuracy": sum(bool(r["vote"]["match"]) for r in voted) / n,
        "pass_at_n": sum(any(bool(s.get("match")) for s in r.get("samples") or []) for r in voted)
        / n,
    }
