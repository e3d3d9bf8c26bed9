"""A private PostgreSQL 15 cluster for tests and benchmarks: ``initdb`` + ``pg_ctl`` on a free loopback port.

PostgreSQL refuses to run as root, and CI runs as root: then every server
program runs as the ``postgres`` system user that Debian's package creates
(``runuser -u postgres --``), in a directory of its own under /tmp that it
owns. We reuse that user rather than create one: it exists wherever the
server is installed, has no login shell use here, and creating users from a
test run would leave traces on the machine. As any other user, the programs
run as that user. Either way the test process itself connects over TCP to
127.0.0.1 with ``trust`` authentication: the cluster lives in a private
directory and only for the session.

The cluster runs with ``fsync`` on (a commit is durable, as in production)
but small buffers. :meth:`Cluster.standby` makes a streaming-replication
standby of a running cluster with ``pg_basebackup -R``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BIN = Path(os.environ.get("HCP_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: The cluster's superuser; the same name whoever runs the server.
SUPERUSER = "postgres"
#: The system user that runs the server when the tests run as root.
SERVER_USER = "postgres"
#: What a benchmark's server gets instead of the tests' small buffers: a collector's database server's.
BENCH_SETTINGS = {"shared_buffers": "'256MB'", "max_wal_size": "'2GB'", "wal_buffers": "'16MB'"}

_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "on",
    "synchronous_commit": "on",
    "shared_buffers": "'16MB'",
    "max_connections": "60",
    "wal_level": "replica",
    "max_wal_senders": "4",
    "hot_standby": "on",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


def available() -> bool:
    """Whether PostgreSQL's server programs are installed here."""
    return (BIN / "pg_ctl").is_file() and (BIN / "initdb").is_file()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """One PostgreSQL server: its data directory under ``root``, its port, a log file."""

    def __init__(self, root: Path, name: str = "primary") -> None:
        self.root = root
        self.name = name
        self.data = root / name
        self.log = root / f"{name}.log"
        self.sockets = root / "sock"
        self.port = 0
        self._running = False
        self._databases = 0

    @classmethod
    def create(cls, root: Path | None = None, settings: dict[str, str] | None = None) -> Cluster:
        """A new, started cluster in a fresh directory (``root``, or one under /tmp the server user can reach)."""
        if not available():
            raise RuntimeError(f"PostgreSQL's initdb and pg_ctl are not in {BIN}: run `make deps` "
                               "(scripts/install-deps.sh installs postgresql)")
        cluster = cls(root or make_root())
        try:
            cluster._initdb(settings or {})
            cluster.start()
        except BaseException:
            cluster.close()
            raise
        return cluster

    # -- life ---------------------------------------------------------------

    def start(self) -> None:
        """Start the server on a free port (tried a few times: a port can be taken between probe and bind)."""
        restart = bool(self.port)  # a restart keeps its port: the collectors' URL names it
        for attempt in range(5):
            if not restart:
                self.port = free_port()
            elif attempt:
                time.sleep(1)  # the old server's socket may linger a moment
            options = f"-p {self.port} -k {self.sockets}"
            done = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                             "-o", options, check=False)
            if done.returncode == 0:
                self._running = True
                return
            # A restart after a kill -9 may find the old backends still on their way out.
            if attempt == 4 or not (restart or "could not bind" in self.log_text()):
                raise RuntimeError(f"PostgreSQL {self.name} did not start: {done.stderr.strip()}\n"
                                   f"{self.log_text()[-2000:]}")

    def kill(self) -> None:
        """kill -9 of the postmaster (its backends notice and exit): a crash, recovered at the next start."""
        self._running = False
        self._kill_leftover()

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: no checkpoint, like a power cut once fsynced commits are counted).

        Should ``pg_ctl`` fail, or a start have timed out with the server
        coming up after all, the postmaster of this data directory is killed.
        """
        if self._running:
            self._running = False
            if self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data), check=False).returncode == 0:
                return
        self._kill_leftover()

    def promote(self) -> None:
        """Turn a standby into a primary that accepts writes."""
        self._run("pg_ctl", "promote", "-w", "-D", str(self.data))

    def close(self) -> None:
        """Stop the server and remove its directory; safe twice and after a failed start."""
        self.stop()
        if self.name == "primary":
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- use ----------------------------------------------------------------

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        """A libpq connection string for ``dbname`` as ``user`` over TCP."""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} connect_timeout=10"

    def url(self, dbname: str, user: str = SUPERUSER) -> str:
        """The ``postgresql://`` URL of ``dbname``: what ``--database`` and ``[collector] database`` take."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}?connect_timeout=10"

    def fresh_database(self, template: str = "hcp_template") -> str:
        """The name of a new database copied from ``template`` (by default an empty one): one CREATE DATABASE.

        A template must have no open connection while it is copied; one
        prepared once (e.g. migrated) makes every later copy start from it.
        """
        import psycopg  # the tests' driver; the rest of this module needs none

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'hcp_template'").fetchone():
                conn.execute("CREATE DATABASE hcp_template")
            self._databases += 1
            name = f"hcp_test_{self._databases}"
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing any connection a test left open to it."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def standby(self, name: str = "standby") -> Cluster:
        """A started streaming-replication standby of this cluster (``pg_basebackup -R``), in the same root.

        The copy is not fsynced (``--no-sync``, like ``initdb --no-sync``): a
        test's power cut is ``stop()``, not a lost page cache; the servers
        themselves run with fsync on.
        """
        replica = Cluster(self.root, name)
        try:
            self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                      "-D", str(replica.data), "-R", "-X", "stream", "-c", "fast", "--no-sync")
            replica.start()
        except BaseException:
            replica.close()
            raise
        return replica

    def require_synchronous_standby(self) -> None:
        """Commits wait until a standby has flushed them (``synchronous_standby_names = '*'``): an
        acknowledged transaction is on both servers."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace") if self.log.exists() else ""

    # -- internals ----------------------------------------------------------

    def _initdb(self, settings: dict[str, str]) -> None:
        self.sockets.mkdir(exist_ok=True)
        _give_to_server_user(self.sockets)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# hcp tests\n" + "".join(f"{key} = {value}\n"
                                                    for key, value in {**_SETTINGS, **settings}.items()))

    def _kill_leftover(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return  # no server, or it is gone
        if str(self.data).encode() in command:  # a stale pid file's number may belong to another process by now
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*_as_server_user(), str(BIN / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")
        return done


def make_root() -> Path:
    """A fresh directory under /tmp for a cluster, owned by the user the server runs as."""
    root = Path(tempfile.mkdtemp(prefix="hcp-pg-"))
    _give_to_server_user(root)
    return root


def _as_server_user() -> Sequence[str]:
    return ("runuser", "-u", SERVER_USER, "--") if os.geteuid() == 0 else ()


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, SERVER_USER, SERVER_USER)


def wait_for(condition: Callable[[], object], timeout: float = 10.0, every: float = 0.05) -> None:
    """Poll ``condition()`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout} s")
        time.sleep(every)
