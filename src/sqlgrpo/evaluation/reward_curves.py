"""Reward curves from a training run's logged metrics: one parser, one smoother, one plot.

Training (``plots/rewards.png``) and the report (an embedded figure) both draw what
:func:`reward_series` reads from ``metrics.jsonl``: TRL's per-reward means
(``rewards/NAME/mean``, or ``rewards/NAME``) and the total ``reward``, each per logged step,
as faint raw points with a rolling mean over them, and beside them the mean completion
length (TRL's ``completions/mean_length``) and the hack monitors (``monitors/NAME``,
:mod:`sqlgrpo.rewards.monitors`: shares of completions that run on after ``</sql>``, are a
bare SELECT, or GROUP BY a key column): a reward that rises with the length or a monitor is
the first sign of a reward being gamed instead of answered.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlgrpo.rewards.monitors import METRIC_PREFIX, MONITORS

TOTAL = "total"
LENGTH = "completion length"
LENGTH_KEY = "completions/mean_length"
#: Series name of each hack monitor (``monitor: run_on``, ...), keyed by its metric key.
MONITOR_NAMES = {METRIC_PREFIX + m: f"monitor: {m}" for m in MONITORS}

Series = dict[str, tuple[list[int], list[float]]]


def _reward_name(key: str) -> str | None:
    """The reward a metric key belongs to (``TOTAL`` for ``reward``), or None."""
    if key == "reward":
        return TOTAL
    if not key.startswith("rewards/"):
        return None
    parts = key.split("/")
    if len(parts) == 2 or (len(parts) == 3 and parts[2] == "mean"):
        return parts[1] or None
    return None  # rewards/NAME/std and other statistics


def _series(records: Sequence[Mapping[str, Any]], name_of: Callable[[str], str | None]) -> Series:
    """name -> (steps, values) for every metric key ``name_of`` names. The step is the
    record's ``step`` (or ``global_step``; else its position); values that are not finite
    numbers are left out."""
    series: Series = {}
    for i, record in enumerate(records):
        step = record.get("step", record.get("global_step", i))
        for key, value in record.items():
            name = name_of(key)
            if name is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                steps, values = series.setdefault(name, ([], []))
                steps.append(int(step))
                values.append(float(value))
    return series


def reward_series(records: Sequence[Mapping[str, Any]]) -> Series:
    """Per-reward mean and the total over steps: name -> (steps, values)."""
    return _series(records, _reward_name)


def length_series(records: Sequence[Mapping[str, Any]]) -> Series:
    """The mean completion length per logged step as ``{LENGTH: (steps, values)}`` (empty
    when the log has none)."""
    return _series(records, lambda key: LENGTH if key == LENGTH_KEY else None)


def monitor_series(records: Sequence[Mapping[str, Any]]) -> Series:
    """The hack monitors per logged step, ``monitor: NAME -> (steps, shares)`` (empty when the
    log has none: runs from before the monitors)."""
    return _series(records, MONITOR_NAMES.get)


def training_curves(records: Sequence[Mapping[str, Any]]) -> Series:
    """What the training plot draws: :func:`reward_series`, plus the mean completion length
    and the hack monitors when there are rewards to set them beside (empty when no reward was
    logged)."""
    series = reward_series(records)
    return series | length_series(records) | monitor_series(records) if series else series


def rolling_mean(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def smoothing_window(n_points: int) -> int:
    """Rolling-mean window for a curve of ``n_points``: a tenth of it, 3 to 25 steps."""
    return min(25, max(3, n_points // 10))


def reward_curves_png(series: Series) -> bytes:
    """One panel per reward (then the completion length, the hack monitors, the total last):
    raw per-step means as faint points and their rolling mean (:func:`smoothing_window`) as a
    line; PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not series:
        raise ValueError("no reward series to plot")
    monitors = set(MONITOR_NAMES.values())
    names = sorted(series, key=lambda n: (n == TOTAL, n in monitors, n == LENGTH, n))
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))
    FigureCanvasAgg(fig)
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        steps, values = series[name]
        color = {TOTAL: "C3", LENGTH: "C2"}.get(name, "C1" if name in monitors else "C0")
        window = smoothing_window(len(values))
        ax.plot(steps, values, ".", markersize=4, alpha=0.45, color=color, label="per step")
        ax.plot(steps, rolling_mean(values, window), color=color, label=f"rolling mean ({window})")
        ax.legend(fontsize=7)
        title = {TOTAL: "reward (total)", LENGTH: "mean completion length (tokens)"}
        if name in monitors:
            ax.set_ylim(-0.03, 1.03)
            title[name] = f"{name} (share of completions)"
        ax.set_title(title.get(name, name), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()
