"""Format rewards (SPEC 2.1): full weight when the completion has the reasoning-then-SQL shape.

* soft: ``re.search`` of ``<reasoning>(.*?)</reasoning>\\s*<sql>(.*?)</sql>`` with DOTALL. The
  spec says the completion must *match* the pattern, not that it must consist of it; a model
  that adds a line after ``</sql>`` still produced the format, so text around the block is allowed.
* strict: the whole completion (prefill restored) must be that block, with only whitespace
  before and after, and both sections must hold non-whitespace text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlgrpo.rewards.base import Reward

SOFT_FORMAT = re.compile(r"<reasoning>(.*?)</reasoning>\s*<sql>(.*?)</sql>", re.DOTALL)
"""The spec's pattern; :func:`soft_format_ok` decides the same thing in linear time."""
_JOIN = re.compile(r"</reasoning>\s*<sql>")
_TAGS = ("<reasoning>", "</reasoning>", "<sql>", "</sql>")


def soft_format_ok(text: str) -> bool:
    """Same answer as ``SOFT_FORMAT.search(text) is not None``, in time linear in ``len(text)``.

    A match exists iff some ``</reasoning>\\s*<sql>`` starts after the first ``<reasoning>`` ends
    and some ``</sql>`` follows its ``<sql>``; the backtracking regex can take quadratic time on
    hostile completions that repeat the tags.
    """
    first_open = text.find("<reasoning>")
    if first_open < 0:
        return False
    last_close = text.rfind("</sql>")
    if last_close < 0:
        return False
    join = _JOIN.search(text, first_open + len("<reasoning>"))
    return join is not None and join.end() <= last_close


def strict_format_ok(text: str) -> bool:
    """True when ``text`` is exactly one block with non-blank reasoning and SQL sections.

    Only whitespace may surround the block and sit between ``</reasoning>`` and ``<sql>``;
    each of the four tags appears exactly once.
    """
    body = text.strip()
    if not (body.startswith("<reasoning>") and body.endswith("</sql>")):
        return False
    if any(body.count(tag) != 1 for tag in _TAGS):
        return False
    r_end = body.find("</reasoning>")
    s_start = body.find("<sql>")
    if s_start < r_end or body[r_end + len("</reasoning>") : s_start].strip():
        return False
    reasoning = body[len("<reasoning>") : r_end]
    sql = body[s_start + len("<sql>") : -len("</sql>")]
    return bool(reasoning.strip() and sql.strip())


def runs_on(text: str) -> bool:
    """True when non-whitespace text follows the first ``</sql>``: the completion closed its
    answer and kept writing (the soft format reward's loophole, docs/ablation.md section 8)."""
    end = text.find("</sql>")
    return end >= 0 and bool(text[end + len("</sql>") :].strip())


class FormatReward(Reward):
    """``weight`` when the completion has the format (soft or ``strict``), else 0."""

    default_weight = 1.0

    def __init__(
        self,
        weight: float | None = None,
        prefill: str = "",
        strict: bool = False,
        name: str | None = None,
    ):
        self.strict = bool(strict)
        self.default_name = "strict_format_reward_func" if strict else "soft_format_reward_func"
        super().__init__(weight=weight, prefill=prefill, name=name)

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        """One reward per completion: ``weight`` or 0.0."""
        check = strict_format_ok if self.strict else soft_format_ok
        ok = [check(text) for text in self.texts(completions)]
        self.log(kwargs, {}, {"match_rate": sum(ok) / len(ok) if ok else 0.0})
        return [self.weight if hit else 0.0 for hit in ok]
