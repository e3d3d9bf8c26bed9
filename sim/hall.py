"""The hall simulation behind ``hcp demo``.

Real parts throughout: a private Mosquitto, the collector and N window agents
as separate ``hcp`` processes, each agent with the simulated panel on its
stdin/stdout. A simulated business system opens cases and sends rating
prompts (over MQTT, or over the clerk's local link while the broker is down);
simulated citizens read each agent's screen lines and press stars. Midway the
broker is stopped and started again. At the end every rating a citizen was
thanked for is compared with what the collector stored.
"""

from __future__ import annotations

import logging
import queue
import random
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import Profile, load_profile
from hcp.domain import Grade, now_cst
from hcp.exc import ProtocolError
from hcp.protocol import CaseRecord, CasesAckMessage, CasesMessage, PromptMessage, Topics, decode, encode
from hcp.sim.broker import Broker
from hcp.sync.exc import LinkDown
from hcp.sync.mqtt import LinkSettings, MqttLink

log = logging.getLogger("hcp.demo")

ITEMS = [("370100-001", "个体工商户设立登记"), ("370100-014", "不动产登记资料查询"),
         ("370100-022", "社会保障卡申领"), ("370100-035", "居民身份证换领"), ("370100-041", "营业执照变更登记")]
#: How simulated citizens score: mostly content, some not.
SCORE_WEIGHTS = {5: 50, 4: 25, 3: 12, 2: 8, 1: 5}


@dataclass
class DemoSettings:
    """What the simulation runs: how many windows and cases, how long the outage is."""

    workdir: Path
    windows: int = 4
    cases_per_window: int = 12
    outage_s: float = 6.0
    policy: str = "ulanqab"
    seed: int = 7
    timeout_s: float = 240.0
    hall_id: str = "hall01"
    #: Show window 1's touchscreen in a desktop window (needs a display).
    show_touch: bool = False


@dataclass
class Thanks:
    """One thanked line from an agent: what a citizen was told was recorded."""

    rating_id: str
    window: str
    kind: str
    cases: str
    score: int
    link_up: bool


@dataclass
class Window:
    """One agent process and the citizen standing at it."""

    index: int
    device_id: str
    window_id: str
    proc: subprocess.Popen[str]
    screens: queue.Queue[tuple[str, dict[str, str]]] = field(default_factory=queue.Queue)
    thanked: list[Thanks] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()


class HallDemo:
    """Runs the simulation; ``run()`` returns the process exit status (0: nothing lost, nothing twice)."""

    def __init__(self, settings: DemoSettings, out=sys.stdout) -> None:
        self.s = settings
        self.out = out
        self.rng = random.Random(settings.seed)
        self.profile: Profile = load_profile(settings.policy)
        self.topics = Topics()
        self.broker = Broker(settings.workdir / "broker")
        self.collector: subprocess.Popen[str] | None = None
        self.windows: list[Window] = []
        self.business: MqttLink | None = None
        # Case records not yet answered on cases/ack, with when they were last sent:
        # a business system re-sends until the collector answers (re-sends are idempotent).
        self.unacked: dict[str, tuple[CaseRecord, float]] = {}
        self.cases_lock = threading.Lock()
        self.outage: tuple[float, float] | None = None
        self.stopping = threading.Event()
        self.online: set[str] = set()
        self.started = time.monotonic()
        self.case_counter = 0
        self.people = [f"1501021990{n:04d}{n % 10}" for n in range(12)]

    # -- processes -------------------------------------------------------------

    def _hcp(self, *args: str, **popen) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "hcp.cli", "--log-level", "WARNING", *args],
                                text=True, encoding="utf-8", **popen)

    def _collector_dir(self) -> Path:
        return self.s.workdir / "collector"

    def start(self) -> None:
        self.s.workdir.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        self.say(f"broker on 127.0.0.1:{self.broker.port}, work directory {self.s.workdir}")
        self._register_devices()
        log_file = (self.s.workdir / "collector.log").open("w")
        self.collector = self._hcp("collector", "--broker", f"127.0.0.1:{self.broker.port}",
                                   "--data-dir", str(self._collector_dir()), "--policy", self.s.policy,
                                   stdout=log_file, stderr=log_file)
        for index in range(self.s.windows):
            self.windows.append(self._start_agent(index))
        self.business = MqttLink(LinkSettings(host="127.0.0.1", port=self.broker.port,
                                              client_id="hcp-demo-business", backoff_max_s=1.0),
                                 self._on_business_message)
        self.business.subscribe(self.topics.cases_ack)
        self.business.subscribe(self.topics.all_status)
        self.business.start()
        self.business.wait_connected(10)
        self._wait_for_terminals()
        threading.Thread(target=self._resend_cases, daemon=True, name="business-resend").start()

    def _register_devices(self) -> None:
        with self._store() as store:
            for index in range(self.s.windows):
                store.register_device(f"{self.s.hall_id}-w{index + 1:02d}", self.s.hall_id, f"w{index + 1:02d}")

    def _store(self) -> Store:
        folder = self._collector_dir()
        return Store.open(folder / "collector.sqlite", self.profile, load_or_create_key(folder / "collector.key"))

    def _start_agent(self, index: int) -> Window:
        window_id = f"w{index + 1:02d}"
        device_id = f"{self.s.hall_id}-{window_id}"
        config = self.s.workdir / "agents" / f"{device_id}.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        touch = self.s.show_touch and index == 0
        config.write_text(_agent_toml(device_id, self.s.hall_id, window_id, index, self.broker.port,
                                      self.s.workdir / "agents" / device_id, self.s.policy, touch), "utf-8")
        log_file = (self.s.workdir / "agents" / f"{device_id}.log").open("w")
        proc = self._hcp("agent", "--config", str(config), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=log_file, bufsize=1)
        window = Window(index, device_id, window_id, proc)
        threading.Thread(target=self._read_agent, args=(window,), daemon=True, name=f"read-{device_id}").start()
        return window

    def _read_agent(self, window: Window) -> None:
        assert window.proc.stdout is not None
        transcript = (self.s.workdir / "agents" / f"{window.device_id}.panel.log").open("w", encoding="utf-8")
        for line in window.proc.stdout:
            transcript.write(f"{time.monotonic() - self.started:8.3f} {line}")
            transcript.flush()
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            if not words:
                continue
            fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
            if words[0] == "screen":
                window.screens.put((words[1], fields))
            elif words[0] == "thanked":
                window.thanked.append(Thanks(words[1], window.window_id, fields.get("kind", "?"),
                                             fields.get("cases", ""), int(fields.get("score", 0)),
                                             fields.get("link") == "up"))
            elif words[0] == "error":
                window.errors.append(line.strip())

    def close(self) -> None:
        self.stopping.set()
        for window in self.windows:
            if window.proc.poll() is None:
                window.proc.terminate()
        for window in self.windows:
            _wait(window.proc)
        if self.business:
            self.business.close()
        if self.collector and self.collector.poll() is None:
            self.collector.terminate()
            _wait(self.collector)
        self.broker.close()

    # -- the business system ------------------------------------------------------

    def _wait_for_terminals(self, timeout: float = 30.0) -> None:
        """Start serving once every terminal says online (its retained status): prompts need a listener."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.online) < len(self.windows):
            time.sleep(0.1)
        self.say(f"{len(self.online)} of {len(self.windows)} terminals online")

    def _on_business_message(self, message) -> None:
        if message.topic == self.topics.cases_ack:
            self._on_cases_ack(message)
        elif b'"online"' in message.payload:
            device = self.topics.device_of(message.topic)
            if device:
                self.online.add(device)

    def _on_cases_ack(self, message) -> None:
        try:
            answer = decode(CasesAckMessage, message.payload)
        except ProtocolError as err:
            log.warning("unreadable cases ack: %s", err)
            return
        with self.cases_lock:
            for result in answer.results:
                self.unacked.pop(result.case_id, None)

    def _resend_cases(self) -> None:
        while not self.stopping.is_set():
            self.stopping.wait(1.0)
            now = time.monotonic()
            with self.cases_lock:
                due = [case for case, sent in self.unacked.values() if now - sent > 3.0]
            if due:
                self._publish_cases(due)

    def _publish_cases(self, cases: list[CaseRecord]) -> None:
        for first in range(0, len(cases), 200):
            chunk = cases[first:first + 200]
            with self.cases_lock:
                for case in chunk:
                    self.unacked[case.case_id] = (case, time.monotonic())
            try:
                assert self.business is not None
                self.business.publish(self.topics.cases, encode(CasesMessage(v=1, cases=chunk)))
            except LinkDown:
                return  # the resend thread tries again once the broker is back

    def send_cases(self, cases: list[CaseRecord]) -> None:
        """Publish case records; they are re-sent until the collector answers for each."""
        self._publish_cases(cases)

    @property
    def cases_unanswered(self) -> int:
        with self.cases_lock:
            return len(self.unacked)

    def new_cases(self, window: Window, count: int, intake: str = "ok") -> list[CaseRecord]:
        code, name = self.rng.choice(ITEMS)
        batch = f"B{self.case_counter + 1:05d}" if count > 1 else None
        person = self.rng.choice(self.people)
        cases = []
        for _ in range(count):
            self.case_counter += 1
            cases.append(CaseRecord(case_id=f"C{self.case_counter:05d}", hall_id=self.s.hall_id,
                                    window_id=window.window_id, item_code=code, item_name=name,
                                    clerk_id=f"E{1000 + window.index}", intake=intake, batch_id=batch,
                                    applicant_id=person, completed_at=now_cst()))
        return cases

    def prompt(self, window: Window, cases: list[CaseRecord]) -> PromptMessage:
        """Ask the window's terminal to prompt: over MQTT, or over the clerk link when the broker is down."""
        first = cases[0]
        prompt = PromptMessage(v=1, prompt_id=f"p-{first.case_id}", case_ids=[c.case_id for c in cases],
                               item_code=first.item_code, item_name=first.item_name, clerk_id=first.clerk_id,
                               expires_at=now_cst() + timedelta(seconds=60))
        try:
            assert self.business is not None
            self.business.publish(self.topics.prompt(window.device_id), encode(prompt))
        except LinkDown:
            self._clerk_link_prompt(window, prompt)
        return prompt

    @staticmethod
    def _clerk_link_prompt(window: Window, prompt: PromptMessage) -> None:
        window.send(f"prompt {','.join(prompt.case_ids)} {prompt.item_code} {shlex.quote(prompt.item_name)} "
                    f"{prompt.clerk_id} {prompt.prompt_id}")

    # -- the citizens ------------------------------------------------------------

    def serve(self, window: Window, plan: list[str]) -> None:
        """Work through the window's plan of cases, one citizen at a time."""
        for step in plan:
            again = self._rated_elsewhere(window) if step == "again" else None
            if again:  # the case exists and was rated at another window: no new record
                cases = again
            else:
                count = 2 if step == "batch" else 1
                cases = self.new_cases(window, count, "failed" if step == "failed" else "ok")
                if step != "late":
                    self.send_cases(cases)
            prompt = self.prompt(window, cases)
            if not self._citizen(window, wait_prompt_s=4.0):
                # The prompt went down with the broker: the clerk presses 请评价 again
                # on the clerk's PC, which reaches the terminal over the clerk link.
                self._clerk_link_prompt(window, prompt)
                self._citizen(window, wait_prompt_s=10.0)
            if step == "late" and not again:
                self.send_cases(cases)

    def _rated_elsewhere(self, window: Window) -> list[CaseRecord] | None:
        """A case already rated at another window: the citizen tries to rate it again here."""
        for other in self.windows:
            if other is not window and other.thanked:
                case_id = other.thanked[0].cases.split(",")[0]
                return [CaseRecord(case_id=case_id, hall_id=self.s.hall_id, window_id=other.window_id,
                                   item_code="x", item_name="x", clerk_id="x", intake="ok",
                                   completed_at=now_cst())]
        return None

    def _citizen(self, window: Window, wait_prompt_s: float, timeout: float = 30.0) -> bool:
        """Wait for the prompt, then react to the screens until the window is idle; False: no prompt came."""
        start = time.monotonic()
        prompted = False
        while time.monotonic() - start < (timeout if prompted else wait_prompt_s):
            try:
                screen, fields = window.screens.get(timeout=1.0)
            except queue.Empty:
                continue
            prompted = prompted or screen == "prompt"
            if not prompted:
                continue  # screens left from before this citizen
            if screen in ("prompt", "hall"):
                # Reading the question takes a person longer than the terminal's response
                # interval, which ignores presses right after the last one.
                time.sleep(self.rng.uniform(0.3, 0.8))
                if screen == "hall" and self.rng.random() < 0.3:
                    window.send("skip")
                else:
                    window.send(f"press {self._score()}")
            elif screen == "reasons" and not fields.get("selected"):
                # Once, on the first reasons screen (each tick shows it again): read, tick two, submit,
                # at a person's pace (the terminal ignores presses right after the star that led here).
                time.sleep(self.rng.uniform(0.3, 0.8))
                offered = [r for r in fields.get("reasons", "").split(",") if r]
                for reason in self.rng.sample(offered, min(2, len(offered))):
                    window.send(f"reason {shlex.quote(reason)}")
                    time.sleep(self.rng.uniform(0.2, 0.5))
                window.send("submit")
            elif screen in ("idle", "expired", "fault"):
                return True
        return prompted

    def _score(self) -> int:
        return self.rng.choices(list(SCORE_WEIGHTS), weights=list(SCORE_WEIGHTS.values()))[0]

    def plan(self, window: Window) -> list[str]:
        steps = ["normal"] * self.s.cases_per_window
        steps[2] = "batch"
        steps[4] = "late"
        if window.index == 0:
            steps[6] = "failed"
        if window.index == 1:
            steps[7] = "again"
        return steps

    # -- the run -------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.start()
            workers = [threading.Thread(target=self.serve, args=(w, self.plan(w)), daemon=True)
                       for w in self.windows]
            for worker in workers:
                worker.start()
            self._outage_midway(workers)
            for worker in workers:
                worker.join(self.s.timeout_s)
            stored = self._wait_for_collector()
        finally:
            self.close()
        return self.report(stored)

    def _outage_midway(self, workers: list[threading.Thread]) -> None:
        total = self.s.windows * self.s.cases_per_window
        while sum(len(w.thanked) for w in self.windows) < total * 0.4 and any(t.is_alive() for t in workers):
            self.progress()
            time.sleep(1.0)
        self.say(f"stopping the broker for {self.s.outage_s:.0f} s")
        start = time.monotonic()
        self.broker.stop()
        while time.monotonic() - start < self.s.outage_s:
            time.sleep(1.0)
            self.progress()
        self.broker.start()
        self.outage = (start, time.monotonic())
        self.say("broker is back")
        while any(t.is_alive() for t in workers):
            time.sleep(1.0)
            self.progress()

    def _thanked(self) -> list[Thanks]:
        return [t for w in self.windows for t in w.thanked]

    def _wait_for_collector(self) -> list[dict]:
        wanted = {t.rating_id for t in self._thanked()}
        deadline = time.monotonic() + 60
        stored: list[dict] = []
        while time.monotonic() < deadline:
            with self._store() as store:
                stored = list(store.export())
            have = {row["rating_id"] for row in stored}
            settled = not any(row["outcome"] == "pending" for row in stored) and not self.cases_unanswered
            if wanted <= have and settled:
                break
            self.progress(len(have & wanted))
            time.sleep(1.0)
        return stored

    def progress(self, at_collector: int | None = None) -> None:
        state = "up" if self.broker.running else "DOWN"
        extra = "" if at_collector is None else f", at the collector {at_collector}"
        self.say(f"broker {state}, ratings thanked {len(self._thanked())}{extra}")

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", file=self.out, flush=True)

    # -- the verdict ---------------------------------------------------------------------

    def report(self, stored: list[dict]) -> int:
        thanked = self._thanked()
        result = check(thanked, stored, self.profile)
        self.out.write("\n" + format_table(result, self.windows) + "\n")
        errors = [e for w in self.windows for e in w.errors]
        for error in errors:
            self.out.write(f"panel error: {error}\n")
        ok = result.lost == 0 and result.twice == 0 and result.unexpected == 0 and thanked
        self.out.write("\nRESULT: " + ("PASS: nothing lost, nothing counted twice\n" if ok else "FAIL\n"))
        return 0 if ok else 1


@dataclass
class Check:
    """Every thanked rating against the collector's store."""

    per_window: dict[str, Counter[str]]
    lost: int
    twice: int
    unexpected: int
    total: int


def check(thanked: list[Thanks], stored: list[dict], profile: Profile) -> Check:
    """Sort thanked ratings into what the collector made of them; count lost, twice and unexpected."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    for row in stored:
        by_id[row["rating_id"]].append(row)
    per_window: dict[str, Counter[str]] = defaultdict(Counter)
    lost = 0
    for t in thanked:
        counts = per_window[t.window]
        counts["ratings"] += 1
        counts[t.kind] += 1
        counts["offline"] += 0 if t.link_up else 1
        rows = by_id.get(t.rating_id)
        if not rows:
            lost += 1
            counts["lost"] += 1
            continue
        outcome = rows[0]["outcome"]
        counts[outcome] += 1
        if outcome == "accepted":
            counts[profile.grade(t.score).value] += 1
    twice = sum(len(rows) - 1 for rows in by_id.values()) + _units_counted_twice(stored)
    unexpected = len(set(by_id) - {t.rating_id for t in thanked})
    return Check(per_window, lost, twice, unexpected, len(thanked))


def _units_counted_twice(stored: list[dict]) -> int:
    """Cases with more than one accepted service rating."""
    per_case = Counter(case_id for row in stored if row["outcome"] == "accepted" and row["kind"] == "service"
                       for case_id in row["case_ids"])
    return sum(n - 1 for n in per_case.values() if n > 1)


def format_table(result: Check, windows: list[Window]) -> str:
    head = (f"{'window':<8}{'ratings':>8}{'service':>8}{'hall':>6}{'好评':>5}{'中评':>5}{'差评':>5}"
            f"{'pending':>8}{'dup':>5}{'rejected':>9}{'offline':>8}{'lost':>6}")
    lines = [head, "-" * len(head.encode("gbk"))]
    total: Counter[str] = Counter()
    for window in windows:
        c = result.per_window.get(window.window_id, Counter())
        total.update(c)
        lines.append(_row(window.window_id, c))
    lines.append("-" * len(head.encode("gbk")))
    lines.append(_row("all", total))
    lines.append("\nratings: thanked on the terminal; 好评/中评/差评: accepted ones by grade; dup: a case or batch "
                 "already rated,\nor a second hall rating by the same person that day; rejected: a failed intake; "
                 "offline: thanked\nwhile the terminal's link was down (buffered in its outbox); lost: thanked but "
                 "not at the collector.")
    lines.append(f"\nthanked {result.total}, lost {result.lost}, counted twice {result.twice}, "
                 f"stored but never thanked {result.unexpected}")
    return "\n".join(lines)


def _row(name: str, c: Counter[str]) -> str:
    return (f"{name:<8}{c['ratings']:>8}{c['service']:>8}{c['hall']:>6}{c[Grade.GOOD.value]:>7}"
            f"{c[Grade.NEUTRAL.value]:>7}{c[Grade.BAD.value]:>7}{c['pending']:>8}{c['duplicate']:>5}"
            f"{c['rejected']:>9}{c['offline']:>8}{c['lost']:>6}")


def _agent_toml(device_id: str, hall_id: str, window_id: str, index: int, port: int, data: Path,
                policy: str, touch: bool = False) -> str:
    # With touch, the simulated citizen still presses through the sim panel; the
    # touchscreen shows what the terminal shows, in a desktop window.
    kinds = '["sim", "touch"]' if touch else '["sim"]'
    display = "\n[display]\nfullscreen = false\nhide_cursor = false\n" if touch else ""
    return f'''# Written by hcp demo: one window terminal with the simulated panel.
[device]
id = "{device_id}"
hall_id = "{hall_id}"
window_id = "{window_id}"
hall_name = "示例市政务服务大厅"
window_name = "{index + 1}号窗口"

[broker]
host = "127.0.0.1"
port = {port}

[data]
dir = "{data}"

[timing]
prompt_timeout_s = 30
response_interval_s = 0.2
reasons_timeout_s = 5
hall_timeout_s = 5
thanks_s = 0.3

[sync]
resend_after_s = 5
status_interval_s = 5

[frontend]
kinds = {kinds}
{display}
[clock]
synced = "yes"

[policy]
preset = "{policy}"
'''


def _wait(proc: subprocess.Popen[str]) -> None:
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
