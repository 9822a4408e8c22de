"""Untrusted statements in a worker process that is killed at the deadline.

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
  worker that dies anyway is replaced and its statement is a ``resource_limit``.

:meth:`Database.run <sqlgrpo.sql.database.Database.run>` sends here only the
statements that use a construct able to run long inside one instruction or to
make big values (:func:`needs_isolation`); the others run in this process, where the progress handler, the elapsed-time check and the
heap budget hold. Requests are pipelined (:meth:`SandboxWorker.call_many`): a
batch of statements costs about one round trip, not one each. Workers are shared by every cache with
the same configuration in a process, and a forked child starts its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection
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
_MAX_IN_FLIGHT = 64  # requests sent but not answered
_MAX_IN_FLIGHT_BYTES = 128 * 1024  # so the parent never blocks on a full socket


class WorkerDied(Exception):
    """The worker process ended while a request was pending."""


class SandboxWorker:
    """One worker process and the pipe to it; restarted after a kill or a crash."""

    def __init__(
        self,
        limits: SandboxLimits,
        max_entries: int,
        max_copy_bytes: int,
        context_limits: ContextLimits,
    ) -> None:
        self.limits = limits
        self.config = (limits, max_entries, max_copy_bytes, context_limits)
        self.context_limits = context_limits
        self.restarts = 0  # kills and crashes so far
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._pid = os.getpid()

    # -- process management -------------------------------------------------
    def _spawn(self) -> None:
        parent_end, child_end = socket.socketpair()
        src = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "sqlgrpo.sql.worker_process", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                cwd="/",
                env=env,
            )
        finally:
            child_end.close()
        self._conn = Connection(parent_end.detach())
        self._conn.send(self.config)
        self._ready = False

    def _ensure(self) -> Connection:
        if os.getpid() != self._pid:  # a forked child: the pipe belongs to the parent
            self._proc, self._conn, self._ready, self._pid = None, None, False, os.getpid()
        if self._proc is None or self._conn is None:
            self._spawn()
        assert self._conn is not None
        if not self._ready:
            if not self._conn.poll(STARTUP_TIMEOUT_S):
                self._kill()
                raise RuntimeError(f"sandbox worker did not start within {STARTUP_TIMEOUT_S} s")
            try:
                self._conn.recv()
            except (EOFError, OSError) as exc:
                code = self._kill()
                raise RuntimeError(f"sandbox worker failed to start (exit status {code})") from exc
            self._ready = True
        return self._conn

    def _kill(self) -> int | None:
        """Kill the worker now (SIGKILL) and reap it; returns its exit status."""
        proc, conn = self._proc, self._conn
        self._proc, self._conn, self._ready = None, None, False
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

    def _replace(self) -> int | None:
        code = self._kill()
        self.restarts += 1
        self._spawn()  # starts loading now; the next request waits until it is ready
        return code

    def close(self) -> None:
        """Stop the worker (it is started again on the next request)."""
        with self._lock:
            if os.getpid() == self._pid:
                self._kill()

    # -- requests -----------------------------------------------------------
    def _allowance(self, request: tuple) -> float:
        margin = self.limits.kill_margin_s
        if request[0] == "build":
            return self.context_limits.timeout_s + margin + 5.0
        _, _, sql, _, allow_multiple = request
        parts = max(1, len(split_statements(sql))) if allow_multiple else 1
        return self.limits.timeout_s * parts + margin

    def call_many(self, requests: Sequence[tuple]) -> list[tuple]:
        """Send every request, pipelined, and return the replies in order.

        A request is ``("build", "ctx" | "path", value)`` or ``("run", key, sql,
        capture_state, allow_multiple)``. A run whose database the worker no longer
        holds (evicted, or a new worker) is answered ``("missing",)``; a request the
        worker did not answer in time is answered ``("timeout", seconds)``, one that
        it died on ``("died", exit status)``.
        """
        with self._lock:
            replies: list[tuple | None] = [None] * len(requests)
            queue: deque[int] = deque(range(len(requests)))
            payloads = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in requests]
            in_flight: deque[int] = deque()
            in_flight_bytes = 0
            clock = time.monotonic()
            while queue or in_flight:
                conn = self._ensure()
                try:
                    while queue and len(in_flight) < _MAX_IN_FLIGHT:
                        size = len(payloads[queue[0]])
                        if in_flight and in_flight_bytes + size > _MAX_IN_FLIGHT_BYTES:
                            break
                        index = queue.popleft()
                        if not in_flight:
                            clock = time.monotonic()
                        in_flight.append(index)
                        in_flight_bytes += size
                        conn.send_bytes(payloads[index])
                    index = in_flight[0]
                    wait = clock + self._allowance(requests[index]) - time.monotonic()
                    if conn.poll(max(0.0, wait)):
                        reply = conn.recv()
                    else:
                        reply = None
                except (EOFError, OSError):
                    index = in_flight[0]
                    reply = ("died", None)
                if reply is None:  # past its deadline: kill, then go on with a fresh worker
                    seconds = time.monotonic() - clock
                    self._replace()
                    reply = ("timeout", seconds)
                    logger.warning("sandbox worker killed after %.2f s on one request", seconds)
                elif reply[0] == "died":
                    code = self._replace()
                    reply = ("died", code)
                    logger.warning("sandbox worker died (exit status %s); replaced", code)
                if reply[0] in ("timeout", "died"):
                    # the others in flight were not answered: send them again to the new worker
                    rest = [i for i in in_flight if i != index]
                    queue.extendleft(reversed(rest))
                    in_flight.clear()
                    in_flight_bytes = 0
                else:
                    in_flight.popleft()
                    in_flight_bytes -= len(payloads[index])
                clock = time.monotonic()
                replies[index] = reply
            return replies  # type: ignore[return-value]


_WORKERS: dict[tuple, SandboxWorker] = {}
_WORKERS_LOCK = threading.Lock()


def shared_worker(
    limits: SandboxLimits,
    max_entries: int = 512,
    max_copy_bytes: int = DEFAULT_MAX_COPY_BYTES,
    context_limits: ContextLimits = DEFAULT_CONTEXT_LIMITS,
) -> SandboxWorker:
    """The process's worker for this configuration (created on first use)."""
    config = (limits, max_entries, max_copy_bytes, context_limits)
    with _WORKERS_LOCK:
        worker = _WORKERS.get(config)
        if worker is None:
            worker = _WORKERS[config] = SandboxWorker(*config)
        return worker


@atexit.register
def _stop_workers() -> None:
    for worker in list(_WORKERS.values()):
        worker.close()


#: Constructs that can do unbounded work inside one SQLite instruction, or make big values:
#: statements using any of them (even inside a string; a false alarm only costs speed) run
#: in the worker. ``WITH`` covers recursive CTEs, which SQLite allows without RECURSIVE.
def worker_for(database: Database) -> SandboxWorker:
    """The shared worker that runs ``database``'s isolated statements."""
    return shared_worker(database.limits, context_limits=database.context_limits)


def run_remote(items: Sequence[tuple[Database, str, bool, bool]]) -> list[ExecResult]:
    """Run ``(database, sql, capture_state, allow_multiple)`` items in the worker, pipelined
    per worker (the worker builds each database from its ``spec`` the first time); never
    raises: timeouts, worker deaths and build failures become failed results."""
    results: list[ExecResult | None] = [None] * len(items)
    by_worker: dict[int, list[int]] = {}
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
            by_worker.setdefault(id(worker_for(database)), []).append(i)
    for indices in by_worker.values():
        worker = worker_for(items[indices[0]][0])
        pending = indices
        for _attempt in range(len(indices) + 2):  # bounded: each kill settles one request
            restarts = worker.restarts
            requests = [("run", items[i][0].key, *items[i][1:]) for i in pending]
            try:
                replies = worker.call_many(requests)
            except Exception as exc:  # noqa: BLE001 - could not start a worker at all
                logger.warning("sandbox worker unavailable (%s): running in-process", exc)
                for i in pending:
                    database, sql, capture_state, allow_multiple = items[i]
                    results[i] = database.run_here(
                        sql, capture_state=capture_state, allow_multiple=allow_multiple
                    )
                pending = []
                break
            missing = []
            for i, reply in zip(pending, replies, strict=True):
                if reply[0] == "missing":
                    missing.append(i)
                else:
                    results[i] = _result(reply, items[i][1], worker.limits)
            pending = missing
            if not missing or (_attempt > 0 and worker.restarts == restarts):
                break  # done, or rebuilt without a kill and still missing: give up below
            specs = list(dict.fromkeys(items[i][0].spec for i in missing))
            try:
                worker.call_many([("build", *spec) for spec in specs])
            except Exception:  # noqa: BLE001 - the runs then report it
                pass
        for i in pending:
            results[i] = _result(("missing",), items[i][1], worker.limits)
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
    return failure(_stype(sql), ErrorClass.OTHER, "database unavailable in the sandbox worker")
