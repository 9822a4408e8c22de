"""A throwaway PostgreSQL cluster for the tests and benchmarks: ``initdb`` in a temporary
folder, a Unix socket in that folder and no TCP port, stopped and deleted at the end.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (the
Debian package creates it), else as ``nobody``, through ``runuser``. The binaries are found on
``PATH`` or in ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Where Debian and Ubuntu put the server programs (not on PATH).
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"


class ClusterUnavailable(RuntimeError):
    """No server could be started; the message says why."""


def server_bin_dir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob(DEBIAN_BIN_GLOB), key=lambda p: int(Path(p).parent.name.split(".")[0])
    )
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _server_user() -> str | None:
    """The user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ClusterUnavailable("running as root and neither a 'postgres' nor a 'nobody' user")


class PgCluster:
    """``with PgCluster() as cluster: cluster.url("dbname")``."""

    def __init__(self) -> None:
        self.bin = server_bin_dir()
        if self.bin is None:
            raise ClusterUnavailable(
                "PostgreSQL server programs not found (initdb on PATH or in "
                f"{DEBIAN_BIN_GLOB}); install Debian's 'postgresql' package"
            )
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="sqlgrpo-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False

    def _as_server_user(self, *argv: str) -> subprocess.CompletedProcess:
        command = list(argv)
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/")

    def start(self) -> PgCluster:
        """initdb + pg_ctl start; :class:`ClusterUnavailable` with the server's words."""
        if self.user is not None:
            info = pwd.getpwnam(self.user)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        os.chmod(self.root, 0o700)
        done = self._as_server_user(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            self.cleanup()
            raise ClusterUnavailable(
                f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}"
            )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories={self.root} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        done = self._as_server_user(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.log), "-w", "-t", "60", "start",
        )  # fmt: skip
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-500:] if self.log.exists() else ""
            self.cleanup()
            raise ClusterUnavailable(f"pg_ctl start failed: {done.stderr.strip()} {log}")
        self.started = True
        return self

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """A libpq URL for the socket in the cluster's folder."""
        return f"postgresql://{user}@/{dbname}?host={self.root}"

    def stop(self) -> None:
        """Stop the server (immediate) and delete its folder."""
        if self.started:
            self._as_server_user(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
            )
            self.started = False
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def admin_sql(url: str, *statements: str) -> None:
    """Run trusted statements in autocommit (CREATE DATABASE, roles, fixtures)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
