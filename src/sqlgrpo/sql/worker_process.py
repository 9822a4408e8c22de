"""The sandbox worker process: builds databases and runs statements for its parent.

Started as ``python -m sqlgrpo.sql.worker_process FD`` by :class:`sqlgrpo.sql.worker.SandboxWorker`
and killed by it at the deadline; its address space is capped at the last database build
plus ``max_memory_bytes`` + :data:`ADDRESS_SPACE_SLACK`. A statement that ran out of memory
(``MemoryError``, SQLite's heap limit included) is answered with a *retire* mark and the
process exits: what it did to the allocator (a grown heap, a moved ``mmap`` threshold) would
change how the next statement runs, so its parent starts a fresh worker instead.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import replace
from multiprocessing.connection import Connection

from sqlgrpo.sql.database import DatabaseCache
from sqlgrpo.sql.errors import ErrorClass
from sqlgrpo.sql.sandbox import ExecResult, failure

logger = logging.getLogger(__name__)

#: Address space a worker may use beyond ``max_memory_bytes`` (Python objects, buffers).
ADDRESS_SPACE_SLACK = 64 * 1024 * 1024


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _set_address_space_limit(headroom: int | None) -> None:
    """Cap RLIMIT_AS at the current size plus ``headroom`` bytes (None: lift the cap)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = hard
    if headroom is not None:
        size = _address_space()
        if size is None:
            return
        soft = size + headroom if hard == resource.RLIM_INFINITY else min(size + headroom, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError) as exc:
        logger.debug("could not set RLIMIT_AS: %s", exc)


def serve(conn: Connection) -> None:
    """The worker's loop: build databases and run statements until the parent goes away."""
    limits, max_entries, max_copy_bytes, context_limits = conn.recv()
    # here the statements run in-process: this process is the one killed at the deadline
    cache = DatabaseCache(
        replace(limits, isolation="inline"), max_entries, max_copy_bytes, context_limits
    )
    headroom = limits.max_memory_bytes + ADDRESS_SPACE_SLACK
    _set_address_space_limit(headroom)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if request[0] == "build":
                _set_address_space_limit(None)  # trusted data: the build has its own limits
                try:
                    reply = _build(cache, request)
                finally:
                    _set_address_space_limit(headroom)
            else:
                reply = _run(cache, request)
            conn.send(reply)
        except MemoryError:
            reply = None  # free what the failed reply held before answering
            failed = failure("UNKNOWN", ErrorClass.RESOURCE_LIMIT, "MemoryError")
            conn.send(("result", failed, RETIRE))
            return
        if len(reply) > 2 and reply[2] == RETIRE:
            return  # exit: the parent replaces this process


#: Third element of a ``("result", ...)`` reply after which this worker exits.
RETIRE = "retire"


def ran_out_of_memory(result: ExecResult) -> bool:
    """True when ``result`` failed on a ``MemoryError`` (SQLite's heap limit, RLIMIT_AS)."""
    return result.error_class is ErrorClass.RESOURCE_LIMIT and (
        result.error_message or ""
    ).startswith("MemoryError")


def _build(cache: DatabaseCache, request: tuple) -> tuple:
    _, kind, value = request
    try:
        if kind == "ctx":
            database = cache.get(sql_context=value)
        else:
            database = cache.get(db_path=value)
    except FileNotFoundError as exc:
        return ("raise", "FileNotFoundError", str(exc))
    except (OSError, ValueError) as exc:
        return ("raise", "ValueError", str(exc))
    return ("built", database.key, list(database.diagnostics), database.build_error)


def _run(cache: DatabaseCache, request: tuple) -> tuple:
    _, key, sql, capture_state, allow_multiple = request
    database = cache.peek(key)
    if database is None:
        return ("missing",)
    result = database.run(sql, capture_state=capture_state, allow_multiple=allow_multiple)
    return ("result", result, RETIRE) if ran_out_of_memory(result) else ("result", result)


def _main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn = Connection(int(argv[0]))
    serve(conn)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
