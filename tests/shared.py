"""Test helpers for several collectors on one database: the processes, the database they share, a recording HTTP peer.

:class:`SharedDatabase` is what the ``shared_database`` fixture (tests/test_scaleout.py) gives: where the
collectors' database is and how each collector's config names it. Today it is one SQLite file (WAL,
``BEGIN IMMEDIATE`` and the busy timeout serialize the writers); the PostgreSQL store adds a kind here.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from channel_support import Receiver
from stack import CollectorProcess, read_rows, wait_for


@dataclass(frozen=True)
class SharedDatabase:
    """The database every collector of a test uses, and the data directory (key, logs) they share."""

    kind: str  # sqlite or postgresql
    data: Path
    url: str  # what [collector] database is set to: a file or a postgresql:// URL

    @classmethod
    def sqlite(cls, data: Path) -> SharedDatabase:
        return cls("sqlite", data, str(data / "collector.sqlite"))

    @classmethod
    def postgresql(cls, data: Path, url: str) -> SharedDatabase:
        data.mkdir(parents=True, exist_ok=True)
        return cls("postgresql", data, url)

    def rows(self, sql: str) -> list[tuple]:
        """The rows of ``sql`` (no parameters), read as a bystander on either engine."""
        return read_rows(self.url, sql)

    def scalar(self, sql: str) -> object:
        return self.rows(sql)[0][0]


class SharedCollector(CollectorProcess):
    """``hcp collector`` as one member of a share group: its own id, config and log, the shared database."""

    def __init__(self, broker, database: SharedDatabase, name: str, *, group: str = "hall", extra: str = "",
                 policy: str = "henan") -> None:
        super().__init__(broker, database.data, policy, database=database.url)
        self.name, self.group, self.extra, self.shared = name, group, extra, database
        self.log = database.data / f"{name}.log"

    def _config(self) -> Path:
        path = self.data / f"{self.name}.toml"
        path.write_text(f'[collector]\nid = "{self.name}"\nshare_group = "{self.group}"\n'
                        f'database = "{self.shared.url}"\n[broker]\nreconnect_max_s = 0.5\n{self.extra}',
                        "utf-8")
        return path

    def connects(self) -> int:
        return self.log.read_text("utf-8", "replace").count("connected to 127.0.0.1") if self.log.exists() else 0

    def start_connected(self, timeout: float = 20) -> None:
        before = self.connects()
        self.start()
        wait_for(lambda: self.connects() > before, timeout, f"{self.name} did not connect")

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class Recorder(Receiver):
    """The channels' recording HTTP peer (an SMS gateway, the provincial platform), slow on purpose so senders
    overlap, counting the idempotency keys it received."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(lambda path, body, headers: (time.sleep(delay_s), (200, {}))[1])

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(headers.get("idempotency-key", "") for _path, _body, headers in self.requests)

    def count(self, prefix: str = "") -> int:
        """Distinct keys received that start with ``prefix``."""
        return sum(1 for key in self.keys() if key.startswith(prefix))

    def twice(self) -> dict[str, int]:
        """Keys received more than once."""
        return {key: n for key, n in self.keys().items() if n > 1}
