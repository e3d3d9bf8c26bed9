"""Backlog drain: N ratings from one terminal's outbox to a committed collector, acked and deleted.

Real processes: a private Mosquitto, `hcp collector` and `hcp agent` (sim
panel, idle). The outbox is filled before the agent starts; the clock runs from
the agent's online status to the moment its outbox is empty, i.e. every rating
was committed at the collector, acked, and deleted on the terminal. Next to it,
the raw QoS 1 rate of the same broker with mosquitto_pub/mosquitto_sub in the
same run (the ceiling), both with one rating per message and with a 500-rating
message. Scores follow bench/common.py's SCORE_MIX (15 % 差评).

    python bench/drain.py [--ratings 100000] [--engine both|sqlite|postgresql]

``--engine both`` (the default) drains into an SQLite collector and into one
on a private PostgreSQL 15 cluster (hcp.sim.postgres, fsync on) in the same
run, one after the other, so the two figures share the machine's minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from common import machine, score_for

from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import Kind, now_cst
from hcp.protocol import CaseRecord, Topics
from hcp.sim.broker import Broker
from hcp.sim.postgres import BENCH_SETTINGS, Cluster
from hcp.sync.mqtt import LinkSettings, MqttLink
from hcp.sync.outbox import Draft, Outbox

DEVICE = "bench-w01"


def analyze(database: Path | str) -> None:
    """PostgreSQL: gather the planner's statistics after the bulk load, as autovacuum would by the time a
    real collector's tables have grown (without them the planner guesses and scans)."""
    if isinstance(database, str):
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("ANALYZE")


def fill_outbox(path: Path, count: int) -> None:
    start = now_cst() - timedelta(hours=1)
    with Outbox(path, max_rows=count + 10) as outbox:
        for first in range(0, count, 5000):
            outbox.add_many(Draft(kind=Kind.SERVICE, case_ids=(f"C{n:07d}",), score=score_for(n),
                                  rated_at=start + timedelta(milliseconds=n), clock_synced=True,
                                  prompt_id=f"p{n}", hall_id="h1", window_id="w01", clerk_id="E1",
                                  item_code="I1") for n in range(first, min(first + 5000, count)))


def prepare_collector(folder: Path, count: int, database: Path | str) -> Path | str:
    """Register the terminal and store the case records, so every rating is linked (accepted)."""
    key = load_or_create_key(folder / "collector.key")
    with Store.open(database, load_profile("henan"), key) as store:
        store.register_device(DEVICE, "h1", "w01")
        done = now_cst() - timedelta(hours=2)
        for first in range(0, count, 1000):
            store.add_cases([CaseRecord(case_id=f"C{n:07d}", hall_id="h1", window_id="w01", item_code="I1",
                                        item_name="x", clerk_id="E1", intake="ok", completed_at=done)
                             for n in range(first, min(first + 1000, count))], now_cst())
    return database


class CpuSampler:
    """CPU seconds spent by each kind of process while it runs (collector, agent, broker, PostgreSQL): where
    the time of a drain goes. Sampled from /proc every 0.2 s; a process's last sample counts."""

    KINDS = (("collector", "hcp.cli --log-level WARNING collector"), ("agent", "hcp.cli --log-level WARNING agent"),
             ("broker", "mosquitto"), ("postgresql", "postgres"), ("load generator", "ingest.py"))

    def __init__(self) -> None:
        self.ticks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start: dict[int, int] = {}

    def __enter__(self) -> CpuSampler:
        self._start = {pid: ticks for pid, (_kind, ticks) in self._sample().items()}
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.ticks.update(self._sample())

    def _sample(self) -> dict[int, tuple[str, int]]:
        found = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kind = next((k for k, marker in self.KINDS if marker in command), None)
            if kind:
                found[int(proc.name)] = (kind, int(fields[11]) + int(fields[12]))
        return found

    def seconds(self) -> dict[str, float]:
        hz = os.sysconf("SC_CLK_TCK")
        totals = dict.fromkeys((k for k, _ in self.KINDS), 0.0)
        for pid, (kind, ticks) in self.ticks.items():
            totals[kind] += (ticks - self._start.get(pid, 0)) / hz
        return totals


def outbox_empty(path: Path) -> bool:
    # EXISTS stops at the first row: a count(*) would scan up to 100,000 rows every
    # poll and take CPU from the processes being measured.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return not conn.execute("SELECT EXISTS (SELECT 1 FROM ratings)").fetchone()[0]
    finally:
        conn.close()


def hcp(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hcp.cli", "--log-level", "WARNING", *args], **popen)


def drain(work: Path, broker: Broker, count: int, database: str | None = None) -> dict[str, float]:
    """One drain into a collector on ``database`` (a postgresql:// URL), else on an SQLite file."""
    agent_dir, collector_dir = work / "agent", work / "collector"
    fill_outbox(agent_dir / "outbox.sqlite", count)
    db = prepare_collector(collector_dir, count, database or collector_dir / "collector.sqlite")
    analyze(db)
    collector = hcp("collector", "--broker", f"127.0.0.1:{broker.port}", "--data-dir", str(collector_dir),
                    "--policy", "henan", "--database", str(db))
    online = threading.Event()
    watcher = MqttLink(LinkSettings("127.0.0.1", broker.port, "bench-watch", clean_start=True,
                                    session_expiry_s=0),
                       lambda m: online.set() if b'"online"' in m.payload else None)
    watcher.subscribe(Topics().status(DEVICE))
    watcher.start()
    time.sleep(1.5)  # the collector subscribes before the backlog arrives
    agent = hcp("agent", "--device-id", DEVICE, "--hall", "h1", "--window", "w01", "--broker",
                f"127.0.0.1:{broker.port}", "--data-dir", str(agent_dir), "--policy", "henan",
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        if not online.wait(30):
            raise RuntimeError("the agent did not come online")
        start = time.perf_counter()
        with CpuSampler() as cpu:
            while not outbox_empty(agent_dir / "outbox.sqlite"):
                time.sleep(0.02)
            elapsed = time.perf_counter() - start
    finally:
        for proc in (agent, collector):
            proc.terminate()
            proc.wait(15)
        watcher.close()
    with Store.open(db, load_profile("henan"), load_or_create_key(collector_dir / "collector.key")) as store:
        stored = store.totals()["ratings"]
    if stored != count:
        raise RuntimeError(f"collector holds {stored} ratings, expected {count}")
    return {"ratings": count, "seconds": elapsed, "rate": count / elapsed,
            **{f"cpu_{kind}": seconds for kind, seconds in cpu.seconds().items()}}


def raw_rate(broker: Broker, messages: int, size: int) -> float:
    """Messages per second through mosquitto_pub → broker → mosquitto_sub at QoS 1."""
    pub, sub = shutil.which("mosquitto_pub"), shutil.which("mosquitto_sub")
    if not pub or not sub:
        raise RuntimeError("mosquitto-clients is not installed (apt-get install mosquitto-clients)")
    port = str(broker.port)
    receiver = subprocess.Popen([sub, "-h", "127.0.0.1", "-p", port, "-t", "bench/raw", "-q", "1",
                                 "-C", str(messages)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    line = ("x" * (size - 1) + "\n").encode()
    start = time.perf_counter()
    sender = subprocess.Popen([pub, "-h", "127.0.0.1", "-p", port, "-t", "bench/raw", "-q", "1", "-l"],
                              stdin=subprocess.PIPE)
    assert sender.stdin is not None
    sender.stdin.write(line * messages)
    sender.stdin.close()
    receiver.wait(600)
    elapsed = time.perf_counter() - start
    sender.wait(60)
    return messages / elapsed


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1,
                        help="drain this many times, each with a fresh broker, collector and outbox; "
                             "the median is the figure (a shared VM's speed drifts from minute to minute)")
    parser.add_argument("--engine", choices=("both", "sqlite", "postgresql"), default="both",
                        help="the collector's database: SQLite, PostgreSQL, or both in turn (default)")
    args = parser.parse_args()
    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    results: dict[str, list[dict[str, float]]] = {engine: [] for engine in engines}
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(Cluster.create(settings=BENCH_SETTINGS)) if "postgresql" in engines else None
        for run in range(args.runs):
            for engine in engines:  # alternated, so both see the same minutes of the machine
                database = cluster.url(cluster.fresh_database()) if engine == "postgresql" and cluster else None
                with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp) / "broker") as broker:
                    results[engine].append(drain(Path(tmp), broker, args.ratings, database))
                    if run == args.runs - 1 and engine == engines[-1]:
                        raw_small = raw_rate(broker, 50_000, 350)
                        raw_batch = raw_rate(broker, 400, 175_000)
    print(f"# backlog drain; {machine()}")
    figures: dict[str, float] = {}
    for engine in engines:
        rates = sorted(r["rate"] for r in results[engine])
        median = statistics.median(rates)
        figures[f"drain_rate_{engine}"] = median
        print(f"drain {args.ratings} ratings into {engine}: median {median:,.0f} ratings/s over {args.runs} run(s) "
              f"(outbox → collector commit → ack → delete)")
        if args.runs > 1:
            print(f"  runs: {', '.join(f'{r:,.0f}' for r in (x['rate'] for x in results[engine]))} ratings/s; "
                  f"range {rates[0]:,.0f}–{rates[-1]:,.0f}")
        per = {kind: statistics.median(r[f"cpu_{kind}"] / r["ratings"] * 1e6 for r in results[engine])
               for kind, _ in CpuSampler.KINDS}
        print("  CPU per rating (median): " + ", ".join(f"{kind} {us:.0f} µs" for kind, us in per.items() if us))
    if len(engines) == 2:
        print(f"PostgreSQL / SQLite: {figures['drain_rate_postgresql'] / figures['drain_rate_sqlite']:.2f}")
    print(f"raw mosquitto QoS 1, 350-byte messages: {raw_small:,.0f} messages/s (one rating per message)")
    print(f"raw mosquitto QoS 1, 175 kB messages:   {raw_batch:,.0f} messages/s "
          f"= {raw_batch * 500:,.0f} ratings/s at 500 ratings a message")
    figures.update(drain_rate=figures[f"drain_rate_{engines[0]}"], raw_small=raw_small,
                   raw_batch_ratings=raw_batch * 500)
    return figures


if __name__ == "__main__":
    main()
