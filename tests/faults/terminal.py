"""Real ``hcp agent`` processes for fault runs: forked warm, driven through the simulated panel, killed by pid."""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hcp.agent.clock import Clock
from hcp.agent.machine import Machine
from hcp.agent.runtime import Agent
from hcp.config.schema import AgentConfig, load_config
from hcp.device.sim_panel import SimPanel

ZYGOTE = Path(__file__).with_name("zygote.py")


@dataclass(frozen=True)
class AgentSettings:
    """The agent.toml a fault run writes; the defaults keep every cycle quick."""

    device_id: str = "t1"
    port: int = 1883
    batch_size: int = 500
    max_in_flight: int = 4
    resend_after_s: float = 2.0
    keepalive_s: int = 5
    outbox_max_rows: int = 200_000

    def toml(self, data: Path) -> str:
        return f'''[device]
id = "{self.device_id}"
hall_id = "h1"
window_id = "w1"
[broker]
port = {self.port}
keepalive_s = {self.keepalive_s}
reconnect_max_s = 0.5
[data]
dir = "{data}"
outbox_max_rows = {self.outbox_max_rows}
[timing]
response_interval_s = 0
thanks_s = 0.05
[sync]
batch_size = {self.batch_size}
max_in_flight = {self.max_in_flight}
resend_after_s = {self.resend_after_s}
status_interval_s = 5
[clock]
synced = "yes"
[policy]
preset = "henan"
'''


class Zygote:
    """The fork server (``zygote.py``): one Python that forks a warm ``hcp agent`` per spawn."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, str(ZYGOTE)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, bufsize=1)
        self._lock = threading.Lock()

    def spawn(self, config: Path, stdin_fifo: Path, stdout_fifo: Path, log: Path) -> int:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(f"{config}\t{stdin_fifo}\t{stdout_fifo}\t{log}\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline().strip()
        if not answer.isdigit():
            raise RuntimeError(f"zygote could not fork an agent: {answer!r}")
        return int(answer)

    def close(self) -> None:
        """Stop the fork server (its children are not touched); safe twice."""
        proc, self._proc = self._proc, None  # type: ignore[assignment]
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StopDriving(Exception):
    """The agent died (it was killed) while a rating was being driven."""


class PanelDriver:
    """Drives an agent's simulated panel: send input lines, wait for output lines, keep thanked ids."""

    data: Path

    def __init__(self) -> None:
        self.thanked: list[str] = []
        self.thanked_cases: set[str] = set()
        self.lines: queue.Queue[list[str]] = queue.Queue()
        self._feed = -1

    def heard(self, line: str) -> None:
        words = shlex.split(line)
        if words and words[0] == "thanked":
            self.thanked.append(words[1])
            fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
            self.thanked_cases.update(fields.get("cases", "").split(","))
        if words:
            self.lines.put(words)

    def send(self, line: str) -> None:
        os.write(self._feed, (line + "\n").encode())

    def expect(self, *verbs: str, timeout: float = 10.0, screen: str | None = None) -> list[str]:
        """The next line with one of ``verbs`` (and that screen name); StopDriving at the agent's end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                words = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if words[0] == "eof":
                raise StopDriving(f"agent in {self.data} ended")
            if words[0] in verbs and (screen is None or words[0] != "screen" or words[1] == screen):
                return words
        raise AssertionError(f"agent in {self.data}: no {verbs} {screen or ''} within {timeout} s")

    def prompt_and_press(self, case_id: str, score: int) -> None:
        self.send(f"prompt {case_id} I1 营业执照 E1 p-{case_id}")
        self.expect("screen", screen="prompt")
        self.send(f"press {score}")
        if score <= 2:  # a 差评: the terminal asks why
            self.expect("screen", screen="reasons")
            self.send("reason 办事效率")
            self.send("submit")

    def rate(self, case_id: str, score: int = 5) -> str:
        """A whole rating at the panel; the thanked rating id."""
        self.prompt_and_press(case_id, score)
        return self.expect("thanked")[1]

    def rate_or_fault(self, case_id: str, score: int = 5) -> str | None:
        """A rating that may be refused: the thanked id, or None when the fault screen showed instead."""
        self.prompt_and_press(case_id, score)
        words = self.expect("thanked", "screen", screen="fault")
        return words[1] if words[0] == "thanked" else None


class Terminal(PanelDriver):
    """One forked ``hcp agent`` with the simulated panel on two FIFOs."""

    def __init__(self, zygote: Zygote, data: Path, settings: AgentSettings) -> None:
        super().__init__()
        self.zygote, self.data, self.settings = zygote, data, settings
        self.pid = 0
        self._alive = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.data / "agent.toml"
        config.write_text(self.settings.toml(self.data))
        fifo_in, fifo_out = self.data / "panel.in", self.data / "panel.out"
        for fifo in (fifo_in, fifo_out):
            with contextlib.suppress(FileNotFoundError):
                fifo.unlink()
            os.mkfifo(fifo)
        # Neither open may block on a child that died early: O_RDWR on a FIFO never
        # blocks (Linux), and a non-blocking reader is switched back to blocking.
        self._feed = os.open(fifo_in, os.O_RDWR)
        out = os.open(fifo_out, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.fcntl(out, fcntl.F_SETFL, fcntl.fcntl(out, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        self.lines = queue.Queue()
        self.thanked = []
        self._alive.set()
        self.pid = self.zygote.spawn(config, fifo_in, fifo_out, self.data / "agent.log")
        self._reader = threading.Thread(target=self._read, args=(out,), daemon=True)
        self._reader.start()
        self.expect("ready", timeout=20)

    def _read(self, fd: int) -> None:
        # The FIFO has no writer until the child opens it: wait for the first line.
        with open(fd, encoding="utf-8", errors="replace") as stream:
            while True:
                line = stream.readline()
                if not line:
                    if self._alive.is_set() and _exists(self.pid):
                        time.sleep(0.01)  # no writer yet
                        continue
                    break
                self.heard(line)
        self.lines.put(["eof"])

    def kill(self) -> None:
        """kill -9, as a power cut would; returns when the process is gone."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: the agent says offline and closes its outbox."""
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        if not self.pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        deadline = time.monotonic() + 20
        while _exists(self.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        self._alive.clear()
        if self._reader is not None:
            self._reader.join(10)  # every line the agent wrote is read: no thanks goes uncounted
        os.close(self._feed)
        self.pid = 0

    def depth(self) -> int:
        return outbox_depth(self.data / "outbox.sqlite")


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def outbox_ids(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT rating_id FROM ratings")}
    finally:
        conn.close()


def outbox_depth(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM ratings").fetchone()[0]
    finally:
        conn.close()


def integrity_ok(path: Path) -> bool:
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


class InProcessTerminal(PanelDriver):
    """The agent in this process (its own thread), for faults injected into its objects: disk, clock."""

    def __init__(self, data: Path, settings: AgentSettings, clock: Clock | None = None) -> None:
        super().__init__()
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        (data / "agent.toml").write_text(settings.toml(data))
        config = load_config(AgentConfig, data / "agent.toml")
        read_fd, self._feed = os.pipe()
        self._stdin = os.fdopen(read_fd, encoding="utf-8")
        self.agent = Agent(config, [SimPanel(self._stdin, self)],  # type: ignore[arg-type]
                           clock=clock, link_options={"backoff_min_s": 0.05, "backoff_max_s": 0.5})
        # The fault screen stays 10 s on a terminal; a test refusing many ratings cannot wait that long.
        self.agent.machine = Machine(config.policy.load(), config.timing, self.agent.outbox.rated_case_ids(),
                                     fault_s=0.3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.agent.run, args=(self._stop,), daemon=True)
        self._thread.start()
        self.expect("ready")

    # the panel's output stream
    def write(self, text: str) -> int:
        for line in text.splitlines():
            self.heard(line)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(20)
        self.agent.close()
        os.close(self._feed)
        self._stdin.close()

    def depth(self) -> int:
        return outbox_depth(self.data / "outbox.sqlite")
