"""Plumbing shared by every reward: completion text, prefill, weight, name and dataset columns.

A reward is a picklable callable object ``f(prompts, completions, **kwargs) -> list[float]``
usable directly as a TRL ``GRPOTrainer`` reward function. TRL passes every dataset column as a
keyword list (one entry per completion) plus ``trainer_state``, ``log_extra``, ``log_metric``
and ``completion_ids``; rewards read the columns they need and ignore the rest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)


def completion_text(completion: Any, prefill: str = "") -> str:
    """Plain text of a completion, with ``prefill`` put back in front.

    Accepts a string, or a chat-message list (``[{"role": "assistant", "content": ...}]``;
    content may be a string or a list of ``{"type": "text", "text": ...}`` parts): the
    contents of all messages are concatenated. ``prefill`` is the text the prompt had already
    put in the assistant turn (e.g. ``"<reasoning>\\n"``), which the model did not generate.
    """
    if completion is None:
        text = ""
    elif isinstance(completion, str):
        text = completion
    elif isinstance(completion, dict):
        text = _content_text(completion.get("content"))
    elif isinstance(completion, Sequence):
        text = "".join(
            _content_text(m.get("content")) if isinstance(m, dict) else _content_text(m)
            for m in completion
        )
    else:
        text = str(completion)
    return prefill + text if prefill else text


def _content_text(content: Any) -> str:
    """Text of one message's content (string or list of typed parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


def column(kwargs: dict[str, Any], name: str, n: int) -> list[Any]:
    """Per-completion values of dataset column ``name``; ``[None] * n`` when it is absent.

    Raises ``ValueError`` when the column's length differs from the number of completions.
    """
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(
            f"reward column {name!r} must be a list with one entry per completion, "
            f"got {type(values).__name__}"
        )
    if len(values) != n:
        raise ValueError(f"reward column {name!r} has {len(values)} entries for {n} completions")
    return list(values)


def text_or_none(value: Any) -> str | None:
    """``value`` as a non-blank string, or None (None, NaN, blank strings)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text.strip() else None


class Reward:
    """Base class: holds ``weight``, ``prefill`` and the stable ``__name__`` TRL logs under."""

    default_name = "reward"
    default_weight = 1.0

    def __init__(self, weight: float | None = None, prefill: str = "", name: str | None = None):
        self.weight = float(self.default_weight if weight is None else weight)
        if not math.isfinite(self.weight):
            raise ValueError(f"{type(self).__name__}: weight must be finite, got {weight!r}")
        self.prefill = prefill or ""
        self.__name__ = name or self.default_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r}, weight={self.weight})"

    def texts(self, completions: Sequence[Any]) -> list[str]:
        """Completion texts with the prefill restored."""
        return [completion_text(c, self.prefill) for c in completions]

    def log(
        self, kwargs: dict[str, Any], extras: dict[str, list], metrics: dict[str, float]
    ) -> None:
        """Send per-completion columns and batch metrics to TRL's ``log_extra`` / ``log_metric``.

        Names are prefixed with this reward's ``__name__``; missing callables are a no-op, and
        a failing logger is reported once here rather than breaking training.
        """
        log_extra: Callable[[str, list], None] | None = kwargs.get("log_extra")
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        try:
            if callable(log_extra):
                for key, values in extras.items():
                    log_extra(f"{self.__name__}/{key}", values)
            if callable(log_metric):
                for key, value in metrics.items():
                    log_metric(f"{self.__name__}/{key}", float(value))
        except Exception:  # logging must never break reward computation
            logger.exception("%s: log_extra/log_metric failed", self.__name__)
