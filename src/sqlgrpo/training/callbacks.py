"""Run-folder writers for training: metrics.jsonl, completions.jsonl, reward plots, Ctrl-C.

- ``MetricsJsonlCallback`` appends every logged step (TRL's metrics, per-reward means).
- ``write_completions`` appends sampled completions with their per-reward scores.
- ``GracefulInterrupt`` turns the first Ctrl-C into "save a checkpoint, then stop" at the
  end of the current step; a second Ctrl-C interrupts at once.
- ``plot_reward_curves`` writes ``plots/rewards.png`` (drawn by ``sqlgrpo.evaluation.reward_curves``).
"""

from __future__ import annotations

import json
import logging
import math
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from sqlgrpo.data.jsonl import read_jsonl
from sqlgrpo.evaluation.reward_curves import reward_curves_png, training_curves
from sqlgrpo.rewards.base import completion_text

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
COMPLETIONS_FILE = "completions.jsonl"
REWARD_PLOT = Path("plots") / "rewards.png"


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "item"):
        return _json_value(value.item())
    return str(value)


class MetricsJsonlCallback(TrainerCallback):
    """Append one JSON line per logged step to ``RUN_DIR/metrics.jsonl`` (main process only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping | None = None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": _json_value(state.epoch)}
        record.update({str(k): _json_value(v) for k, v in logs.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def _prompt_text(prompt: Any) -> str:
    """The user turn of a chat prompt (the schema + question), or a text prompt as is."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        users = [m.get("content", "") for m in prompt if isinstance(m, Mapping)]
        user_turns = [
            m.get("content", "")
            for m in prompt
            if isinstance(m, Mapping) and m.get("role") == "user"
        ]
        return str((user_turns or users or [""])[-1])
    return str(prompt)


def write_completions(
    path: str | Path,
    step: int,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    rewards: Mapping[str, Sequence[float]],
    advantages: Sequence[float],
    *,
    prefill: str = "",
    limit: int = 0,
) -> int:
    """Append sampled completions (prefill restored) with per-reward scores; returns rows written.

    ``rewards`` maps each reward name to one score per completion; ``limit`` keeps the first
    N rows (0: all).
    """
    n = len(completions)
    if len(prompts) != n or len(advantages) != n:
        raise ValueError(
            f"completions log misaligned: {len(prompts)} prompts, {n} completions, "
            f"{len(advantages)} advantages"
        )
    for name, scores in rewards.items():
        if len(scores) != n:
            raise ValueError(f"reward {name!r} has {len(scores)} scores for {n} completions")
    count = n if limit <= 0 else min(limit, n)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for i in range(count):
            scores = {name: _json_value(float(values[i])) for name, values in rewards.items()}
            finite = [v for v in scores.values() if v is not None]
            record = {
                "step": step,
                "prompt": _prompt_text(prompts[i]),
                "completion": completion_text(completions[i], prefill),
                "rewards": scores,
                "reward": sum(finite) if finite else None,
                "advantage": _json_value(float(advantages[i])),
            }
            fh.write(json.dumps(record) + "\n")
    return count


class GracefulInterrupt(TrainerCallback):
    """First Ctrl-C: save a checkpoint and stop after the current step. Second: stop now.

    Use as a context manager around ``trainer.train()`` so the previous SIGINT handler
    is restored afterwards. In multi-process runs the stop request is agreed across
    ranks at each step end, so every rank stops at the same step.
    """

    def __init__(self) -> None:
        self.requested = False
        self.stopped_at: int | None = None
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "interrupt received: saving a checkpoint after the current step "
            "(press Ctrl-C again to stop immediately)"
        )

    def __enter__(self) -> GracefulInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _agreed(self) -> bool:
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.requested
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs):
        if self._agreed():
            self.requested = True
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read metrics.jsonl; a malformed line raises naming the file and line."""
    return read_jsonl(path)


def plot_reward_curves(metrics_path: str | Path, out_path: str | Path) -> Path | None:
    """Plot each reward component, the mean completion length, the hack monitors and the total
    over steps to a PNG; None when no reward was logged."""
    series = training_curves(read_metrics(metrics_path))
    if not series:
        logger.warning("%s holds no reward metrics; no plot written", metrics_path)
        return None
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(reward_curves_png(series))
    return out
