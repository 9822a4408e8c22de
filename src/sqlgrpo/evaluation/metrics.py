"""Aggregate evaluation records into metrics, and compare two evaluations pairwise.

Everything here works on the plain dicts of ``predictions.jsonl`` so it can be
tested on fixture files and reused by the report and the demo.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlgrpo.data.jsonl import read_jsonl
from sqlgrpo.generation.voting import voting_metrics
from sqlgrpo.rewards.monitors import hack_flags, monitor_shares

BREAKDOWN_KEYS = ("sql_complexity", "sql_task_type", "difficulty", "db_id", "domain")
GOLD_KINDS = ("select_rows", "select_empty", "dml", "other", "gold_error")


def _rate(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _group(records: list[dict[str, Any]], key: Any) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        value = key(r)
        if value is not None and value != "":
            groups[str(value)].append(r)
    return {
        name: {
            "n": len(rows),
            "execution_accuracy": _rate([bool(r.get("match")) for r in rows]),
            "execution_accuracy_lenient": _rate([bool(r.get("match_lenient")) for r in rows]),
        }
        for name, rows in sorted(groups.items())
    }


def aggregate(records: Iterable[dict[str, Any]], *, turns: int | None = None) -> dict[str, Any]:
    """Metrics over evaluation records (one per example; the first sample scores).

    Headline numbers use strict extraction (``<sql>`` tags); the lenient twin is
    reported beside it. Rows whose gold SQL did not run count as wrong and are
    also counted under ``by_gold_kind.gold_error``. Records of an evaluation with execution
    feedback (``turns``) score their last turn, and ``feedback`` reports every turn
    (:func:`feedback_summary`; ``turns`` is the evaluation's turn limit).
    """
    rows = list(records)
    match = [bool(r.get("match")) for r in rows]
    not_empty = [bool(r.get("match")) for r in rows if r.get("gold_kind") != "select_empty"]
    rewards: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        for name, value in (r.get("rewards") or {}).items():
            if value is not None:
                rewards[name].append(float(value))
    metrics: dict[str, Any] = {
        "n": len(rows),
        "execution_accuracy": _rate(match),
        "execution_accuracy_lenient": _rate([bool(r.get("match_lenient")) for r in rows]),
        "execution_accuracy_excluding_empty_gold": _rate(not_empty),
        "format_rate": _rate([bool(r.get("format_ok")) for r in rows]),
        "format_rate_strict": _rate([bool(r.get("format_strict_ok")) for r in rows]),
        "executable_rate": _rate([bool(r.get("executed")) for r in rows]),
        "executable_rate_lenient": _rate([bool(r.get("executed_lenient")) for r in rows]),
        "rewards": {name: sum(v) / len(v) for name, v in sorted(rewards.items())},
        "by_gold_kind": _group(rows, lambda r: r.get("gold_kind")),
        "error_classes": dict(
            sorted(Counter(r["error_class"] for r in rows if r.get("error_class")).items())
        ),
        "monitors": hack_monitor_shares(rows),
    }
    for key in BREAKDOWN_KEYS:
        groups = _group(rows, lambda r, k=key: (r.get("metadata") or {}).get(k))
        if groups:
            metrics[f"by_{key}"] = groups
    if any(r.get("samples") for r in rows):
        metrics["pass_at_n"] = _rate(
            [any(bool(s.get("match")) for s in (r.get("samples") or [r])) for r in rows]
        )
    voting = voting_metrics(rows)
    if voting is not None:
        metrics["voting"] = voting
    bird = bird_summary(rows)
    if bird is not None:
        metrics["bird"] = bird
    feedback = feedback_summary(rows, turns)
    if feedback is not None:
        metrics["feedback"] = feedback
    return metrics


def hack_monitor_shares(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """The hack monitors (:mod:`sqlgrpo.rewards.monitors`) over the records' scored outputs
    (``raw_output``, prefill included; else ``completion``) against their gold SQL and schema:
    the same shares training logs per step, so a checkpoint is compared with its start."""
    return monitor_shares(
        hack_flags(
            r.get("raw_output", r.get("completion")) or "",
            r.get("gold_sql"),
            r.get("sql_context"),
            r.get("db_path"),
        )
        for r in records
    )


def feedback_summary(
    records: Iterable[dict[str, Any]], turns: int | None = None
) -> dict[str, Any] | None:
    """Execution feedback turn by turn, over the records that carry ``turns``; None when none
    does. A question answered in k turns keeps its last answer at every later turn, so the
    numbers at turn t are what a limit of t turns gives; turn 1 is the single-turn evaluation
    and the last turn the headline. ``final_vs_first`` pairs them by question (exact McNemar):
    ``gained`` wrong at turn 1 and right at the end, ``lost`` the reverse."""
    rows = [r for r in records if r.get("turns")]
    if not rows:
        return None
    limit = max([turns or 0, *(len(r["turns"]) for r in rows)])

    def at(record: dict[str, Any], t: int) -> dict[str, Any]:
        return record["turns"][min(t, len(record["turns"])) - 1]

    per_turn = {
        str(t): {
            "execution_accuracy": _rate([bool(at(r, t).get("match")) for r in rows]),
            "executable_rate": _rate([bool(at(r, t).get("executed")) for r in rows]),
            "answered": sum(len(r["turns"]) >= t for r in rows),
        }
        for t in range(1, limit + 1)
    }
    gained = [str(r["id"]) for r in rows if not at(r, 1).get("match") and r.get("match")]
    lost = [str(r["id"]) for r in rows if at(r, 1).get("match") and not r.get("match")]
    sent = Counter(
        t.get("outcome") for r in rows for t in r["turns"] if t.get("observation") is not None
    )
    return {
        "turns": limit,
        "n": len(rows),
        "per_turn": per_turn,
        "turns_used": {
            str(k): v for k, v in sorted(Counter(len(r["turns"]) for r in rows).items())
        },
        "observations": dict(sorted(sent.items())),
        "redrawn": sum(bool(t.get("redrawn")) for r in rows for t in r["turns"]),
        "final_vs_first": {
            "gained": len(gained),
            "lost": len(lost),
            "p_value": mcnemar_exact_p(len(gained), len(lost)),
            "gained_ids": gained,
            "lost_ids": lost,
        },
    }


def bird_summary(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """BIRD's metrics over the records that carry them (``record["bird"]``), on BIRD's
    0-100 scale: EX (rows equal as sets), Soft-F1 and R-VES (only where the records had a
    database file to time on). None when no record has them."""
    from sqlgrpo.sql.bird_metrics import r_ves

    rows = list(records)
    scored = [r["bird"] for r in rows if r.get("bird")]
    if not scored:
        return None
    timed = [b["rves_reward"] for b in scored if b.get("rves_reward") is not None]
    return {
        "n": len(scored),
        "not_a_query": len(rows) - len(scored),
        "ex": 100 * sum(bool(b["ex"]) for b in scored) / len(scored),
        "soft_f1": 100 * sum(b["soft_f1"] for b in scored) / len(scored),
        "r_ves": r_ves(timed) if len(timed) == len(scored) else None,
        "n_timed": len(timed),
    }


def mcnemar_exact_p(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of ``gained`` vs ``lost`` at p=0.5."""
    n = gained + lost
    if n == 0:
        return 1.0
    k = min(gained, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def format_p_value(p: float) -> str:
    """A p-value as the console and the report print it: three significant digits
    (``3.05e-05``, ``0.0412``, ``1``), so a small p never reads as ``0.000``."""
    return f"{p:.3g}"


@dataclass
class PairedComparison:
    """Per-id comparison of evaluation B against evaluation A on their shared ids."""

    n_shared: int
    only_in_a: int
    only_in_b: int
    both_correct: int
    both_wrong: int
    gained: int  # wrong in A, right in B
    lost: int  # right in A, wrong in B
    accuracy_a: float | None
    accuracy_b: float | None
    p_value: float
    gained_ids: list[str] = field(default_factory=list)
    lost_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """predictions.jsonl as {id: record}; bad lines raise naming file and line."""
    return {str(record["id"]): record for record in read_jsonl(path, require=("id",))}


def compare_runs(a_dir: str | Path, b_dir: str | Path) -> PairedComparison:
    """Paired comparison of two evaluation folders on the ids they share (strict match)."""
    a = read_records(Path(a_dir) / "predictions.jsonl")
    b = read_records(Path(b_dir) / "predictions.jsonl")
    shared = [i for i in a if i in b]
    gained = [i for i in shared if not a[i].get("match") and b[i].get("match")]
    lost = [i for i in shared if a[i].get("match") and not b[i].get("match")]
    both = sum(1 for i in shared if a[i].get("match") and b[i].get("match"))
    return PairedComparison(
        n_shared=len(shared),
        only_in_a=len(a) - len(shared),
        only_in_b=len(b) - len(shared),
        both_correct=both,
        both_wrong=len(shared) - both - len(gained) - len(lost),
        gained=len(gained),
        lost=len(lost),
        accuracy_a=_rate([bool(a[i].get("match")) for i in shared]),
        accuracy_b=_rate([bool(b[i].get("match")) for i in shared]),
        p_value=mcnemar_exact_p(len(gained), len(lost)),
        gained_ids=gained,
        lost_ids=lost,
    )
