"""Reasoning-quality reward (SPEC 2.3): heuristics on the text inside ``<reasoning>``.

``reward = min(1.0, length + sql_terms + structure + steps + schema) * w``; 0 without reasoning
tags. Text is split into lowercased words (runs of letters, digits, ``_`` and ``$``); a term or marker
is one word or two consecutive words, and may appear in a plural form (``tables``, ``indexes``,
``queries``). Schema names are matched the same way; a name that is not a single word (quoted,
with spaces) is found by a case-insensitive search bounded by non-word characters. The term and marker lists are below and in
``docs/rewards.md``.

``gate`` (not in the SPEC; the ``spec_gated``, ``strict_gated`` and ``progress`` profiles) pays
the reasoning reward only to a completion whose SQL runs (``executes``) or whose result matches
the gold's under ``rule`` (``correct``; DML by state with ``state_match``), or scales it by the
execution reward's progress credit (``progress``). It exists because the ungated reward is the
cheapest to game: longer explanations full of SQL words score higher whatever the SQL does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlgrpo.rewards.base import column, text_or_none
from sqlgrpo.rewards.execution import GatedReward
from sqlgrpo.sql.parsing import cached_schema_names, cached_schema_names_from_db, extract_reasoning

logger = logging.getLogger(__name__)

#: Distinct SQL terms counted by the SQL-terms component (0.03 each, at most 0.20).
SQL_TERMS: tuple[str, ...] = (
    "table", "column", "row", "join", "select", "where", "group by", "order by", "having",
    "filter", "aggregate", "count", "sum", "average", "schema", "database", "query", "subquery",
    "condition", "primary key", "foreign key", "distinct", "limit", "sort", "index", "union",
)  # fmt: skip
#: Markers of a first step / of a later step; the steps component needs one of each.
FIRST_STEP_MARKERS: tuple[str, ...] = (
    "first", "firstly", "step 1", "start", "begin", "initial", "initially", "to begin",
)  # fmt: skip
LATER_STEP_MARKERS: tuple[str, ...] = (
    "then", "next", "second", "secondly", "third", "step 2", "after that", "afterwards",
    "subsequently", "finally", "lastly", "last",
)  # fmt: skip


_WORDS = re.compile(r"[\w$]+")


def _surface_forms() -> dict[str, tuple[tuple[str, str], ...]]:
    """Surface form (entry or plural: ``tables``, ``indexes``, ``queries``) -> (list, entry)."""
    forms: dict[str, list[tuple[str, str]]] = {}
    lists = {"term": SQL_TERMS, "first": FIRST_STEP_MARKERS, "later": LATER_STEP_MARKERS}
    for kind, entries in lists.items():
        for entry in entries:
            endings = [entry, entry + "s", entry + "es"]
            if entry.endswith("y"):
                endings.append(entry[:-1] + "ies")
            for form in endings:
                forms.setdefault(form, []).append((kind, entry))
    return {form: tuple(hits) for form, hits in forms.items()}


_FORMS = _surface_forms()
#: First words of the two-word entries (only these start a two-word lookup).
_HEADS = frozenset(form.split()[0] for form in _FORMS if " " in form)


def _vocabulary(words: list[str], word_set: set[str]) -> dict[str, set[str]]:
    """Distinct SQL terms, first-step markers and later-step markers found in ``words``."""
    found: dict[str, set[str]] = {"term": set(), "first": set(), "later": set()}
    forms = [w for w in word_set if w in _FORMS]
    if not word_set.isdisjoint(_HEADS):
        last = len(words) - 1
        forms += [f"{w} {words[i + 1]}" for i, w in enumerate(words) if w in _HEADS and i < last]
    for form in forms:
        for kind, entry in _FORMS.get(form, ()):
            found[kind].add(entry)
    return found


@dataclass(frozen=True)
class ReasoningComponents:
    """The five SPEC 2.3 components of one reasoning text (unweighted)."""

    length: float
    sql_terms: float
    structure: float
    steps: float
    schema: float

    def total(self) -> float:
        """``min(1.0, sum of components)``."""
        return min(1.0, self.length + self.sql_terms + self.structure + self.steps + self.schema)


def _names_mentioned(text: str, words: set[str], names: frozenset[str]) -> int:
    """How many distinct ``names`` occur in ``text`` (whose lowercased ``words`` are given)."""
    if not names:
        return 0
    lowered = text.lower()
    count = 0
    for name in names:
        if _WORDS.fullmatch(name):
            count += name in words
        elif re.search(r"(?<![\w$])" + re.escape(name) + r"(?![\w$])", lowered):
            count += 1
    return count


def reasoning_components(
    reasoning: str, schema_names: frozenset[str] = frozenset()
) -> ReasoningComponents:
    """Score ``reasoning`` (the text inside the tags) against SPEC 2.3's five components."""
    n_words = len(reasoning.split())
    length = 0.20 if n_words >= 50 else 0.15 if n_words >= 25 else 0.10 if n_words >= 10 else 0.0
    words = _WORDS.findall(reasoning.lower())
    word_set = set(words)
    found = _vocabulary(words, word_set)
    lines = sum(1 for line in reasoning.splitlines() if line.strip())
    structure = 0.15 if lines >= 3 else 0.10 if lines >= 2 else 0.0
    steps = 0.15 if found["first"] and found["later"] else 0.0
    return ReasoningComponents(
        length=length,
        sql_terms=min(0.20, 0.03 * len(found["term"])),
        structure=structure,
        steps=steps,
        schema=min(0.30, 0.05 * _names_mentioned(reasoning, word_set, schema_names)),
    )


class ReasoningReward(GatedReward):
    """``min(1, sum(components)) * w`` on the ``<reasoning>`` text; 0 when there is none.

    Schema names come from the row's ``sql_context`` (CREATE TABLE/VIEW statements), else
    from its ``db_path`` SQLite file (read-only); a row with neither scores 0 on that component.
    With a ``gate`` other than ``none`` the completion's SQL is checked against the row's
    gold ``sql`` (``rule``, ``state_match`` and ``limits`` as for the execution reward) and
    the reward is 0 unless the gate passes (``progress``: multiplied by the progress credit);
    a row without gold SQL never passes (:class:`GatedReward`).
    """

    default_name = "reasoning_quality_reward"
    default_weight = 0.7

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        """One reward per completion."""
        n = len(completions)
        contexts, db_paths = column(kwargs, "sql_context", n), column(kwargs, "db_path", n)
        factors = self.gate_factors(completions, kwargs)
        rewards, totals = [], []
        rows = zip(self.texts(completions), contexts, db_paths, factors, strict=True)
        for text, context, db_path, factor in rows:
            reasoning = extract_reasoning(text)
            if not reasoning:
                rewards.append(0.0)
                continue
            total = reasoning_components(reasoning, self._names(context, db_path)).total()
            totals.append(total)
            rewards.append(total * self.weight * factor)
        metrics = {"with_reasoning_rate": len(totals) / n} if n else {}
        self.log(kwargs, {}, metrics | self.gate_metrics(factors))
        return rewards

    def _names(self, context: Any, db_path: Any) -> frozenset[str]:
        """Schema names for one row (empty when unavailable; a bad db_path is logged)."""
        context = text_or_none(context)
        if context is not None:
            return cached_schema_names(context)
        path = text_or_none(db_path)
        if path is None:
            return frozenset()
        try:
            return cached_schema_names_from_db(path)
        except Exception as exc:  # unreadable database: the schema component scores 0
            warned = self.__dict__.setdefault("_warned_paths", set())
            if path not in warned:
                warned.add(path)
                logger.warning("%s: cannot read schema names from %s: %s", self.__name__, path, exc)
            return frozenset()
