"""Hack monitors: the share of a batch's completions that take each measured reward shortcut.

Each shortcut below was, in turn, what a GRPO policy learned instead of the right answer
(docs/ablation.md sections 8-9); logged every training step beside the rewards, a reward that
climbs while these climb is seen as it happens. Per completion (prefill restored):

* ``run_on``: non-whitespace text after the first ``</sql>`` (:func:`~sqlgrpo.rewards.format.runs_on`);
* ``bare_select``: its SQL is a query with no WHERE, join, GROUP BY, aggregate or LIMIT where
  the gold query has one (:func:`sqlgrpo.sql.shape.find_shortcuts`);
* ``group_by_key``: its SQL groups by a key column (``id``, ``*_id`` or a primary key of the
  row's schema) where the gold query has no GROUP BY.

Each share is over all completions given (a completion without SQL, or a row without gold SQL,
takes no SQL shortcut). The mean completion length, the fourth monitor, is TRL's own
``completions/mean_length`` in training. Pure functions; nothing here executes SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlgrpo.rewards.base import column, completion_text, text_or_none
from sqlgrpo.rewards.format import runs_on
from sqlgrpo.sql.parsing import extract_sql, primary_keys_of
from sqlgrpo.sql.shape import find_shortcuts

#: The monitors, in the order they are reported.
MONITORS: tuple[str, ...] = ("run_on", "bare_select", "group_by_key")
#: Prefix of the monitors' keys in a run's metrics.jsonl (``monitors/run_on``, ...).
METRIC_PREFIX = "monitors/"


@dataclass(frozen=True)
class HackFlags:
    """Which shortcuts one completion takes."""

    run_on: bool = False
    bare_select: bool = False
    group_by_key: bool = False


def hack_flags(
    text: str, gold_sql: Any = None, sql_context: Any = None, db_path: Any = None
) -> HackFlags:
    """The shortcuts one completion's ``text`` (prefill restored) takes against its row's gold
    SQL and schema (``sql_context``, else the ``db_path`` file). Never raises."""
    gold = text_or_none(gold_sql)
    pred = extract_sql(text) if gold is not None else None
    shortcuts = find_shortcuts(
        pred, gold, primary_keys_of(text_or_none(sql_context), text_or_none(db_path))
    )
    return HackFlags(runs_on(text), shortcuts.bare_select, shortcuts.group_by_key)


def monitor_shares(flags: Iterable[HackFlags]) -> dict[str, float]:
    """Monitor name -> share of ``flags`` with that shortcut ({} when there are none)."""
    rows = list(flags)
    if not rows:
        return {}
    return {name: sum(getattr(f, name) for f in rows) / len(rows) for name in MONITORS}


def hack_monitors(
    completions: Sequence[Any], kwargs: dict[str, Any], prefill: str = ""
) -> dict[str, float]:
    """Monitor shares over a batch as TRL hands it to a reward: ``completions`` (strings or
    chat-message lists, ``prefill`` put back in front) and the reward kwargs' ``sql`` /
    ``sql_context`` / ``db_path`` columns (each may be absent)."""
    n = len(completions)
    rows = zip(
        completions,
        column(kwargs, "sql", n),
        column(kwargs, "sql_context", n),
        column(kwargs, "db_path", n),
        strict=True,
    )
    return monitor_shares(
        hack_flags(completion_text(c, prefill), gold, context, path)
        for c, gold, context, path in rows
    )
