"""An engine in a worker process that is killed at the deadline.

DuckDB checks for an interrupt between vectors, so work inside one function call
(``repeat('x', 1e9)``, a huge ``string_agg``) runs on past its deadline, and a crash inside
the library would take the caller with it. :class:`IsolatedEngine` holds the engine in a child
process (``python -m sqlgrpo.sql.engines.worker_main``: nothing of the parent is inherited)
built from an :class:`EngineRecipe`, and the parent waits for each statement at most
``timeout_s + kill_margin_s``: past that the worker is killed (SIGKILL), the statement is a
``timeout``, and the next call starts a fresh worker (the database is opened again, pristine).
A worker that dies (memory) gives ``resource_limit``. The worker's address space is capped
(``RLIMIT_AS``) at its size once the database is open plus ``max_memory_bytes`` plus
:data:`ADDRESS_SPACE_SLACK`, so the Python copy of a result counts too.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlgrpo.sql.engines.base import DbTarget, Engine, EngineError
from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.sandbox import DEFAULT_LIMITS, ExecResult, SandboxLimits, failure

logger = logging.getLogger(__name__)

#: Address space a worker may use beyond its size after opening plus ``max_memory_bytes``.
ADDRESS_SPACE_SLACK = 1024 * 1024 * 1024
#: Seconds a worker may take to open the database, and to answer a call that is not a statement.
OPEN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class EngineRecipe:
    """How to open an engine again in another process (picklable): a ``--db`` target, or an
    SQLite file / context script copied into ``engine``."""

    engine: str
    key: str
    limits: SandboxLimits = DEFAULT_LIMITS
    target: DbTarget | None = None
    sqlite_path: str | None = None
    sql_context: str | None = None


def serve(pipe: Connection) -> None:
    """The worker: receive the builder and recipe, open the engine, then answer
    ``(method, args, kwargs)`` requests until the parent goes away."""
    try:
        builder, recipe = pipe.recv()
        engine = builder(recipe)
        _cap_address_space(recipe.limits.max_memory_bytes)
        pipe.send(("ok", (engine.diagnostics, engine.build_error)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            method, args, kwargs = pipe.recv()
        except (EOFError, OSError):
            return
        if method == "close":
            engine.close()
            return
        try:
            pipe.send(("ok", getattr(engine, method)(*args, **kwargs)))
        except BaseException as exc:  # noqa: BLE001
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))


def _cap_address_space(budget: int) -> None:
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as fh:
            size = int(fh.read().split()[0]) * resource.getpagesize()
        limit = size + budget + ADDRESS_SPACE_SLACK
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError):  # not Linux: the kill at the deadline remains
        logger.debug("no address-space cap for the engine worker")


class IsolatedEngine(Engine):
    """An :class:`Engine` whose every call runs in a worker process (see the module doc)."""

    def __init__(
        self,
        recipe: EngineRecipe,
        builder: Callable[[EngineRecipe], Engine],
        *,
        kill_margin_s: float | None = None,
    ) -> None:
        super().__init__(recipe.key, recipe.limits)
        self.name = recipe.engine
        self.recipe = recipe
        self._builder = builder
        self.kill_margin_s = recipe.limits.kill_margin_s if kill_margin_s is None else kill_margin_s
        self._process: Any = None
        self._pipe: Any = None
        self._lock = threading.Lock()
        self.restarts = 0
        self._start()  # opens now: a database that cannot be opened fails here

    def _start(self) -> None:
        parent_end, child_end = socket.socketpair()
        src = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "sqlgrpo.sql.engines.worker_main", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                cwd="/",
                env=env,
            )
        finally:
            child_end.close()
        parent = Connection(parent_end.detach())
        self._process, self._pipe = process, parent
        parent.send((self._builder, self.recipe))
        if not parent.poll(OPEN_TIMEOUT_S):
            self._kill()
            raise EngineError(f"{self.key}: the engine worker did not open the database in time")
        try:
            status, value = parent.recv()
        except (EOFError, OSError) as exc:
            self._kill()
            raise EngineError(f"{self.key}: the engine worker died while opening") from exc
        if status != "ok":
            self._kill()
            raise EngineError(value)
        self.diagnostics, self.build_error = value

    def _kill(self) -> None:
        process, pipe = self._process, self._pipe
        self._process = self._pipe = None
        if pipe is not None:
            pipe.close()
        if process is not None:
            if process.poll() is None:
                process.kill()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def _call(
        self, method: str, *args: Any, timeout_s: float = OPEN_TIMEOUT_S, **kwargs: Any
    ) -> Any:
        """Send one request; ``TimeoutError`` (the worker is killed) or ``ChildProcessError``."""
        if self._process is None:
            self.restarts += 1
            self._start()
        self._pipe.send((method, args, kwargs))
        if not self._pipe.poll(timeout_s):
            self._kill()
            raise TimeoutError(method)
        try:
            status, value = self._pipe.recv()
        except (EOFError, OSError) as exc:
            self._kill()
            raise ChildProcessError(method) from exc
        if status != "ok":
            raise RuntimeError(value)
        return value

    def run(
        self, sql: str, *, capture_state: bool = False, allow_multiple: bool = False
    ) -> ExecResult:
        prepared = self.check_statement(sql, allow_multiple=allow_multiple)
        if isinstance(prepared, ExecResult):
            return prepared
        stype = prepared.statement_type
        wait = self.limits.timeout_s + self.kill_margin_s
        if allow_multiple:
            wait *= max(1, sql.count(";") + 1)
        with self._lock:
            started = time.perf_counter()
            try:
                result = self._call(
                    "run", sql, capture_state=capture_state, allow_multiple=allow_multiple,
                    timeout_s=wait,
                )  # fmt: skip
            except TimeoutError:
                result = failure(
                    stype,
                    ErrorClass.TIMEOUT,
                    f"statement exceeded the {self.limits.timeout_s:g} s limit (worker killed)",
                )
            except ChildProcessError:
                result = failure(
                    stype, ErrorClass.RESOURCE_LIMIT, "the engine worker died (memory)"
                )
            except Exception as exc:  # noqa: BLE001 - never raises
                result = failure(stype, ErrorClass.OTHER, f"engine worker failed: {exc}")
            result.elapsed_s = time.perf_counter() - started
            return result

    def tables(self) -> list[str]:
        with self._lock:
            return self._call("tables")

    def schema_text(self, sample_rows: int = 0) -> str:
        with self._lock:
            return self._call("schema_text", sample_rows)

    def state(self) -> dict[str, list[tuple]]:
        with self._lock:
            return self._call("state")

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                try:
                    self._pipe.send(("close", (), {}))
                    self._process.wait(timeout=5)
                except (OSError, ValueError, subprocess.TimeoutExpired):
                    pass
                self._kill()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            if self._process is not None:
                self._process.kill()
        except Exception:  # noqa: BLE001
            pass
