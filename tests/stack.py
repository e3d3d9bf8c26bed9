"""Test helpers: the collector and agents as real ``hcp`` processes, as they run in a hall."""

from __future__ import annotations

import os
import queue
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import now_cst
from hcp.protocol import CaseRecord

#: Run the collector with MqttLink.ack wrapped to kill -9 itself at the first rating
#: message: it dies after committing the rating and before acknowledging it to the broker.
DIE_AT_ACK = """
import os, signal, sys
from unittest import mock
from hcp.sync.mqtt import MqttLink
real_ack = MqttLink.ack
def ack(self, message):
    if message.topic.endswith("/rating"):
        os.kill(os.getpid(), signal.SIGKILL)
    real_ack(self, message)
mock.patch.object(MqttLink, "ack", ack).start()
from hcp.cli import main
sys.exit(main(sys.argv[1:]))
"""


def read_rows(database: Path | str, sql: str) -> list[tuple]:
    """Rows of ``sql`` read from a collector database, SQLite file (read-only) or PostgreSQL URL, as a bystander."""
    if isinstance(database, str) and database.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(database, autocommit=True) as pg:
            return [tuple(row) for row in pg.execute(sql).fetchall()]
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def hcp_command(*args: str, die_at_ack: bool = False) -> list[str]:
    head = [sys.executable, "-c", DIE_AT_ACK] if die_at_ack else [sys.executable, "-m", "hcp.cli"]
    return [*head, "--log-level", "INFO", *args]


class CollectorProcess:
    """``hcp collector`` on a data directory; the database can be read while it runs."""

    def __init__(self, broker, data: Path, policy: str = "henan", database: Path | str | None = None) -> None:
        self.broker, self.data, self.policy = broker, data, policy
        #: An SQLite file (default: in the data directory) or a postgresql:// URL.
        self.database = database or data / "collector.sqlite"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / "collector.log"
        data.mkdir(parents=True, exist_ok=True)

    def prepare(self, devices: dict[str, tuple[str, str]], case_ids: list[str]) -> None:
        """Register terminals and store case records before the collector runs."""
        key = load_or_create_key(self.data / "collector.key")
        with Store.open(self.database, load_profile(self.policy), key) as store:
            for device, (hall, window) in devices.items():
                store.register_device(device, hall, window)
            done = now_cst() - timedelta(minutes=5)
            for first in range(0, len(case_ids), 1000):
                store.add_cases([CaseRecord(case_id=c, hall_id="h1", window_id="w1", item_code="I1",
                                            item_name="营业执照", clerk_id="E1", intake="ok", completed_at=done)
                                 for c in case_ids[first:first + 1000]], now_cst())

    def start(self, die_at_ack: bool = False) -> None:
        args = ["collector", "--broker", f"127.0.0.1:{self.broker.port}", "--data-dir", str(self.data),
                "--policy", self.policy, "--config", str(self._config())]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(hcp_command(*args, die_at_ack=die_at_ack), stdout=log, stderr=log)

    def _config(self) -> Path:
        path = self.data / "collector.toml"
        path.write_text(f'[broker]\nreconnect_max_s = 0.5\n[collector]\ndatabase = "{self.database}"\n')
        return path

    def rows(self) -> list[tuple[str, str]]:
        """(rating_id, current outcome) of every stored rating."""
        return read_rows(self.database, "SELECT rating_id, outcome FROM rating_outcomes")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(20)
        self.proc = None
        return code


@dataclass
class AgentProcess:
    """``hcp agent`` with the simulated panel on its stdin and stdout."""

    broker: object
    data: Path
    device_id: str = "t1"
    proc: subprocess.Popen[str] | None = None
    thanked: list[dict[str, str]] = field(default_factory=list)
    screens: queue.Queue[str] = field(default_factory=queue.Queue)

    def config(self) -> Path:
        path = self.data / "agent.toml"
        self.data.mkdir(parents=True, exist_ok=True)
        path.write_text(f'''[device]
id = "{self.device_id}"
hall_id = "h1"
window_id = "w1"
[broker]
port = {self.broker.port}
reconnect_max_s = 0.5
[data]
dir = "{self.data}"
[timing]
response_interval_s = 0.05
thanks_s = 0.2
[sync]
resend_after_s = 2
[clock]
synced = "yes"
[policy]
preset = "henan"
''')
        return path

    def start(self) -> None:
        log = (self.data / "agent.log").open("a") if self.data.exists() else None
        self.proc = subprocess.Popen(hcp_command("agent", "--config", str(self.config())), text=True,
                                     encoding="utf-8", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log or (self.data / "agent.log").open("a"), bufsize=1)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            words = shlex.split(line)
            if not words:
                continue
            if words[0] == "thanked":
                fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
                self.thanked.append({"rating_id": words[1], **fields})
            elif words[0] == "screen":
                self.screens.put(words[1])

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def rate(self, case_id: str, score: int, timeout: float = 10.0) -> dict[str, str]:
        """A whole rating at the panel: the clerk's prompt, the citizen's press, the thanks."""
        before = len(self.thanked)
        self.send(f"prompt {case_id} I1 营业执照 E1 p-{case_id}")
        self.wait_screen("prompt")
        time.sleep(0.1)
        self.send(f"press {score}")
        if score <= 2:  # a 差评: the terminal asks why
            self.wait_screen("reasons")
            time.sleep(0.1)
            self.send("reason 办事效率")
            time.sleep(0.1)
            self.send("submit")
        wait_for(lambda: len(self.thanked) > before, timeout, f"no thanks for {case_id}")
        self.wait_screen("idle")
        return self.thanked[-1]

    def wait_screen(self, name: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.screens.get(timeout=0.2) == name:
                    return
            except queue.Empty:
                pass
        raise AssertionError(f"screen {name} not shown within {timeout} s")

    def outbox_depth(self) -> int:
        conn = sqlite3.connect(f"file:{self.data / 'outbox.sqlite'}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute("SELECT count(*) FROM ratings").fetchone()[0]
        finally:
            conn.close()

    def kill(self) -> None:
        """kill -9, as a power cut would."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)
