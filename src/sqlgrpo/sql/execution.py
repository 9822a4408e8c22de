"""Gold-versus-prediction execution checks, with the gold result cached.

:class:`ExecutionChecker` runs the gold statement once per (database, gold SQL)
(bounded LRU, so GRPO's G completions per prompt and later steps reuse it) and
each prediction on its own pristine copy; by default the databases live in a
worker process killed at the deadline (:mod:`sqlgrpo.sql.worker`,
``SandboxLimits.isolation``). :meth:`ExecutionChecker.check_many` runs a
batch's predictions at once (the isolated ones on a pool of workers, pipelined) under
one deadline for the whole batch. SELECT golds are compared with a
named rule (:mod:`sqlgrpo.sql.compare`); every other gold (INSERT, UPDATE,
DELETE, ...) is judged by the state of every table after the statement.

Under the ``spider_official`` rule both statements are first rewritten as the
official Spider evaluator rewrites them (:mod:`sqlgrpo.sql.spider_official`).
With ``test_suite=True`` a prediction on a database file must match the gold on
every ``*.sqlite`` file in that file's folder (the test-suite distilled layout,
``database/<db_id>/<db_id>*.sqlite``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlgrpo.sql import spider_official
from sqlgrpo.sql.compare import COMPARE_RULES, compare_results, states_match
from sqlgrpo.sql.database import Database, DatabaseCache
from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.sandbox import (
    BATCH_DEADLINE_NOT_RUN,
    DEFAULT_LIMITS,
    ExecResult,
    SandboxLimits,
    failure,
)
from sqlgrpo.sql.statements import QUERY_TYPES, has_order_by, statement_type

logger = logging.getLogger(__name__)

GOLD_KINDS = ("select_rows", "select_empty", "dml", "other", "gold_error")


@dataclass
class ExecutionOutcome:
    """Everything a reward or an evaluation needs about one prediction."""

    pred_sql: str | None
    gold: ExecResult
    pred: ExecResult | None  # None when no SQL could be extracted
    gold_kind: str  # one of GOLD_KINDS
    statement_type_match: bool
    executed: bool  # prediction ran without error
    match: bool  # correct under the rule (non-SELECT gold: state match)
    similarity: float  # 0..1, set Jaccard of rows for SELECT (seed rule)
    error_class: ErrorClass | None  # the prediction's, when it failed
    rule: str = "seed"
    order_matters: bool = False
    databases_checked: int = 1  # > 1 under test_suite on a folder of databases

    def to_dict(self) -> dict:
        """JSON-safe diagnostics: types, kinds, counts and errors, never rows."""
        pred = self.pred
        return {
            "rule": self.rule,
            "gold_kind": self.gold_kind,
            "gold_type": self.gold.statement_type,
            "gold_ok": self.gold.ok,
            "gold_rows": len(self.gold.rows),
            "gold_error": self.gold.error_message,
            "pred_type": pred.statement_type if pred is not None else None,
            "pred_rows": len(pred.rows) if pred is not None else None,
            "pred_truncated": pred.truncated if pred is not None else None,
            "case_fixed": pred.case_fixed if pred is not None else False,
            "statement_type_match": self.statement_type_match,
            "executed": self.executed,
            "match": self.match,
            "similarity": round(self.similarity, 6),
            "order_matters": self.order_matters,
            "databases_checked": self.databases_checked,
            "error_class": self.error_class.value if self.error_class is not None else None,
            "error_message": pred.error_message if pred is not None else None,
            "pred_elapsed_s": round(pred.elapsed_s, 6) if pred is not None else None,
        }


def gold_kind(gold: ExecResult) -> str:
    """Classify a gold result: select_rows, select_empty, dml, other or gold_error."""
    if not gold.ok:
        return "gold_error"
    if gold.statement_type in QUERY_TYPES:
        return "select_rows" if gold.rows else "select_empty"
    if gold.state is not None and gold.statement_type in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
        return "dml"
    return "other"


class ExecutionChecker:
    """Run gold and predicted SQL in the sandbox and compare them."""

    def __init__(
        self,
        rule: str = "seed",
        limits: SandboxLimits = DEFAULT_LIMITS,
        cache: DatabaseCache | None = None,
        max_gold_entries: int = 4096,
        test_suite: bool = False,
    ) -> None:
        if rule not in COMPARE_RULES:
            raise ValueError(f"unknown comparison rule {rule!r}; choose one of {COMPARE_RULES}")
        self.rule = rule
        self.test_suite = test_suite
        self.limits = limits
        self.cache = cache if cache is not None else DatabaseCache(limits)
        self.max_gold_entries = max_gold_entries
        self._gold: OrderedDict[tuple[str, str], tuple[ExecResult, bool]] = OrderedDict()
        self._lock = threading.Lock()
        # Prediction results run ahead by check_many: (database key, sql, capture) -> result.
        self._prefetched: dict[tuple[str, str, bool], ExecResult] = {}
        # Outcomes kept inside remember_outcomes(): (pred, gold, context, db_path) -> outcome.
        self._outcomes: dict[tuple, ExecutionOutcome] | None = None

    @classmethod
    def on_engine(
        cls,
        engine: str = "sqlite",
        *,
        url: str | None = None,
        rule: str = "seed",
        limits: SandboxLimits = DEFAULT_LIMITS,
        test_suite: bool = False,
    ) -> ExecutionChecker:
        """A checker whose statements run on ``engine``: SQLite's sandbox, or copies of each
        sample's database in DuckDB / PostgreSQL (``url``: the database they load into)."""
        cache = None
        if engine != "sqlite":
            from sqlgrpo.sql.engines.cache import EngineCache

            cache = EngineCache(engine, limits, url=url)
        return cls(rule=rule, limits=limits, cache=cache, test_suite=test_suite)

    @contextmanager
    def remember_outcomes(self) -> Iterator[None]:
        """Inside this block :meth:`check` answers a repeated ``(pred, gold, context, db)``
        with the outcome it already computed, so two consumers of one batch (an evaluation's
        record and its execution reward) run each prediction once. Every prediction runs on a
        pristine copy, so the repeat could only give the same outcome."""
        outer = self._outcomes
        if outer is None:
            self._outcomes = {}
        try:
            yield
        finally:
            if outer is None:
                self._outcomes = None

    def database(self, *, sql_context: str | None = None, db_path: str | None = None) -> Any:
        """The cached database for a context or a file (raises on a bad path)."""
        return self.cache.get(sql_context=sql_context, db_path=db_path)

    def gold_result(
        self, gold_sql: str, *, sql_context: str | None = None, db_path: str | None = None
    ) -> ExecResult:
        """The gold statement's result, run once per (database, SQL); never raises.

        Non-SELECT golds run with ``capture_state=True``. Gold SQL is a trusted
        script: stacked statements run in order and the last result counts. A
        database that cannot be opened or built gives a failed result naming
        the problem.
        """
        return self._gold_entry(gold_sql, sql_context, db_path)[1]

    def _gold_entry(
        self, gold_sql: str, sql_context: str | None, db_path: str | None
    ) -> tuple[Any, ExecResult, bool]:
        """(database, gold result, gold orders its rows), the last two cached."""
        try:
            database = self.database(sql_context=sql_context, db_path=db_path)
        except Exception as exc:  # noqa: BLE001 - reported as a gold error
            return None, failure("UNKNOWN", ErrorClass.OTHER, f"database unavailable: {exc}"), False
        key = (database.key, gold_sql)
        with self._lock:
            cached = self._gold.get(key)
            if cached is not None:
                self._gold.move_to_end(key)
                return database, cached[0], cached[1]
        capture = _statement_type(gold_sql) not in QUERY_TYPES
        if self.rule == "spider_official":
            run_sql, _, order_matters = spider_official.prepare(gold_sql, None)
        else:
            run_sql, order_matters = gold_sql, _has_order_by(gold_sql)
        result = database.run(run_sql, capture_state=capture, allow_multiple=True)
        self._store_gold(key, result, order_matters)
        return database, result, order_matters

    def _store_gold(self, key: tuple[str, str], result: ExecResult, order_matters: bool) -> None:
        with self._lock:
            self._gold[key] = (result, order_matters)
            while len(self._gold) > self.max_gold_entries:
                self._gold.popitem(last=False)

    def check(
        self,
        pred_sql: str | None,
        gold_sql: str,
        *,
        sql_context: str | None = None,
        db_path: str | None = None,
    ) -> ExecutionOutcome:
        """Run ``pred_sql`` and compare it with the gold; never raises.

        With ``test_suite`` and a ``db_path`` whose folder holds other ``*.sqlite``
        files, the outcome is the one on ``db_path`` but ``match`` holds only if the
        prediction matches on every one of them.
        """
        memo, key = self._outcomes, (pred_sql, gold_sql, sql_context, db_path)
        if memo is not None and key in memo:
            return memo[key]
        outcome = self._check_one(pred_sql, gold_sql, sql_context, db_path)
        if self.test_suite and db_path and outcome.match:
            others = test_suite_databases(db_path)
            for other in others:
                if not self._check_one(pred_sql, gold_sql, None, str(other)).match:
                    outcome.match = False
                    break
            outcome.databases_checked = 1 + len(others)
        if memo is not None:
            memo[key] = outcome
        return outcome

    def _check_one(
        self, pred_sql: str | None, gold_sql: str, sql_context: str | None, db_path: str | None
    ) -> ExecutionOutcome:
        database, gold, order_matters = self._gold_entry(gold_sql, sql_context, db_path)
        kind = gold_kind(gold)
        try:
            if pred_sql is not None and self.rule == "spider_official":
                pred_sql = spider_official.prepare(gold_sql, pred_sql)[1]
            return self._check(pred_sql, gold_sql, gold, kind, database, order_matters)
        except Exception as exc:  # noqa: BLE001 - a reward must never raise
            logger.warning("execution check failed unexpectedly: %s", exc)
            pred = failure("UNKNOWN", ErrorClass.OTHER, f"check failed: {exc}")
            return ExecutionOutcome(
                pred_sql, gold, pred, kind, False, False, False, 0.0, ErrorClass.OTHER, self.rule
            )

    def check_many(
        self, items: Sequence[tuple[str | None, str, str | None, str | None]]
    ) -> list[ExecutionOutcome]:
        """:meth:`check` for each ``(pred_sql, gold_sql, sql_context, db_path)``, with every
        prediction that must run sent to the worker in one pipelined batch; never raises."""
        try:
            self.prefetch(items)
        except Exception as exc:  # noqa: BLE001 - check() below runs them one by one
            logger.warning("batched execution failed, running one by one: %s", exc)
        try:
            return [
                self.check(pred, gold, sql_context=context, db_path=db_path)
                for pred, gold, context, db_path in items
            ]
        finally:
            self.clear_prefetched()

    def clear_prefetched(self) -> None:
        """Forget the results :meth:`prefetch` ran ahead."""
        self._prefetched.clear()

    def prefetch(self, items: Sequence[tuple[str | None, str, str | None, str | None]]) -> None:
        """Run, as one batch, the predictions that :meth:`check` would run one at a time for
        these ``(pred_sql, gold_sql, sql_context, db_path)`` items; :meth:`check` then takes
        their results until :meth:`clear_prefetched`.

        The isolated statements go to the worker pool (several at once, pipelined) while the
        others run here, at the same time; all of them share one deadline,
        ``limits.batch_budget_s()`` (past it a statement is stopped, or not started, and is
        a ``timeout``), so a batch full of bombs cannot hold a reward call for long."""
        import time

        from sqlgrpo.sql.worker import run_remote

        remote: dict[tuple[str, str, bool], tuple[Database, str, bool, bool]] = {}
        here: dict[tuple[str, str, bool], tuple[Database, str, bool]] = {}
        entries: dict[tuple[str, str | None, str | None], tuple[Any, ExecResult]] = {}
        for pred_sql, gold_sql, context, db_path in items:
            spec = (gold_sql, context, db_path)
            entry = entries.get(spec)
            if entry is None:
                database, gold, _ = self._gold_entry(gold_sql, context, db_path)
                entry = entries[spec] = (database, gold)
            database, gold = entry
            if pred_sql is not None and self.rule == "spider_official":
                pred_sql = spider_official.prepare(gold_sql, pred_sql)[1]  # as _check_one runs it
            if pred_sql is None or not isinstance(database, Database):
                continue
            if gold.ok and _same_single_statement(pred_sql, gold_sql):
                continue
            gold_type = gold.statement_type if gold.ok else _statement_type(gold_sql)
            capture = gold_type not in QUERY_TYPES
            key = (database.key, pred_sql, capture)
            if database.isolated(pred_sql):
                remote.setdefault(key, (database, pred_sql, capture, False))
            else:
                here.setdefault(key, (database, pred_sql, capture))
        if len(remote) + len(here) <= 1:
            return  # one statement: check() runs it with its own limits
        budget = self.limits.batch_budget_s()
        deadline = time.monotonic() + budget if math.isfinite(budget) else None
        done: dict[str, Any] = {}

        def run_isolated() -> None:
            try:
                done["results"] = run_remote(list(remote.values()), deadline)
            except BaseException as exc:  # noqa: BLE001 - check() then runs them one by one
                done["error"] = exc

        thread = None
        if remote:
            if here:
                thread = threading.Thread(target=run_isolated, name="sandbox-batch", daemon=True)
                thread.start()
            else:
                run_isolated()
        try:
            for key, (database, sql, capture) in here.items():
                self._prefetched[key] = database.run_here(
                    sql, capture_state=capture, deadline=deadline
                )
        finally:
            if thread is not None:
                thread.join()
        cut = sum(_cut_by_deadline(self._prefetched[key]) for key in here)
        if cut:
            logger.warning(
                "batch deadline (%.3g s): %d of %d in-process statement(s) stopped or not run",
                budget,
                cut,
                len(here),
            )
        if "error" in done:
            raise done["error"]
        if remote:
            self._prefetched.update(zip(remote, done["results"], strict=True))

    def _check(
        self,
        pred_sql: str | None,
        gold_sql: str,
        gold: ExecResult,
        kind: str,
        database: Any,
        gold_order_matters: bool,
    ) -> ExecutionOutcome:
        if pred_sql is None:
            return ExecutionOutcome(
                None, gold, None, kind, False, False, False, 0.0, None, self.rule
            )
        gold_type = gold.statement_type if gold.ok else _statement_type(gold_sql)
        by_state = gold_type not in QUERY_TYPES
        if database is None:  # bad db_path: the gold failed for the same reason
            pred = failure(_statement_type(pred_sql), ErrorClass.OTHER, gold.error_message or "")
        elif gold.ok and _same_single_statement(pred_sql, gold_sql):
            pred = gold  # the gold's own text on the same pristine database: its result
        else:
            pred = self._prefetched.get((database.key, pred_sql, by_state))
            if pred is None:
                pred = database.run(pred_sql, capture_state=by_state)
        type_match = pred.statement_type == gold_type
        order_matters = False
        if not pred.ok:
            match, similarity = False, 0.0
        elif by_state:
            match = type_match and states_match(gold, pred)
            similarity = 1.0 if match else 0.0
        else:
            order_matters = gold_order_matters
            result = compare_results(gold, pred, self.rule, order_matters=order_matters)
            match, similarity = result.exact, result.similarity
        return ExecutionOutcome(
            pred_sql=pred_sql,
            gold=gold,
            pred=pred,
            gold_kind=kind,
            statement_type_match=type_match,
            executed=pred.ok,
            match=match,
            similarity=similarity,
            error_class=pred.error_class,
            rule=self.rule,
            order_matters=order_matters,
        )

    def __getstate__(self) -> dict:
        # sqlite connections cannot be pickled: a copy starts with empty caches.
        return {
            "rule": self.rule,
            "limits": self.limits,
            "cache": self.cache,
            "max_gold_entries": self.max_gold_entries,
            "test_suite": self.test_suite,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)


def test_suite_databases(db_path: str | Path) -> list[Path]:
    """The other ``*.sqlite`` files in ``db_path``'s folder, sorted (empty in the plain
    Spider layout, where each folder holds one database)."""
    path = Path(db_path)
    own = path.resolve()
    return [p for p in sorted(path.parent.glob("*.sqlite")) if p.resolve() != own]


def _cut_by_deadline(result: ExecResult) -> bool:
    """True for a statement its batch's deadline stopped or kept from running."""
    message = result.error_message or ""
    return result.error_class is ErrorClass.TIMEOUT and (
        message == BATCH_DEADLINE_NOT_RUN or message.startswith("stopped at its batch's")
    )


def _same_single_statement(pred_sql: str, gold_sql: str) -> bool:
    """True when the prediction is the gold's text (up to surrounding blanks and a final
    ``;``) and holds one statement, so running it again could only repeat the gold's result.
    (Gold scripts may stack statements, which a prediction may not.)"""
    pred = pred_sql.strip().rstrip(";").rstrip()
    return pred == gold_sql.strip().rstrip(";").rstrip() and ";" not in pred


def _has_order_by(sql: str) -> bool:
    try:
        return has_order_by(sql)
    except Exception:  # noqa: BLE001
        return False


def _statement_type(sql: str) -> str:
    try:
        return statement_type(sql) if isinstance(sql, str) else "UNKNOWN"
    except Exception:  # noqa: BLE001
        return "UNKNOWN"
