"""BIRD's official metrics beside execution accuracy: Soft-F1 and R-VES.

Both follow the BIRD mini-dev evaluation scripts (github.com/bird-bench/mini_dev,
``evaluation/evaluation_f1.py`` and ``evaluation_ves.py``); docs/evaluation.md
describes them and tests/fixtures/bird_metrics_official.json holds the official
scripts' own outputs on sample inputs.

* **Soft-F1** (per question, 0..1): both results without duplicate rows (first
  occurrence kept, order kept); the i-th gold row is paired with the i-th
  predicted row and scored by how many values each holds that the other lacks
  (value membership, column order ignored); unpaired rows count wholly against.
  Two empty results score 1; a failed prediction 0. The reported number is the
  mean times 100.
* **R-VES** (reward-based valid efficiency): a prediction whose rows equal the
  gold's as sets is timed against the gold ``iterations`` times (100 officially),
  each run on a fresh connection; the ratios gold time / predicted time outside
  mean +- 3 standard deviations are dropped and the rest averaged; the average
  falls in a reward bucket (>= 2: 1.25, >= 1: 1, >= 0.5: 0.75, >= 0.25: 0.5,
  else 0.25; wrong, failed or timed out: 0). R-VES = mean of sqrt(reward) x 100.

The official scripts give each question ``timeout_s`` x ``iterations`` seconds
in all, with ``timeout_s`` = 30 (:data:`OFFICIAL_TIMEOUT_S`); here each statement
also runs under the sandbox's per-statement limit of ``timeout_s`` (default
short, :data:`~sqlgrpo.sql.sandbox.DEFAULT_LIMITS`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, SandboxLimits, harden

logger = logging.getLogger(__name__)

#: Per-question time limit of the official BIRD scripts (``--meta_time_out``).
OFFICIAL_TIMEOUT_S = 30.0
#: Timed repetitions of each correct prediction in the official R-VES script.
OFFICIAL_ITERATIONS = 100
#: (lowest time ratio, reward) from the highest bucket down; below the last: 0.25.
RVES_BUCKETS = ((2.0, 1.25), (1.0, 1.0), (0.5, 0.75), (0.25, 0.5))


def _row_scores(pred_row: Sequence, gold_row: Sequence) -> tuple[float, float, float]:
    """(matched, prediction-only, gold-only) value fractions of one row pair."""
    width = len(gold_row)
    matched = sum(1 for v in pred_row if v in gold_row)
    pred_only = len(pred_row) - matched
    gold_only = sum(1 for v in gold_row if v not in pred_row)
    return matched / width, pred_only / width, gold_only / width


def soft_f1(pred_rows: Sequence[tuple] | None, gold_rows: Sequence[tuple]) -> float:
    """BIRD mini-dev Soft-F1 of one prediction (``None`` = it failed: 0)."""
    if pred_rows is None:
        return 0.0
    if not pred_rows and not gold_rows:
        return 1.0
    pred = list(dict.fromkeys(pred_rows))
    gold = list(dict.fromkeys(gold_rows))
    tp = fp = fn = 0.0
    for i, gold_row in enumerate(gold):
        if i >= len(pred):
            fn += 1
            continue
        matched, pred_only, gold_only = _row_scores(pred[i], gold_row)
        tp, fp, fn = tp + matched, fp + pred_only, fn + gold_only
    fp += max(0, len(pred) - len(gold))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def clean_ratios(ratios: Sequence[float]) -> list[float]:
    """The ratios strictly within mean +- 3 population standard deviations."""
    n = len(ratios)
    if n == 0:
        return []
    mean = sum(ratios) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in ratios) / n)
    return [r for r in ratios if mean - 3 * std < r < mean + 3 * std]


def rves_reward(time_ratio: float) -> float:
    """The R-VES reward bucket of an averaged time ratio (0 means wrong or failed)."""
    if time_ratio == 0:
        return 0.0
    for lowest, reward in RVES_BUCKETS:
        if time_ratio >= lowest:
            return reward
    return 0.25


def r_ves(rewards: Sequence[float]) -> float | None:
    """R-VES of a set of per-question rewards: mean of sqrt(reward), times 100."""
    if not rewards:
        return None
    return sum(math.sqrt(r) for r in rewards) / len(rewards) * 100


@dataclass(frozen=True)
class TimingConfig:
    """How R-VES times a prediction against its gold."""

    iterations: int = OFFICIAL_ITERATIONS
    timeout_s: float = DEFAULT_LIMITS.timeout_s  # per statement; the question gets x iterations

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


class _Timeout(Exception):
    pass


def _run_timed(
    db_path: Path, sql: str, limits: SandboxLimits, timer: Callable[[], float]
) -> tuple[list[tuple], float]:
    """(rows, seconds) of one run on a fresh read-only, sandboxed connection; the clock
    starts after connecting, as the official script's does."""
    from sqlgrpo.sql.database import connect_read_only

    conn = connect_read_only(db_path, check_same_thread=False)
    try:
        guard = harden(conn, limits, read_only=True)
        guard.arm(limits.timeout_s)
        started = timer()
        rows = conn.execute(sql).fetchall()
        conn.close()
        elapsed = timer() - started
    except Exception:
        conn.close()
        if guard.fired:
            raise _Timeout from None
        raise
    return rows, elapsed


def time_ratio(
    pred_sql: str,
    gold_sql: str,
    db_path: str | Path,
    cfg: TimingConfig = TimingConfig(),
    *,
    timer: Callable[[], float] = time.perf_counter,
) -> float:
    """The averaged gold/prediction time ratio of R-VES; 0 when the prediction's rows
    differ from the gold's as sets, when either fails or when the question runs past
    ``timeout_s`` x ``iterations``. ``timer`` is a clock (injectable for tests)."""
    limits = SandboxLimits(timeout_s=cfg.timeout_s)
    path = Path(db_path)
    deadline = time.monotonic() + cfg.timeout_s * cfg.iterations
    try:
        pred_rows, _ = _run_timed(path, pred_sql, limits, _untimed)
        gold_rows, _ = _run_timed(path, gold_sql, limits, _untimed)
        if set(pred_rows) != set(gold_rows):
            return 0.0
        ratios = []
        for _ in range(cfg.iterations):
            pred_s = _run_timed(path, pred_sql, limits, timer)[1]
            gold_s = _run_timed(path, gold_sql, limits, timer)[1]
            ratios.append(gold_s / pred_s)
            if time.monotonic() > deadline:
                raise _Timeout
        kept = clean_ratios(ratios)
        return sum(kept) / len(kept)  # nothing kept (all ratios equal) fails, as officially
    except _Timeout:
        logger.info("R-VES timing of %s ran past its time limit", path)
        return 0.0
    except Exception as exc:  # noqa: BLE001 - wrong, failed and odd cases all score 0
        logger.debug("R-VES timing failed: %s", exc)
        return 0.0


def _untimed() -> float:
    return 0.0
