"""Execution reward (SPEC 2.4): run the generated and the gold SQL in the sandbox and compare.

Per completion, with ``w`` the weight and ``base = 0.1`` when the prediction's statement type
equals the gold's (else 0); all values below are fractions of ``w``:

* no SQL in ``<sql>`` tags, no gold, or a gold that fails to run: 0
* the prediction fails: ``ERROR_CREDIT[error_class]`` (0 .. 0.2; no base, so a syntax error is 0)
* SELECT gold, SELECT prediction that runs: 1 on a match under ``rule``, else
  ``max(base + 0.3, 0.5 * similarity)``
* DML gold (INSERT / UPDATE / DELETE / REPLACE), DML prediction that runs: ``base + 0.5``
  (``base + 0.4`` when it ran only after fixing table-name case). With ``state_match``: 1 when
  the resulting database equals the gold's (0.8 after a case fix), else ``base + 0.3``.
* any other pairing that runs (an UPDATE for a SELECT question, a SELECT for a DML one, DDL):
  1 on a match, else ``base`` (the run credits above are for answering in the gold's kind)
* ``strict``: 1 for a match under ``rule`` (DML by state) in a completion that passes the strict
  format check, else 0: no credit for merely running.
* ``progress``: in a completion that passes the strict format check, 1 for a match under
  ``rule`` (DML by state; 0.8 after a case fix), else, for a query answering a query gold,
  ``0.5 * similarity`` when the result has the gold's column names and its rows overlap the
  gold's, unless the query takes a measured shortcut (:mod:`sqlgrpo.sql.shape`: a bare SELECT
  or a GROUP BY on a key column); 0 for everything else: no credit for running, for the
  statement type, or for an error.

A gate (:class:`GatedReward`) lets another reward read this check: paid only when the SQL runs
(``executes``), only when it is correct (``correct``), or scaled by the progress credit
(``progress``). In a profile every check shares one checker, and in training one batch's
outcomes, so each completion's SQL runs once.

``engine`` runs both statements on another engine than SQLite (``duckdb``, or ``postgres`` with
``engine_url``): each sample's database is copied into it once and the gold, written for
SQLite, is transpiled with sqlglot (:mod:`sqlgrpo.sql.engines.cache`).

Never raises on model output; an unexpected failure of the checker scores 0 and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, get_args

from sqlgrpo.rewards.base import Reward, column, text_or_none
from sqlgrpo.rewards.format import strict_format_ok
from sqlgrpo.sql.compare import COMPARE_RULES, same_columns
from sqlgrpo.sql.engines.base import ENGINE_NAMES
from sqlgrpo.sql.errors import ERROR_CREDIT, ErrorClass
from sqlgrpo.sql.parsing import extract_sql, primary_keys_of
from sqlgrpo.sql.sandbox import SandboxLimits
from sqlgrpo.sql.shape import find_shortcuts
from sqlgrpo.sql.statements import DML_TYPES, QUERY_TYPES

logger = logging.getLogger(__name__)

TYPE_MATCH_CREDIT = 0.1
SELECT_RAN_CREDIT = 0.3
SELECT_SIMILARITY_SCALE = 0.5
DML_RAN_CREDIT = 0.5
DML_CASE_FIXED_CREDIT = 0.4
STATE_MATCH_CASE_FIXED = 0.8
#: Match kinds reported per completion (``log_extra`` column ``match_kind``).
MATCH_KINDS = (
    "exact", "state_match", "partial", "ran", "wrong_state", "error", "no_sql", "no_gold",
    "gold_error", "format_gate", "no_match", "wrong_kind", "shortcut", "internal_error",
)  # fmt: skip
#: Kinds whose prediction ran (in the sandbox, to completion).
RAN_KINDS = (
    "exact", "state_match", "partial", "ran", "wrong_state", "no_match", "wrong_kind", "shortcut",
)  # fmt: skip
#: Kinds whose prediction is correct under the comparison rule (DML by state with state_match).
CORRECT_KINDS = ("exact", "state_match")


def execution_score(
    outcome: Any, *, state_match: bool = False, strict: bool = False
) -> tuple[float, str]:
    """Unweighted SPEC 2.4 credit for one :class:`ExecutionOutcome`, and its match kind."""
    if outcome.pred is None:
        return 0.0, "no_sql"
    if outcome.gold_kind == "gold_error":
        return 0.0, "gold_error"
    if strict:
        if outcome.match:
            return 1.0, "exact"
        return 0.0, "no_match" if outcome.executed else "error"
    if not outcome.executed:
        error_class = outcome.error_class or ErrorClass.OTHER
        return ERROR_CREDIT.get(error_class, 0.0), "error"
    base = TYPE_MATCH_CREDIT if outcome.statement_type_match else 0.0
    pred_type = outcome.pred.statement_type
    if pred_type in QUERY_TYPES and outcome.gold_kind in ("select_rows", "select_empty"):
        if outcome.match:
            return 1.0, "exact"
        ran = base + SELECT_RAN_CREDIT
        partial = SELECT_SIMILARITY_SCALE * outcome.similarity
        return (partial, "partial") if partial > ran else (ran, "ran")
    if pred_type in DML_TYPES and outcome.gold_kind == "dml":
        case_fixed = bool(outcome.pred.case_fixed)
        if state_match:
            if outcome.match:
                return (STATE_MATCH_CASE_FIXED if case_fixed else 1.0), "state_match"
            return base + SELECT_RAN_CREDIT, "wrong_state"
        return base + (DML_CASE_FIXED_CREDIT if case_fixed else DML_RAN_CREDIT), "ran"
    if outcome.match:
        return 1.0, "exact"
    return base, "wrong_kind"


def progress_score(outcome: Any, shortcut: bool = False) -> tuple[float, str]:
    """Unweighted progress credit for one :class:`ExecutionOutcome` (whose completion passed the
    strict format check), and its match kind. ``shortcut``: the prediction takes a measured
    shortcut against its gold (:func:`sqlgrpo.sql.shape.find_shortcuts`)."""
    if outcome.pred is None:
        return 0.0, "no_sql"
    if outcome.gold_kind == "gold_error":
        return 0.0, "gold_error"
    if not outcome.executed:
        return 0.0, "error"
    if outcome.match:
        if outcome.gold_kind == "dml":
            fixed = bool(outcome.pred.case_fixed)
            return (STATE_MATCH_CASE_FIXED if fixed else 1.0), "state_match"
        return 1.0, "exact"
    overlaps = (
        outcome.gold_kind in ("select_rows", "select_empty")
        and outcome.pred.statement_type in QUERY_TYPES
        and same_columns(outcome.gold, outcome.pred)
        and outcome.similarity > 0
    )
    if not overlaps:
        return 0.0, "no_match"
    if shortcut:
        return 0.0, "shortcut"
    return SELECT_SIMILARITY_SCALE * outcome.similarity, "partial"


class ExecutionReward(Reward):
    """SPEC 2.4 execution reward over an :class:`ExecutionChecker` (one per reward object).

    ``rule`` is the result comparison rule (seed, spider or bird); ``state_match`` credits
    DML by the database state it leaves; ``strict`` gives credit only for a correct result
    and gates on the strict format; ``progress`` gates on the strict format and gives credit
    for a correct result or for overlapping rows under the gold's columns
    (:func:`progress_score`); ``limits`` are the sandbox limits. The checker (with its
    database and gold-result caches) is built on first use and dropped when pickled.
    """

    default_name = "execute_query_reward_func"
    default_weight = 1.2

    def __init__(
        self,
        weight: float | None = None,
        prefill: str = "",
        rule: str = "seed",
        state_match: bool = False,
        strict: bool = False,
        limits: SandboxLimits | None = None,
        name: str | None = None,
        engine: str = "sqlite",
        engine_url: str | None = None,
        progress: bool = False,
    ):
        if engine not in ENGINE_NAMES:
            raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINE_NAMES)}")
        if engine == "postgres" and not engine_url:
            raise ValueError("engine='postgres' needs engine_url, a database to load samples into")
        if rule not in COMPARE_RULES:
            raise ValueError(
                f"unknown comparison rule {rule!r}; choose from {', '.join(COMPARE_RULES)}"
            )
        if strict and progress:
            raise ValueError("execution reward: choose strict or progress credit, not both")
        super().__init__(weight=weight, prefill=prefill, name=name)
        self.rule = rule
        self.state_match = bool(state_match)
        self.strict = bool(strict)
        self.progress = bool(progress)
        self.limits = limits if limits is not None else SandboxLimits()
        self.engine = engine
        self.engine_url = engine_url
        self._checker = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_checker"] = None
        return state

    def prestart(self) -> None:
        """Start the sandbox's worker processes now (SQLite), so the first scoring call does
        not wait about 70 ms for them; a trainer calls it while the model loads."""
        if self.engine == "sqlite":
            from sqlgrpo.sql.worker import prestart

            prestart(self.limits)

    @property
    def checker(self) -> Any:
        """The :class:`ExecutionChecker` (built lazily, cached gold results and databases)."""
        if self._checker is None:
            from sqlgrpo.sql.execution import ExecutionChecker

            self._checker = ExecutionChecker.on_engine(
                self.engine, url=self.engine_url, rule=self.rule, limits=self.limits
            )
        return self._checker

    @checker.setter
    def checker(self, checker: Any) -> None:
        """Share another component's checker (and its caches); its rule and limits apply."""
        self._checker = checker
        self.rule, self.limits = checker.rule, checker.limits

    @property
    def format_gated(self) -> bool:
        """True when a completion failing the strict format check earns 0 (strict, progress)."""
        return self.strict or self.progress

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        """One reward per completion; requires the ``sql`` (gold) column."""
        scores = self.score(completions, kwargs)
        n = len(scores)
        rewards = [credit * self.weight for credit, _, _, _ in scores]
        kinds = [kind for _, kind, _, _ in scores]
        metrics = {}
        if n:
            reported = ("exact", "state_match", "error", "no_sql", "gold_error")
            if self.progress:
                reported += ("partial", "shortcut")
            metrics = {f"{kind}_rate": kinds.count(kind) / n for kind in reported}
        extras = {
            "statement_type": [pred_type for _, _, pred_type, _ in scores],
            "error_class": [error for _, _, _, error in scores],
            "match_kind": kinds,
        }
        self.log(kwargs, extras, metrics)
        return rewards

    def score(
        self, completions: Sequence[Any], kwargs: dict[str, Any]
    ) -> list[tuple[float, str, str, str]]:
        """(unweighted credit, match kind, predicted statement type, error class) per
        completion, from the reward kwargs' ``sql`` / ``sql_context`` / ``db_path`` columns."""
        n = len(completions)
        if "sql" not in kwargs:
            raise ValueError(
                f"{self.__name__} needs the gold SQL column 'sql' among the reward kwargs"
            )
        golds = column(kwargs, "sql", n)
        contexts, db_paths = column(kwargs, "sql_context", n), column(kwargs, "db_path", n)
        memo: dict[tuple, tuple[float, str, str, str]] = {}
        rows = list(zip(self.texts(completions), golds, contexts, db_paths, strict=True))
        self._prefetch(rows)
        try:
            return [self._score_one(text, gold, ctx, path, memo) for text, gold, ctx, path in rows]
        finally:
            if self._checker is not None:
                self._checker.clear_prefetched()

    def _prefetch(self, rows: list[tuple[str, Any, Any, Any]]) -> None:
        """Send the batch's distinct predictions to the sandbox at once (pipelined); the
        checks in :meth:`_score_one` then find their results ready."""
        items = {}
        for text, gold, context, db_path in rows:
            gold_sql = text_or_none(gold)
            pred_sql = extract_sql(text) if gold_sql is not None else None
            if pred_sql is None or (self.format_gated and not strict_format_ok(text)):
                continue
            key = (pred_sql, gold_sql, text_or_none(context), text_or_none(db_path))
            items[key] = None
        if len(items) > 1:
            try:
                self.checker.prefetch(list(items))
            except Exception:  # noqa: BLE001 - each check then runs on its own
                logger.exception("%s: batched execution failed", self.__name__)

    def _score_one(
        self, text: str, gold: Any, context: Any, db_path: Any, memo: dict[tuple, Any]
    ) -> tuple[float, str, str, str]:
        """(credit fraction, match kind, predicted statement type, error class) for one row.

        ``memo`` holds this call's results: a group's identical predictions for one sample run
        once (every prediction runs on a pristine copy, so the result cannot differ).
        """
        gold_sql = text_or_none(gold)
        if gold_sql is None:
            return 0.0, "no_gold", "", ""
        pred_sql = extract_sql(text)
        if pred_sql is None:
            return 0.0, "no_sql", "", ""
        if self.format_gated and not strict_format_ok(text):
            return 0.0, "format_gate", "", ""
        key = (pred_sql, gold_sql, text_or_none(context), text_or_none(db_path))
        if key in memo:
            return memo[key]
        memo[key] = result = self._check(pred_sql, gold_sql, key[2], key[3])
        return result

    def _check(
        self, pred_sql: str, gold_sql: str, context: str | None, db_path: str | None
    ) -> tuple[float, str, str, str]:
        """Run one prediction through the checker and score it."""
        try:
            outcome = self.checker.check(pred_sql, gold_sql, sql_context=context, db_path=db_path)
            if self.progress:
                keys = primary_keys_of(context, db_path)
                shortcut = find_shortcuts(pred_sql, gold_sql, keys).any
                credit, kind = progress_score(outcome, shortcut)
            else:
                credit, kind = execution_score(
                    outcome, state_match=self.state_match, strict=self.strict
                )
        except Exception:  # the sandbox should never raise; if it does, score 0 and go on
            logger.exception("%s: execution check failed", self.__name__)
            return 0.0, "internal_error", "", ""
        pred_type = outcome.pred.statement_type if outcome.pred is not None else ""
        error = outcome.error_class.value if outcome.error_class is not None else ""
        return credit, kind, pred_type, error


#: How a gated reward reads the execution check: not at all (``none``), paid only when the SQL
#: runs (``executes``) or is correct (``correct``), or scaled by the progress credit (``progress``).
ExecutionGate = Literal["none", "executes", "correct", "progress"]
EXECUTION_GATES: tuple[str, ...] = get_args(ExecutionGate)


class GatedReward(Reward):
    """A reward whose payout a ``gate`` ties to the completion's execution check.

    The gate's check is an :class:`ExecutionReward` (``rule``, ``state_match`` and ``limits`` as
    for the execution reward; progress credit for the ``progress`` gate) exposed as
    :attr:`execution`, so a profile shares one checker among all checks and the trainer one
    batch's outcomes. A row without gold SQL never passes a gate.
    """

    def __init__(
        self,
        weight: float | None = None,
        prefill: str = "",
        gate: ExecutionGate = "none",
        rule: str = "seed",
        state_match: bool = False,
        limits: SandboxLimits | None = None,
        name: str | None = None,
    ):
        if gate not in EXECUTION_GATES:
            raise ValueError(
                f"{type(self).__name__}: unknown gate {gate!r}; "
                f"choose from {', '.join(EXECUTION_GATES)}"
            )
        super().__init__(weight=weight, prefill=prefill, name=name)
        self.gate = gate
        self._execution = None
        if gate != "none":
            self._execution = ExecutionReward(
                weight=1.0,
                prefill=prefill,
                rule=rule,
                state_match=state_match,
                limits=limits,
                progress=gate == "progress",
            )

    @property
    def execution(self) -> ExecutionReward | None:
        """The execution check the gate reads (None without a gate)."""
        return self._execution

    def gate_factors(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> list[float]:
        """Per completion, the fraction of this reward that is paid: 1 without a gate; 1 or 0
        for ``executes`` / ``correct``; the progress credit (0 .. 1) for ``progress``."""
        if self._execution is None:
            return [1.0] * len(completions)
        if "sql" not in kwargs:
            raise ValueError(
                f"{self.__name__} with gate {self.gate!r} needs the gold SQL column 'sql'"
            )
        scores = self._execution.score(completions, kwargs)
        if self.gate == "progress":
            return [credit for credit, _, _, _ in scores]
        kinds = RAN_KINDS if self.gate == "executes" else CORRECT_KINDS
        return [1.0 if kind in kinds else 0.0 for _, kind, _, _ in scores]

    def gate_metrics(self, factors: list[float]) -> dict[str, float]:
        """``gate_pass_rate`` (share paid anything) and, for ``progress``, ``gate_mean_factor``."""
        if self._execution is None or not factors:
            return {}
        metrics = {"gate_pass_rate": sum(f > 0 for f in factors) / len(factors)}
        if self.gate == "progress":
            metrics["gate_mean_factor"] = sum(factors) / len(factors)
        return metrics
