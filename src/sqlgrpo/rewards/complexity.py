"""Complexity reward (SPEC 2.2): keep the generated SQL about as complex as the gold SQL.

``gate`` (not in the SPEC; the ``progress`` profile) ties it to the execution check as the
reasoning reward's gate does (:class:`~sqlgrpo.rewards.execution.GatedReward`): with
``progress`` it is multiplied by the progress credit, so GROUP BY padding that brings the
complexity near the gold's earns nothing unless the rows do too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlgrpo.rewards.base import column, text_or_none
from sqlgrpo.rewards.execution import GatedReward
from sqlgrpo.sql.complexity import sql_complexity
from sqlgrpo.sql.parsing import extract_sql

NO_GOLD_BAND = (1.5, 8.0)
NO_GOLD_IN_BAND = 0.4
NO_GOLD_OUT_OF_BAND = 0.1
RATIO_CLAMP = (0.001, 1000.0)


def complexity_score(generated: float, gold: float | None) -> float:
    """Unweighted SPEC 2.2 score from two complexity values (``gold`` None: no gold SQL)."""
    if gold is None:
        low, high = NO_GOLD_BAND
        return NO_GOLD_IN_BAND if low <= generated <= high else NO_GOLD_OUT_OF_BAND
    ratio = min(max(generated / gold, RATIO_CLAMP[0]), RATIO_CLAMP[1])
    return math.exp(-0.5 * math.log(ratio) ** 2)


class ComplexityReward(GatedReward):
    """``exp(-0.5 ln(c_gen / c_gold)^2) * w``; without gold, ``0.4w`` in band else ``0.1w``.

    The SQL comes from the ``<sql>`` tags (:func:`extract_sql`); none extracted scores 0.
    The gold is the ``sql`` column (absent, or None for a row: the no-gold branch). With a
    ``gate`` the score is multiplied by the gate's factor (:meth:`GatedReward.gate_factors`).
    """

    default_name = "complexity_reward"
    default_weight = 0.6

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        """One reward per completion."""
        golds = column(kwargs, "sql", len(completions))
        factors = self.gate_factors(completions, kwargs)
        rewards, generated = [], []
        for text, gold, factor in zip(self.texts(completions), golds, factors, strict=True):
            sql = extract_sql(text)
            if sql is None:
                rewards.append(0.0)
                continue
            c_gen = sql_complexity(sql)
            generated.append(c_gen)
            gold_sql = text_or_none(gold)
            c_gold = sql_complexity(gold_sql) if gold_sql is not None else None
            rewards.append(complexity_score(c_gen, c_gold) * self.weight * factor)
        metrics = {"no_sql_rate": 1 - len(generated) / len(rewards)} if rewards else {}
        if generated:
            metrics["mean_generated_complexity"] = sum(generated) / len(generated)
        self.log(kwargs, {}, metrics | self.gate_metrics(factors))
        return rewards
