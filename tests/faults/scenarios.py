"""Fault scenarios: each a loop bounded by a count and a time, returning the checker's figures.

Every scenario runs real processes where the fault is a process's fate (a
private Mosquitto, ``hcp collector``, ``hcp agent`` forked warm by the zygote)
and the agent in this process where the fault is injected into its objects
(disk, clock). Sizes come from :class:`Sizes`: ``Sizes.ci()`` keeps the whole
suite to a couple of minutes on two cores, ``Sizes.long()`` is the long run.
"""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from unittest import mock

from checker import Figures, check, collector_ratings, collector_sound, collector_sound_pg
from proxy import Proxy
from shared import SharedCollector, SharedDatabase
from stack import CollectorProcess, wait_for
from terminal import AgentSettings, InProcessTerminal, PanelDriver, StopDriving, Terminal, Zygote, integrity_ok

from hcp.agent.clock import Clock
from hcp.domain import Kind, now_cst
from hcp.protocol import AckMessage, Topics, decode
from hcp.sim.broker import Broker
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink
from hcp.sync.outbox import Draft, Outbox

SCORES = (5, 5, 5, 4, 4, 3, 2, 1)


@dataclass(frozen=True)
class Sizes:
    """How big each scenario runs."""

    agent_kills: int
    collector_kills: int
    postgres_restarts: int
    broker_kills: int
    cuts: int
    backlog: int
    outage_s: float
    queued_ratings: int
    replays: int
    time_limit_s: float
    shared_kills: int = 4
    shared_terminals: int = 3

    @classmethod
    def ci(cls) -> Sizes:
        return cls(agent_kills=100, collector_kills=4, postgres_restarts=4, broker_kills=4, cuts=4, backlog=2_000,
                   outage_s=2.0, queued_ratings=30, replays=100, time_limit_s=90, shared_kills=6, shared_terminals=3)

    @classmethod
    def long(cls) -> Sizes:
        return cls(agent_kills=10_000, collector_kills=100, postgres_restarts=100, broker_kills=100, cuts=100,
                   backlog=100_000, outage_s=60.0, queued_ratings=2_000, replays=100, time_limit_s=3 * 3600,
                   shared_kills=300, shared_terminals=12)


class Rig:
    """A broker, a collector on it, and names for cases; one per scenario."""

    def __init__(self, work: Path, zygote: Zygote, broker_conf: str = "", database: str | None = None) -> None:
        self.work, self.zygote = work, zygote
        self.broker = Broker(work / "broker", extra_conf=broker_conf)
        self.broker.start()
        self.collector = CollectorProcess(self.broker, work / "collector", database=database)
        self._cases = 0

    def prepare(self, devices: list[str], cases: int) -> None:
        self.collector.prepare({d: ("h1", "w1") for d in devices}, [f"K{n:07d}" for n in range(cases)])

    def case(self) -> str:
        self._cases += 1
        return f"K{self._cases - 1:07d}"

    def start_collector(self, die_at_ack: bool = False) -> None:
        before = self._connects()
        self.collector.start(die_at_ack=die_at_ack)
        wait_for(lambda: self._connects() > before, 20, "the collector did not connect")

    def _connects(self) -> int:
        log = self.collector.log
        return log.read_text("utf-8", "replace").count("connected to 127.0.0.1") if log.exists() else 0

    def settings(self, device_id: str, **kw: object) -> AgentSettings:
        return AgentSettings(device_id=device_id, port=self.broker.port, **kw)  # type: ignore[arg-type]

    def stored(self):
        return collector_ratings(self.collector.database)

    def close(self) -> None:
        self.collector.stop(signal.SIGKILL)
        self.broker.kill()


@contextmanager
def rig(work: Path, zygote: Zygote, broker_conf: str = "", database: str | None = None) -> Iterator[Rig]:
    r = Rig(work, zygote, broker_conf, database)
    try:
        yield r
    finally:
        r.close()


class Stream:
    """A steady stream of ratings at one panel on a thread of its own, until stopped."""

    def __init__(self, terminal: PanelDriver, rig_: Rig, rng: random.Random) -> None:
        self.terminal, self.rig, self.rng = terminal, rig_, rng
        self.pressed: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            case = self.rig.case()
            self.pressed.append(case)
            try:
                self.terminal.rate(case, self.rng.choice(SCORES))
            except (AssertionError, StopDriving) as err:
                self.errors.append(str(err))
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def drained(terminal: PanelDriver, timeout: float, what: str) -> None:
    wait_for(lambda: terminal.depth() == 0, timeout, f"{what}: the outbox did not drain")  # type: ignore[attr-defined]


def _bounded(count: int, limit_s: float) -> Iterator[int]:
    start = time.monotonic()
    for n in range(count):
        if time.monotonic() - start > limit_s:
            return
        yield n


# ---- kill -9 of the agent ------------------------------------------------------

def _kill_point(terminal: Terminal, case: str, thanked: bool) -> str:
    conn = sqlite3.connect(f"file:{terminal.data / 'outbox.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        waiting = conn.execute("SELECT count(*) FROM ratings WHERE body LIKE ?",
                               [f'%"case_ids":["{case}"]%']).fetchone()[0]
    finally:
        conn.close()
    if thanked:
        return "thanks..delete" if waiting else "after delete"
    return "commit..thanks" if waiting else "before commit"


def agent_kill(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """kill -9 of the agent at random points of press → commit → thanks → publish → ack → delete."""
    figures = Figures("agent kill -9")
    points: Counter[str] = Counter()
    thanked: list[str] = []
    pressed: list[str] = []
    with rig(work, zygote) as r:
        r.prepare(["t-kill"], sizes.agent_kills * 4 + 10)
        r.start_collector()
        terminal = Terminal(zygote, work / "agent", r.settings("t-kill"))
        for _ in _bounded(sizes.agent_kills, sizes.time_limit_s):
            terminal.start()
            case = ""
            try:
                for _ in range(rng.randint(0, 2)):
                    case = r.case()
                    pressed.append(case)
                    terminal.rate(case, rng.choice(SCORES))
                case = r.case()
                pressed.append(case)
                terminal.prompt_and_press(case, rng.choice(SCORES))
                if rng.random() < 0.5:  # after the thanks: publish, ack and delete are under way
                    terminal.expect("thanked")
                time.sleep(rng.uniform(0, 0.03))
            except StopDriving:
                pass
            terminal.kill()
            points[_kill_point(terminal, case, case in terminal.thanked_cases)] += 1
            thanked += terminal.thanked
            figures.notes["cycles"] = figures.notes.get("cycles", 0) + 1  # type: ignore[operator]
        terminal.start()  # the last restart: everything left is delivered
        drained(terminal, 120, "agent kill")
        terminal.stop()
        thanked += terminal.thanked
        if not integrity_ok(terminal.data / "outbox.sqlite"):
            figures.problems.append("outbox integrity_check failed")
        check(figures, thanked, pressed, r.stored())
    figures.notes.update({f"killed {k}": v for k, v in sorted(points.items())})
    return figures


# ---- kill -9 of the collector and of the broker under a steady stream ----------

def _under_stream(name: str, work: Path, zygote: Zygote, count: int, sizes: Sizes, rng: random.Random,
                  fault: Callable[[Rig, int], None], database: str | None = None) -> Figures:
    figures = Figures(name)
    with rig(work, zygote, database=database) as r:
        r.prepare(["t-stream"], 20_000)
        r.start_collector()
        terminal = Terminal(zygote, work / "agent", r.settings("t-stream"))
        terminal.start()
        stream = Stream(terminal, r, rng)
        start = time.monotonic()
        for n in _bounded(count, sizes.time_limit_s):
            time.sleep(rng.uniform(0.3, 1.5))
            fault(r, n)
        stream.stop()
        figures.problems += stream.errors
        drained(terminal, 120, name)
        terminal.stop()
        figures.notes.update(faults=count, rate=f"{len(stream.pressed) / (time.monotonic() - start):.0f}/s")
        check(figures, terminal.thanked, stream.pressed, r.stored())
    return figures


def collector_kill(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """kill -9 of the collector at random moments, and (every other time) exactly between its commit and ack."""
    def fault(r: Rig, n: int) -> None:
        if n % 2:  # DIE_AT_ACK: it commits the next rating message, then kills itself before the MQTT ack
            r.collector.stop(signal.SIGKILL)
            r.collector.start(die_at_ack=True)
            assert r.collector.proc is not None
            r.collector.proc.wait(30)
            r.collector.proc = None
        else:
            r.collector.stop(signal.SIGKILL)
            time.sleep(rng.uniform(0, 0.5))
        r.start_collector()
    return _under_stream("collector -9", work, zygote, sizes.collector_kills, sizes, rng, fault)


def broker_kill(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """kill -9 of Mosquitto (what it had not autosaved is gone) and a restart on the same port."""
    def fault(r: Rig, n: int) -> None:
        r.broker.kill()
        time.sleep(rng.uniform(0, 1.0))
        r.broker.start()
    return _under_stream("broker -9", work, zygote, sizes.broker_kills, sizes, rng, fault)


def postgres_restart(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """The collector on PostgreSQL: the server stopped at once (``pg_ctl -m immediate``, a crash: no
    checkpoint) or killed -9, at random moments under the stream, and started again."""
    from pg import Cluster

    with Cluster.create() as cluster:  # in a folder the server user can reach
        url = cluster.url(cluster.fresh_database())

        def fault(r: Rig, n: int) -> None:
            if n % 2:
                cluster.kill()
            else:
                cluster.stop("immediate")
            time.sleep(rng.uniform(0, 1.5))
            cluster.start()

        figures = _under_stream("postgres restart", work, zygote, sizes.postgres_restarts, sizes, rng, fault,
                                database=url)
        figures.problems += collector_sound_pg(url)
    return figures


def postgres_failover(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """A primary with a synchronous streaming standby; kill -9 of the primary under the stream, the standby
    promoted (``pg_ctl promote``). The collector's URL names both hosts (``target_session_attrs=read-write``):
    it finds the new primary by itself. Every acknowledged rating must be there, none twice, the chain whole."""
    from pg import Cluster

    with Cluster.create() as primary, primary.standby() as standby:
        primary.require_synchronous_standby()
        name = primary.fresh_database()
        url = (f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{name}"
               "?target_session_attrs=read-write&connect_timeout=5")

        def fault(r: Rig, n: int) -> None:
            if n == 0:
                primary.kill()
                time.sleep(rng.uniform(0, 1.0))
                standby.promote()

        figures = _under_stream("postgres failover", work, zygote, 2, sizes, rng, fault, database=url)
        figures.problems += collector_sound_pg(standby.url(name))
    return figures


# ---- three collectors sharing the stream: kill -9 of one of them ----------------

class _Cases:
    """Case names for streams that share them."""

    def __init__(self) -> None:
        self._next, self._lock = 0, threading.Lock()

    def case(self) -> str:
        with self._lock:
            self._next += 1
            return f"K{self._next - 1:07d}"


def shared_kill(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """Three collectors in one share group on one SQLite file; kill -9 of one at random (every other time
    between its commit and its ack) under a steady stream from several terminals. What a dead collector held,
    the broker does not pass on (eclipse/mosquitto #2662): the terminals resend it and another collector
    answers."""
    return _shared_kill("shared -9", work, zygote, sizes, rng, SharedDatabase.sqlite(work / "collectors"))


def shared_kill_pg(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """:func:`shared_kill` with the three collectors on one PostgreSQL database."""
    from pg import Cluster

    with Cluster.create() as cluster:
        url = cluster.url(cluster.fresh_database())
        figures = _shared_kill("shared -9 (PostgreSQL)", work, zygote, sizes, rng,
                               SharedDatabase.postgresql(work / "collectors", url))
        figures.problems += collector_sound_pg(url)
    return figures


def _shared_kill(name: str, work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random,
                 database: SharedDatabase) -> Figures:
    figures = Figures(name)
    broker = Broker(work / "broker")
    broker.start()
    collectors = [SharedCollector(broker, database, f"collector-{n}") for n in range(3)]
    devices = [f"t-shared{n}" for n in range(sizes.shared_terminals)]
    terminals: list[Terminal] = []
    try:
        collectors[0].prepare({d: ("h1", "w1") for d in devices}, [f"K{n:07d}" for n in range(40_000)])
        for collector in collectors:
            collector.start_connected()
        cases = _Cases()
        for device in devices:
            terminals.append(Terminal(zygote, work / device, AgentSettings(device_id=device, port=broker.port)))
            terminals[-1].start()
        streams = [Stream(t, cases, rng) for t in terminals]  # type: ignore[arg-type]
        start, kills = time.monotonic(), Counter()
        for n in _bounded(sizes.shared_kills, sizes.time_limit_s):
            time.sleep(rng.uniform(0.3, 1.2))
            victim = rng.choice(collectors)
            kills[victim.name] += 1
            _kill_member(victim, at_ack=bool(n % 2), pause_s=rng.uniform(0, 0.5))
        for stream in streams:
            stream.stop()
            figures.problems += stream.errors
        for terminal in terminals:
            drained(terminal, 120, "shared kill")
        elapsed = time.monotonic() - start
        for terminal in terminals:
            terminal.stop()
        pressed = [case for stream in streams for case in stream.pressed]
        figures.notes.update(collectors=3, terminals=len(terminals), kills=dict(sorted(kills.items())),
                             rate=f"{len(pressed) / elapsed:.0f}/s")
        check(figures, [r for t in terminals for r in t.thanked], pressed,
              collector_ratings(database.url if database.kind == "postgresql" else Path(database.url)))
    finally:
        for collector in collectors:
            collector.kill()
        broker.kill()
    return figures


def _kill_member(collector: SharedCollector, *, at_ack: bool, pause_s: float) -> None:
    """kill -9 one member, or let it commit its next rating message and die before the ack; then restart it."""
    collector.kill()
    if at_ack:
        collector.start(die_at_ack=True)
        assert collector.proc is not None
        try:
            collector.proc.wait(30)  # its share of the stream reaches it within a second or two
        finally:
            collector.kill()
    else:
        time.sleep(pause_s)
    collector.start_connected()


# ---- the network between terminal and broker -----------------------------------

def fill_backlog(outbox_path: Path, cases: list[str]) -> list[str]:
    """Ratings committed straight into the outbox (as a long outage leaves them); their ids."""
    made: list[str] = []
    rated = now_cst() - timedelta(minutes=1)
    with Outbox(outbox_path, max_rows=len(cases) + 100_000) as outbox:
        for first in range(0, len(cases), 5000):
            made += [r.rating_id for r in outbox.add_many(
                Draft(kind=Kind.SERVICE, case_ids=(case,), score=5, rated_at=rated, clock_synced=True,
                      hall_id="h1", window_id="w1") for case in cases[first:first + 5000])]
    return made


def network_cut(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """An outage with a backlog, then drops and stalls of the terminal's connection while it drains."""
    figures = Figures("network cut")
    with rig(work, zygote) as r:
        r.prepare(["t-net"], sizes.backlog + 20_000)
        r.start_collector()
        with Proxy(r.broker.port) as proxy:
            terminal = Terminal(zygote, work / "agent", AgentSettings(device_id="t-net", port=proxy.port))
            backlog_cases = [r.case() for _ in range(sizes.backlog)]
            backlog = fill_backlog(work / "agent" / "outbox.sqlite", backlog_cases)
            proxy.drop()  # the outage: the terminal starts with its link down
            terminal.start()
            stream = Stream(terminal, r, rng)
            time.sleep(sizes.outage_s)
            proxy.heal()
            start = time.monotonic()
            for n in _bounded(sizes.cuts, sizes.time_limit_s):
                time.sleep(rng.uniform(0.2, 1.0))
                (proxy.stall if n % 2 else proxy.drop)()
                time.sleep(rng.uniform(0.5, 3.0))
                proxy.heal()
            stream.stop()
            figures.problems += stream.errors
            drained(terminal, 600, "network cut")
            elapsed = time.monotonic() - start
            terminal.stop()
            figures.notes.update(backlog=sizes.backlog, outage_s=sizes.outage_s, cuts=sizes.cuts,
                                 connections=proxy.connections, drain_s=f"{elapsed:.1f}")
        check(figures, backlog + terminal.thanked, backlog_cases + stream.pressed, r.stored())
    return figures


# ---- the broker's queue limit ---------------------------------------------------

def queue_limit(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """max_queued_messages exceeded while the collector is away: the broker drops, the outbox resends."""
    figures = Figures("queue limit")
    with rig(work, zygote, "max_queued_messages 5\nsys_interval 1\n") as r:
        r.prepare(["t-queue"], sizes.queued_ratings + 10)
        r.start_collector()  # its persistent session exists from now on
        r.collector.stop()
        terminal = Terminal(zygote, work / "agent",
                            r.settings("t-queue", batch_size=1, max_in_flight=8, resend_after_s=1.0))
        terminal.start()
        pressed = [r.case() for _ in range(sizes.queued_ratings)]
        for case in pressed:
            terminal.rate(case, rng.choice(SCORES))
        time.sleep(2.5)  # resends pile up in the collector's queue too
        dropped = broker_dropped(r.broker)
        r.start_collector()
        drained(terminal, 120, "queue limit")
        terminal.stop()
        figures.notes.update(broker_dropped=dropped, queue_limit=5)
        if not dropped:
            figures.problems.append("the broker dropped nothing: the scenario did not exceed its queue")
        check(figures, terminal.thanked, pressed, r.stored())
    return figures


def broker_dropped(broker: Broker) -> int:
    """Mosquitto's own count of messages it dropped ($SYS), via mosquitto_sub."""
    sub = shutil.which("mosquitto_sub")
    if sub is None:
        return -1
    out = subprocess.run([sub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "$SYS/broker/publish/messages/dropped",
                          "-C", "1", "-W", "5"], capture_output=True, text=True, check=False).stdout.strip()
    return int(out) if out.isdigit() else -1


# ---- the terminal's disk ----------------------------------------------------------

def disk_faults(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """Disk full (SQLite max_page_count) and I/O errors on insert and on settle, in the agent's own process."""
    figures = Figures("disk full/io")
    pressed: list[str] = []
    refused = 0
    with rig(work, zygote) as r:
        r.prepare(["t-disk"], 500)
        r.start_collector()
        terminal = InProcessTerminal(work / "agent", r.settings("t-disk"))
        outbox = terminal.agent.outbox
        try:
            def press(expect_refused: bool | None) -> None:
                nonlocal refused
                case = r.case()
                pressed.append(case)
                got = terminal.rate_or_fault(case, rng.choice(SCORES))
                refused += got is None
                if expect_refused is not None and (got is None) != expect_refused:
                    figures.problems.append(f"{case}: {'refused' if got is None else 'thanked'} unexpectedly")

            for _ in range(5):
                press(False)
            drained(terminal, 30, "before the disk filled")
            r.collector.stop()  # no acks, so no deletes free pages while the disk is full
            with outbox._lock:  # the disk is full: not one more page
                pages = outbox._db.conn.execute("PRAGMA page_count").fetchone()[0]
                outbox._db.conn.execute(f"PRAGMA max_page_count = {pages}")
            for _ in range(60):
                press(None)
                if refused:
                    break
            for _ in range(5):
                press(True)
            with outbox._lock:  # space again
                outbox._db.conn.execute("PRAGMA max_page_count = 1073741823")
            press(False)
            with mock.patch.object(Outbox, "_insert", side_effect=sqlite3.OperationalError("disk I/O error")):
                for _ in range(3):
                    press(True)
            press(False)
            r.start_collector()
            # I/O errors when deleting acked rows: acks cannot be settled; resends are answered again later.
            with mock.patch.object(Outbox, "_delete", _failing_delete):
                for _ in range(5):
                    press(False)
                time.sleep(3)
                if terminal.depth() == 0:
                    figures.problems.append("rows were deleted despite the injected I/O error")
            drained(terminal, 60, "after the disk faults")
            if not outbox.integrity_ok():
                figures.problems.append("outbox integrity_check failed")
        finally:
            terminal.close()
        figures.notes.update(refused=refused)
        check(figures, terminal.thanked, pressed, r.stored())
    return figures


def _failing_delete(self: Outbox, answers: object) -> int:
    """Outbox._delete meeting an I/O error where SQLite would raise it: inside its error translation."""
    with self._sqlite_errors("settle acknowledged ratings"):
        raise sqlite3.OperationalError("disk I/O error")


# ---- the terminal's clock ---------------------------------------------------------

class JumpingClock(Clock):
    """A wall clock the test moves; boot id and uptime stay real (the monotonic truth)."""

    def __init__(self) -> None:
        self.offset = timedelta()
        super().__init__("yes", now=lambda: now_cst() + self.offset)


JUMPS = [timedelta(hours=1), timedelta(hours=-1), timedelta(days=-1), timedelta(days=365), timedelta(seconds=-30),
         timedelta(days=-3650), timedelta(minutes=5), timedelta()]


def clock_jumps(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """The wall clock steps back and forth, between ratings and between a prompt and its press."""
    figures = Figures("clock jumps")
    pressed: list[str] = []
    clock = JumpingClock()
    with rig(work, zygote) as r:
        r.prepare(["t-clock"], 200)
        r.start_collector()
        terminal = InProcessTerminal(work / "agent", r.settings("t-clock"), clock=clock)
        try:
            for jump in JUMPS:
                clock.offset = jump
                for _ in range(2):
                    case = r.case()
                    pressed.append(case)
                    terminal.rate(case, rng.choice(SCORES))
                    terminal.expect("screen", screen="idle")  # the thanks screen ends whatever the clock did
                case = r.case()  # a step while the prompt is open
                pressed.append(case)
                terminal.send(f"prompt {case} I1 营业执照 E1 p-{case}")
                terminal.expect("screen", screen="prompt")
                clock.offset -= jump
                terminal.send("press 5")
                terminal.expect("thanked")
                terminal.expect("screen", screen="idle")
            drained(terminal, 60, "clock jumps")
        finally:
            terminal.close()
        stored = r.stored()
        figures.notes.update(jumps=len(JUMPS) * 2, outcomes=dict(Counter(s.outcome for s in stored)))
        check(figures, terminal.thanked, pressed, stored)
    return figures


# ---- the same ratings replayed ---------------------------------------------------

def replay(work: Path, zygote: Zygote, sizes: Sizes, rng: random.Random) -> Figures:
    """Every rating message the terminal sent is delivered again ``replays`` times (an old SD image, a bug)."""
    figures = Figures("replay x100")
    topics = Topics()
    sent: list[bytes] = []
    answers: Counter[str] = Counter()
    with rig(work, zygote) as r:
        r.prepare(["t-replay"], 100)
        r.start_collector()
        tap = MqttLink(LinkSettings("127.0.0.1", r.broker.port, "fault-tap", clean_start=True, session_expiry_s=0),
                       lambda m: sent.append(m.payload) if m.topic.endswith("/rating") else None)
        tap.subscribe(topics.rating("t-replay"))
        tap.start()
        assert tap.wait_connected(10)
        terminal = Terminal(zygote, work / "agent", r.settings("t-replay", batch_size=5))
        terminal.start()
        pressed = [r.case() for _ in range(20)]
        for case in pressed:
            terminal.rate(case, rng.choice(SCORES))
        drained(terminal, 30, "replay")
        before = sorted(r.collector.rows())

        def heard(message: Incoming) -> None:
            for result in decode(AckMessage, message.payload).results:
                answers[result.outcome.value] += 1
        ear = MqttLink(LinkSettings("127.0.0.1", r.broker.port, "fault-ear", clean_start=True, session_expiry_s=0),
                       heard)
        ear.subscribe(topics.ack("t-replay"))
        ear.start()
        assert ear.wait_connected(10)
        time.sleep(0.3)
        answers.clear()
        expected = sum(payload.count(b'"rating_id"') for payload in sent) * sizes.replays
        for _ in range(sizes.replays):
            for payload in sent:
                tap.publish(topics.rating("t-replay"), payload)
        wait_for(lambda: sum(answers.values()) >= expected, 120, "not every replayed rating was answered")
        terminal.stop()
        tap.close()
        ear.close()
        if sorted(r.collector.rows()) != before:
            figures.problems.append("the collector's rows changed under replay")
        figures.notes.update(replayed=expected, answers=dict(answers))
        check(figures, terminal.thanked, pressed, r.stored())
    return figures


SCENARIOS: dict[str, Callable[[Path, Zygote, Sizes, random.Random], Figures]] = {
    "agent_kill": agent_kill,
    "collector_kill": collector_kill,
    "broker_kill": broker_kill,
    "postgres_restart": postgres_restart,
    "postgres_failover": postgres_failover,
    "shared_kill_pg": shared_kill_pg,
    "network_cut": network_cut,
    "queue_limit": queue_limit,
    "disk": disk_faults,
    "clock": clock_jumps,
    "replay": replay,
    "shared_kill": shared_kill,
}


def run(name: str, work: Path, zygote: Zygote, sizes: Sizes, seed: int) -> Figures:
    start = time.monotonic()
    figures = SCENARIOS[name](work / name, zygote, sizes, random.Random(seed))
    figures.seconds = time.monotonic() - start
    for database in sorted((work / name).rglob("collector.sqlite")):  # every collector is down by now
        figures.problems += collector_sound(database)
    return figures
