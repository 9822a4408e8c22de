"""Untrusted statements in worker processes that are killed at the deadline.

SQLite checks its progress handler between VM instructions, so work done inside
one instruction (``instr``, ``replace`` or ``trim`` with long arguments, a huge
sort) cannot be interrupted in-process. A child process (``python -m
sqlgrpo.sql.worker_process``) holds its own copy of each database it is asked about and
runs statements with the usual in-process sandbox (:mod:`sqlgrpo.sql.sandbox`)
and, in addition:

* the parent waits for each answer at most ``timeout_s + kill_margin_s`` (per
  statement of a trusted script); past that it kills the worker (SIGKILL), the
  statement is a ``timeout``, and a fresh worker takes the remaining statements
  (it rebuilds the databases it is asked for; results already returned stand);
* the worker's address space is capped (``RLIMIT_AS``) at its size after the
  last database build plus ``max_memory_bytes`` +
  :data:`sqlgrpo.sql.worker_process.ADDRESS_SPACE_SLACK`,
  so no statement, nor the Python objects of its result, can take more; a
  worker that dies anyway is replaced and its statement is a ``resource_limit``;
  one that ran out of memory (``MemoryError``) answers, exits and is replaced, so
  the next statement never runs in a process the last one disturbed.

A :class:`WorkerPool` of ``limits.workers`` such processes runs one batch's statements
side by side, at most :data:`PIPELINE_DEPTH` in flight per worker, and stops the batch
at its deadline (``limits.batch_budget_s()`` after the workers are ready and hold the
batch's databases): what still runs is killed and what has not started is answered
``("deadline",)`` without running, so a batch of bombs costs one budget, not one
allowance per bomb.

:meth:`Database.run <sqlgrpo.sql.database.Database.run>` sends here only the
statements that use a construct able to run long inside one instruction or to
make big values (:func:`needs_isolation`); the others run in this process, where the
progress handler, the elapsed-time check and the heap budget hold. Pools are shared by
every cache with the same configuration in a process, and a forked child starts its own.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.isolation import needs_isolation  # noqa: F401 (re-exported)
from sqlgrpo.sql.sandbox import (
    DEFAULT_CONTEXT_LIMITS,
    DEFAULT_MAX_COPY_BYTES,
    ContextLimits,
    ExecResult,
    SandboxLimits,
    failure,
)
from sqlgrpo.sql.statements import split_statements, statement_type

logger = logging.getLogger(__name__)


class Database(Protocol):
    """What the worker needs of a :class:`sqlgrpo.sql.database.Database` (defined there; the
    worker is the lower module and must not import it back)."""

    key: str
    limits: SandboxLimits
    context_limits: ContextLimits
    build_error: str | None
    spec: tuple[str, str] | None

    def run_here(
        self, sql: str, *, capture_state: bool = False, allow_multiple: bool = False
    ) -> ExecResult:
        """Run one statement in this process; never raises."""
        ...


#: Seconds a fresh worker may take to start and answer its first message.
STARTUP_TIMEOUT_S = 60.0
#: Requests in flight per worker: one running and one waiting, which hides the round trip;
#: more would leave more statements queued behind a bomb until its kill.
PIPELINE_DEPTH = 2
_MAX_IN_FLIGHT_BYTES = 128 * 1024  # so the parent never blocks on a full socket
_MAX_TRIES = 3  # runs of one statement answered "missing" (database evicted), then given up


class SandboxWorker:
    """One worker process and the pipe to it: started, killed and replaced. It answers
    ``("ready", pid)`` once started; the :class:`WorkerPool` reads that and its replies."""

    def __init__(self, config: tuple) -> None:
        self.config = config  # (limits, max_entries, max_copy_bytes, context_limits)
        self.restarts = 0  # kills, deaths and retirements so far
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.ready = False
        self.known: set[str] = set()  # database keys built in this process
        self.started_at = 0.0
        self._pid = os.getpid()

    def start(self) -> None:
        """Start the process if none runs (returns at once; it answers when ready)."""
        if os.getpid() != self._pid:  # a forked child: the pipe belongs to the parent
            self.proc, self.conn, self.ready, self._pid = None, None, False, os.getpid()
            self.known = set()
        if self.proc is not None and self.conn is not None:
            return
        parent_end, child_end = socket.socketpair()
        src = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sqlgrpo.sql.worker_process", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                cwd="/",
                env=env,
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self.conn = Connection(parent_end.detach())
        self.conn.send(self.config)
        self.ready, self.known, self.started_at = False, set(), time.monotonic()

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Start the process if needed and wait until it has answered; RuntimeError if it
        does not within ``timeout_s``."""
        self.start()
        if self.ready:
            return
        assert self.conn is not None
        if not self.conn.poll(max(0.0, self.started_at + timeout_s - time.monotonic())):
            self.kill()
            raise RuntimeError(f"sandbox worker did not start within {timeout_s:g} s")
        self.take_ready()

    def take_ready(self) -> None:
        """Read the start-up answer (its connection is readable); RuntimeError if it died."""
        assert self.conn is not None
        try:
            self.conn.recv()
        except (EOFError, OSError) as exc:
            code = self.kill()
            raise RuntimeError(f"sandbox worker failed to start (exit status {code})") from exc
        self.ready = True

    def signal_kill(self) -> None:
        """Send SIGKILL without waiting (several workers then die at once; :meth:`kill`
        reaps)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def kill(self) -> int | None:
        """Kill the process now (SIGKILL) and reap it; returns its exit status."""
        proc, conn = self.proc, self.conn
        self.proc, self.conn, self.ready, self.known = None, None, False, set()
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None

    def replace(self) -> int | None:
        """Kill the process and start a fresh one (which loads meanwhile)."""
        code = self.kill()
        self.restarts += 1
        self.start()
        return code

    def close(self) -> None:
        """Stop the process (it is started again on the next request)."""
        if os.getpid() == self._pid:
            self.kill()


class WorkerPool:
    """``limits.workers`` worker processes running the isolated statements of one batch at
    once, each killed at its statement's deadline, all stopped at the batch's deadline."""

    def __init__(
        self,
        limits: SandboxLimits,
        max_entries: int = 512,
        max_copy_bytes: int = DEFAULT_MAX_COPY_BYTES,
        context_limits: ContextLimits = DEFAULT_CONTEXT_LIMITS,
    ) -> None:
        self.limits = limits
        self.context_limits = context_limits
        config = (limits, max_entries, max_copy_bytes, context_limits)
        self.workers = [SandboxWorker(config) for _ in range(limits.workers)]
        self._lock = threading.Lock()

    @property
    def restarts(self) -> int:
        """Processes killed, dead or retired so far, all workers together."""
        return sum(worker.restarts for worker in self.workers)

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            for worker in self.workers:
                worker.close()

    def start(self) -> None:
        """Start every worker process without waiting for it (each loads in the background,
        about 70 ms, so the first batch finds them ready). A worker that cannot start is
        logged and left to the first batch, which starts it again and reports."""
        with self._lock:
            for worker in self.workers:
                try:
                    worker.start()
                except Exception as exc:  # noqa: BLE001 - the first run retries and raises
                    logger.warning("sandbox worker could not be started ahead: %s", exc)

    def run(
        self,
        tasks: Sequence[tuple[Database, str, bool, bool]],
        deadline: float | None = None,
    ) -> list[tuple]:
        """Run ``(database, sql, capture_state, allow_multiple)`` tasks and return one reply
        per task: ``("result", ExecResult)``, ``("timeout", seconds)`` (killed at its own
        deadline), ``("died", exit status)``, ``("deadline",)`` (stopped or not started at
        the batch's deadline) or ``("missing",)`` (its database could not be had).

        The workers are started and the batch's databases built in each before the clock
        starts (start-up and trusted builds have their own limits). The batch's deadline is
        then ``limits.batch_budget_s()`` from there, or ``deadline`` (``time.monotonic()``)
        when that is later. Raises RuntimeError when no worker starts."""
        with self._lock:
            workers = self._prepare(tasks)
            budget = self.limits.batch_budget_s()
            clock_deadline = time.monotonic() + budget if math.isfinite(budget) else None
            if deadline is not None and clock_deadline is not None:
                clock_deadline = max(clock_deadline, deadline)
            return _Batch(self, workers, tasks).run(clock_deadline)

    def _prepare(self, tasks: Sequence[tuple[Database, str, bool, bool]]) -> list[SandboxWorker]:
        """The workers this batch uses, started, with its databases built (in parallel)."""
        wanted = self.workers[: max(1, min(len(self.workers), len(tasks)))]
        error: Exception | None = None
        for worker in wanted:
            try:
                worker.start()
            except Exception as exc:  # noqa: BLE001 - reported below when none starts
                error = exc
        ready = []
        for worker in wanted:
            if worker.proc is None:
                continue
            try:
                worker.wait_ready()
                ready.append(worker)
            except RuntimeError as exc:
                error = exc
        if not ready:
            raise RuntimeError(f"no sandbox worker could start: {error}")
        specs = {db.key: db.spec for db, *_ in tasks}
        builds = [(worker, key) for worker in ready for key in specs if key not in worker.known]
        if builds:
            _Batch(self, ready, []).build(builds, specs)
        return [worker for worker in ready if worker.ready]


class _Batch:
    """The event loop of one :meth:`WorkerPool.run`: sends requests to the workers (at most
    :data:`PIPELINE_DEPTH` each, builds first where a database is new to a worker), reads
    replies as they come, kills a worker whose head request is past its allowance and
    requeues what it held, and stops everything at the batch's deadline."""

    def __init__(
        self, pool: WorkerPool, workers: list[SandboxWorker], tasks: Sequence[tuple]
    ) -> None:
        self.pool = pool
        self.limits = pool.limits
        self.workers = workers
        self.tasks = tasks
        self.replies: list[tuple | None] = [None] * len(tasks)
        self.queue: deque[int] = deque(range(len(tasks)))
        self.tries = [0] * len(tasks)
        self.payloads = [
            pickle.dumps(("run", db.key, sql, capture, multiple), pickle.HIGHEST_PROTOCOL)
            for db, sql, capture, multiple in tasks
        ]
        self.specs = {db.key: db.spec for db, *_ in tasks}
        # per worker: in-flight entries ("run", task) / ("build", key), their bytes, and
        # when the head entry started
        self.in_flight: dict[int, deque[tuple[str, Any]]] = {id(w): deque() for w in workers}
        self.in_bytes: dict[int, int] = {id(w): 0 for w in workers}
        self.clock: dict[int, float] = {id(w): 0.0 for w in workers}
        self.targeted: dict[int, deque[str]] = {id(w): deque() for w in workers}
        self.failed_builds: dict[str, int] = {}

    # -- requests -------------------------------------------------------------
    def _allowance(self, entry: tuple[str, Any]) -> float:
        margin = self.limits.kill_margin_s
        if entry[0] == "build":
            return self.pool.context_limits.timeout_s + margin + 5.0
        _, sql, _, allow_multiple = self.tasks[entry[1]]
        parts = max(1, len(split_statements(sql))) if allow_multiple else 1
        return self.limits.timeout_s * parts + margin

    def _send(self, worker: SandboxWorker, entry: tuple[str, Any], payload: bytes) -> None:
        key = id(worker)
        if not self.in_flight[key]:
            self.clock[key] = time.monotonic()
        self.in_flight[key].append(entry)
        self.in_bytes[key] += len(payload)
        assert worker.conn is not None
        worker.conn.send_bytes(payload)

    def _room(self, worker: SandboxWorker, size: int) -> bool:
        key = id(worker)
        if not self.in_flight[key]:
            return True
        return (
            len(self.in_flight[key]) < PIPELINE_DEPTH
            and self.in_bytes[key] + size <= _MAX_IN_FLIGHT_BYTES
        )

    def _build_payload(self, key: str) -> bytes:
        return pickle.dumps(("build", *self.specs[key]), pickle.HIGHEST_PROTOCOL)

    def _building(self, worker: SandboxWorker, key: str) -> bool:
        return ("build", key) in self.in_flight[id(worker)]

    def _dispatch(self) -> None:
        """Fill the ready workers' pipelines: targeted builds first, then the shared queue,
        each task to the least busy worker (a build goes ahead of a run on a database the
        worker does not hold yet)."""
        for worker in self.workers:
            targeted = self.targeted[id(worker)]
            while worker.ready and targeted and self._room(worker, 0):
                key = targeted.popleft()
                if key not in worker.known and not self._building(worker, key):
                    self._send(worker, ("build", key), self._build_payload(key))
        while self.queue:
            ready = [w for w in self.workers if w.ready]
            if not ready:
                return
            worker = min(ready, key=lambda w: len(self.in_flight[id(w)]))
            index = self.queue[0]
            key = self.tasks[index][0].key
            if self.failed_builds.get(key, 0) >= 2:
                self.queue.popleft()
                self.replies[index] = ("missing",)
                continue
            payload = self.payloads[index]
            build = None
            if key not in worker.known and not self._building(worker, key):
                build = self._build_payload(key)
            if not self._room(worker, len(payload) + len(build or b"")):
                return
            self.queue.popleft()
            if build is not None:
                self._send(worker, ("build", key), build)
            self._send(worker, ("run", index), payload)

    # -- replies --------------------------------------------------------------
    def _requeue(self, worker: SandboxWorker) -> None:
        """Give back what ``worker`` held (it is being replaced): runs to the queue's front."""
        entries = self.in_flight[id(worker)]
        runs = [index for kind, index in entries if kind == "run"]
        self.queue.extendleft(reversed(runs))
        entries.clear()
        self.in_bytes[id(worker)] = 0
        self.targeted[id(worker)].clear()

    def _replace(self, worker: SandboxWorker) -> int | None:
        self._requeue(worker)
        return worker.replace()

    def _on_reply(self, worker: SandboxWorker) -> None:
        key = id(worker)
        assert worker.conn is not None
        if not worker.ready:
            try:
                worker.take_ready()
            except RuntimeError as exc:
                logger.warning("%s", exc)  # killed; not restarted during this batch
            return
        try:
            reply = worker.conn.recv()
        except (EOFError, OSError):
            reply = None
        entry = self.in_flight[key].popleft()
        self.clock[key] = time.monotonic()
        if reply is None:  # the process died (memory, a crash): the others go back
            code = self._replace(worker)
            logger.warning("sandbox worker died (exit status %s); replaced", code)
            self._settle(entry, ("died", code))
            return
        if entry[0] == "build":
            if reply[0] == "built":
                worker.known.add(entry[1])
            else:
                self.failed_builds[entry[1]] = self.failed_builds.get(entry[1], 0) + 1
            self.in_bytes[key] -= len(self._build_payload(entry[1]))
            return
        index = entry[1]
        self.in_bytes[key] -= len(self.payloads[index])
        if reply[0] == "missing":  # evicted from the worker's cache: build again, retry
            worker.known.discard(self.tasks[index][0].key)
            self.tries[index] += 1
            if self.tries[index] < _MAX_TRIES:
                self.queue.appendleft(index)
                return
        self.replies[index] = reply[:2]
        if len(reply) > 2 and reply[2] == "retire":  # it ran out of memory: a fresh one
            self._replace(worker)

    def _settle(self, entry: tuple[str, Any], reply: tuple) -> None:
        if entry[0] == "run":
            self.replies[entry[1]] = reply
        else:
            self.failed_builds[entry[1]] = self.failed_builds.get(entry[1], 0) + 1

    def _overdue(self, now: float) -> None:
        """Kill each worker whose head request is past its allowance."""
        overdue = [
            worker
            for worker in self.workers
            if self.in_flight[id(worker)]
            and now >= self.clock[id(worker)] + self._allowance(self.in_flight[id(worker)][0])
        ]
        for worker in overdue:
            worker.signal_kill()  # all at once: each then only needs reaping
        for worker in overdue:
            entries = self.in_flight[id(worker)]
            seconds = now - self.clock[id(worker)]
            entry = entries.popleft()
            self._replace(worker)
            logger.warning("sandbox worker killed after %.2f s on one request", seconds)
            self._settle(entry, ("timeout", seconds))

    def _wake(self, deadline: float | None) -> float:
        """When the loop must look again: the first head allowance, start-up limit or the
        batch's deadline."""
        times = [] if deadline is None else [deadline]
        for worker in self.workers:
            entries = self.in_flight[id(worker)]
            if entries:
                times.append(self.clock[id(worker)] + self._allowance(entries[0]))
            elif worker.conn is not None and not worker.ready:
                times.append(worker.started_at + STARTUP_TIMEOUT_S)
        return min(times) if times else time.monotonic() + 1.0

    def _loop(self, deadline: float | None, done: Any) -> None:
        while not done():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._stop_at_deadline()
                return
            for worker in self.workers:  # a replacement that never came up
                if worker.conn is not None and not worker.ready:
                    if now > worker.started_at + STARTUP_TIMEOUT_S:
                        worker.kill()
                        logger.warning("sandbox worker did not start; left out of this batch")
            self._dispatch()
            if done():
                return
            waiting = [
                w.conn
                for w in self.workers
                if w.conn is not None and (self.in_flight[id(w)] or not w.ready)
            ]
            if not waiting:  # no worker left to run the rest
                for index in self.queue:
                    self.replies[index] = ("missing",)
                self.queue.clear()
                return
            timeout = max(0.0, self._wake(deadline) - time.monotonic())
            readable = set(map(id, wait(waiting, timeout)))
            for worker in self.workers:
                if worker.conn is not None and id(worker.conn) in readable:
                    self._on_reply(worker)
            self._overdue(time.monotonic())

    def _stop_at_deadline(self) -> None:
        """The batch's deadline: stop the running statements, classify the rest unrun."""
        stopped = 0
        for worker in self.workers:
            if self.in_flight[id(worker)]:
                worker.signal_kill()
        for worker in self.workers:
            entries = self.in_flight[id(worker)]
            if entries:
                stopped += sum(1 for kind, _ in entries if kind == "run")
                self._replace(worker)  # requeues its runs
        unrun = len(self.queue) - stopped
        for index in self.queue:
            self.replies[index] = ("deadline",)
        self.queue.clear()
        logger.warning(
            "sandbox batch deadline (%.3g s): %d statement(s) stopped, %d not run",
            self.limits.batch_budget_s(),
            stopped,
            unrun,
        )

    def run(self, deadline: float | None) -> list[tuple]:
        """Run every task; one reply each (see :meth:`WorkerPool.run`)."""
        self._loop(deadline, lambda: not self.queue and not any(self.in_flight.values()))
        return [reply if reply is not None else ("missing",) for reply in self.replies]

    def build(self, builds: list[tuple[SandboxWorker, str]], specs: dict) -> None:
        """Build databases in the given workers, in parallel, before a batch's clock."""
        self.specs = specs
        for worker, key in builds:
            self.targeted[id(worker)].append(key)
        self._loop(
            None,
            lambda: not any(self.in_flight.values()) and not any(self.targeted.values()),
        )


_POOLS: dict[tuple, WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(
    limits: SandboxLimits,
    max_entries: int = 512,
    max_copy_bytes: int = DEFAULT_MAX_COPY_BYTES,
    context_limits: ContextLimits = DEFAULT_CONTEXT_LIMITS,
) -> WorkerPool:
    """The process's worker pool for this configuration (created on first use)."""
    config = (limits, max_entries, max_copy_bytes, context_limits)
    with _POOLS_LOCK:
        pool = _POOLS.get(config)
        if pool is None:
            pool = _POOLS[config] = WorkerPool(*config)
        return pool


@atexit.register
def _stop_workers() -> None:
    for pool in list(_POOLS.values()):
        pool.close()


def prestart(limits: SandboxLimits, context_limits: ContextLimits = DEFAULT_CONTEXT_LIMITS) -> None:
    """Start the shared pool that databases built with these limits will use (nothing when
    their isolation is ``inline``), so a first scoring call does not wait for its workers."""
    if limits.isolation == "process":
        shared_pool(limits, context_limits=context_limits).start()


def pool_for(database: Database) -> WorkerPool:
    """The shared pool that runs ``database``'s isolated statements."""
    return shared_pool(database.limits, context_limits=database.context_limits)


def run_remote(
    items: Sequence[tuple[Database, str, bool, bool]], deadline: float | None = None
) -> list[ExecResult]:
    """Run ``(database, sql, capture_state, allow_multiple)`` items in the worker pool (each
    worker builds a database from its ``spec`` the first time); never raises: timeouts,
    worker deaths, the batch's deadline and build failures become failed results. Without
    any worker, the items run in this process."""
    results: list[ExecResult | None] = [None] * len(items)
    by_pool: dict[int, list[int]] = {}
    for i, (database, sql, _, _) in enumerate(items):
        if not isinstance(sql, str):
            results[i] = failure(
                "UNKNOWN", ErrorClass.SYNTAX, f"SQL must be text, got {type(sql).__name__}"
            )
        elif database.build_error is not None or database.spec is None:
            results[i] = failure(
                _stype(sql), ErrorClass.OTHER, f"database did not build: {database.build_error}"
            )
        else:
            by_pool.setdefault(id(pool_for(database)), []).append(i)
    for indices in by_pool.values():
        pool = pool_for(items[indices[0]][0])
        try:
            replies = pool.run([items[i] for i in indices], deadline)
        except Exception as exc:  # noqa: BLE001 - could not start a worker at all
            logger.warning("sandbox worker unavailable (%s): running in-process", exc)
            for i in indices:
                database, sql, capture_state, allow_multiple = items[i]
                results[i] = database.run_here(
                    sql,
                    capture_state=capture_state,
                    allow_multiple=allow_multiple,
                    deadline=deadline,
                )
            continue
        for i, reply in zip(indices, replies, strict=True):
            results[i] = _result(reply, items[i][1], pool.limits)
    return results  # type: ignore[return-value]


def _stype(sql: Any) -> str:
    try:
        return statement_type(sql) if isinstance(sql, str) else "UNKNOWN"
    except Exception:  # noqa: BLE001
        return "UNKNOWN"


def _result(reply: tuple, sql: str, limits: SandboxLimits) -> ExecResult:
    kind = reply[0]
    if kind == "result":
        return reply[1]
    if kind == "timeout":
        result = failure(
            _stype(sql),
            ErrorClass.TIMEOUT,
            f"statement exceeded the {limits.timeout_s:g} s limit (worker killed)",
        )
        result.elapsed_s = reply[1]
        return result
    if kind == "died":
        return failure(
            _stype(sql),
            ErrorClass.RESOURCE_LIMIT,
            f"the sandbox worker died running the statement (exit status {reply[1]})",
        )
    if kind == "deadline":
        return failure(
            _stype(sql),
            ErrorClass.TIMEOUT,
            f"stopped or not run at its batch's deadline ({limits.batch_budget_s():g} s)",
        )
    return failure(_stype(sql), ErrorClass.OTHER, "database unavailable in the sandbox worker")
