"""Entry point of an engine worker: ``python -m sqlgrpo.sql.engines.worker_main FD``
(started by :class:`sqlgrpo.sql.engines.isolated.IsolatedEngine`)."""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

from sqlgrpo.sql.engines.isolated import serve

if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
