"""Collector ingest: many simulated terminals publishing at once, every rule enforced.

A private Mosquitto and a real `hcp collector` process. N terminals (paho
clients spread over a few processes, one event-loop thread each) each publish their own ratings, in
messages of B ratings, for cases the collector knows (so every rating is
judged, claimed and accepted), and wait for the collector's acks. The rate is
ratings acked per second, from the first publish to the last ack.

    python bench/ingest.py [--terminals 1000] [--ratings 60] [--batch 500] [--procs 2] [--collectors 1]

By default each terminal sends its ratings as the terminal's syncer does (up to
``sync.batch_size``, 500, in a message: 60 ratings go in one). ``--batch 10``
shows the cost of small messages. ``--collectors 3`` runs three collector
processes in one share group on the one database (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import resource
import selectors
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as paho
import uuid6
from common import machine, rss_kib, score_for
from drain import CpuSampler
from paho.mqtt.enums import CallbackAPIVersion

from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import Kind, now_cst
from hcp.protocol import AckMessage, CaseRecord, Rating, RatingMessage, Topics, decode, encode
from hcp.sim.broker import Broker
from hcp.sim.postgres import BENCH_SETTINGS, Cluster


def analyze(database: Path | str) -> None:
    """PostgreSQL: gather the planner's statistics after the bulk load, as autovacuum would by the time a
    real collector's tables have grown (without them the planner guesses and scans)."""
    if isinstance(database, str):
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("ANALYZE")


def device(n: int) -> str:
    return f"ing-{n:05d}"


def case(n: int, k: int) -> str:
    return f"C{n:05d}-{k:04d}"


def prepare(folder: Path, terminals: int, ratings: int, database: Path | str) -> None:
    key = load_or_create_key(folder / "collector.key")
    with Store.open(database, load_profile("henan"), key) as store:
        done = now_cst() - timedelta(hours=2)
        for n in range(terminals):
            store.register_device(device(n), "h1", f"w{n}")
            store.add_cases([CaseRecord(case_id=case(n, k), hall_id="h1", window_id=f"w{n}", item_code="I1",
                                        item_name="x", clerk_id="E1", intake="ok", completed_at=done)
                             for k in range(ratings)], now_cst())


class _Terminals:
    """Many MQTT clients driven by one thread, the way an event loop drives them.

    ``hcp.sync.mqtt.MqttLink`` gives every link a network thread of its own,
    which is right for a terminal (one link) and wrong for a load generator: a
    thousand threads on two cores took more CPU than the collector they were
    measuring. So the generator uses paho directly, with its documented
    external-loop calls (``loop_read``/``loop_write``/``loop_misc`` on a
    selector), one thread per process. Same broker, same protocol (MQTT 5,
    QoS 1), same payloads as a terminal sends.
    """

    def __init__(self, port: int, ids: list[int], on_ack) -> None:
        self.clients: dict[int, paho.Client] = {}
        self.selector = selectors.DefaultSelector()
        topics = Topics()
        for n in ids:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"ing-{n}", protocol=paho.MQTTv5)
            client.on_message = lambda _c, _u, message: on_ack(message.payload)
            client.connect("127.0.0.1", port, keepalive=120, clean_start=True)
            client.subscribe(topics.ack(device(n)), qos=1)
            self.selector.register(client.socket(), selectors.EVENT_READ, client)
            self.clients[n] = client

    def turn(self, timeout: float) -> None:
        """Write what is queued, read what arrived, keep the sessions alive."""
        for client in self.clients.values():
            if client.want_write():
                client.loop_write()
        for key, _events in self.selector.select(timeout):
            key.data.loop_read(100)
        for client in self.clients.values():
            client.loop_misc()

    def close(self) -> None:
        for client in self.clients.values():
            client.disconnect()
            client.loop_write()


def terminal_group(port: int, first: int, count: int, ratings: int, batch: int, start_at: float,
                   out: mp.Queue) -> None:
    """Run ``count`` terminals in this process; report (acked ratings, time of the last ack)."""
    topics = Topics()
    acked, last, total = [0], [0.0], count * ratings

    def heard(payload: bytes) -> None:
        acked[0] += len(decode(AckMessage, payload).results)
        last[0] = time.time()

    terminals = _Terminals(port, list(range(first, first + count)), heard)
    rated = now_cst() - timedelta(minutes=30)
    messages = [(n, [encode(RatingMessage(v=1, device_id=device(n), ratings=[
        Rating(rating_id=str(uuid6.uuid7()), seq=k + 1, kind=Kind.SERVICE, case_ids=[case(n, k)], score=score_for(k),
               rated_at=rated, clock_synced=True, hall_id="h1", window_id=f"w{n}")
        for k in range(first_k, min(first_k + batch, ratings))]))
        for first_k in range(0, ratings, batch)]) for n in terminals.clients]
    while time.time() < start_at:  # connect and subscribe meanwhile
        terminals.turn(min(0.1, max(0.0, start_at - time.time())))
    for round_ in range(max(len(payloads) for _, payloads in messages)):
        for n, payloads in messages:
            if round_ < len(payloads):
                terminals.clients[n].publish(topics.rating(device(n)), payloads[round_], qos=1)
    deadline = time.time() + 300
    while acked[0] < total and time.time() < deadline:
        terminals.turn(0.05)
    out.put((acked[0], last[0]))
    terminals.close()


def start_collector(folder: Path, port: int, number: int, count: int, database: Path | str) -> subprocess.Popen:
    """``hcp collector`` number ``number`` of ``count``; more than one: a share group on the one database."""
    config = folder / f"collector-{number}.toml"
    group = 'share_group = "bench"\n' if count > 1 else ""
    config.write_text(f'[collector]\nid = "collector-{number}"\n{group}', "utf-8")
    return subprocess.Popen([sys.executable, "-m", "hcp.cli", "--log-level", "WARNING", "collector", "--broker",
                             f"127.0.0.1:{port}", "--data-dir", str(folder), "--policy", "henan", "--config",
                             str(config), "--database", str(database)])


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--ratings", type=int, default=60, help="ratings per terminal")
    parser.add_argument("--batch", type=int, default=500, help="ratings per message at most (the syncer's default)")
    parser.add_argument("--procs", type=int, default=2, help="processes the terminals are spread over")
    parser.add_argument("--engine", choices=("both", "sqlite", "postgresql"), default="both",
                        help="the collector's database: SQLite, PostgreSQL (a private cluster), or both in turn")
    parser.add_argument("--collectors", type=int, default=1, help="collector processes (more: one share group)")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    print(f"# collector ingest; {machine()}")
    figures: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(Cluster.create(settings=BENCH_SETTINGS)) if "postgresql" in engines else None
        for engine in engines:
            database = cluster.url(cluster.fresh_database()) if engine == "postgresql" and cluster else None
            rate = run(args, engine, database)
            figures[f"rate_{engine}"] = rate
    if len(engines) == 2:
        print(f"PostgreSQL / SQLite: {figures['rate_postgresql'] / figures['rate_sqlite']:.2f}")
    figures["rate"] = figures[f"rate_{engines[0]}"]
    return figures


def run(args: argparse.Namespace, engine: str, url: str | None) -> float:
    """One ingest run into a collector on SQLite, or on the PostgreSQL database ``url``; its rate."""
    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp) / "broker") as broker:
        folder = Path(tmp) / "collector"
        folder.mkdir()
        database = url or folder / "collector.sqlite"
        prepare(folder, args.terminals, args.ratings, database)
        analyze(database)
        collectors = [start_collector(folder, broker.port, n, args.collectors, database)
                      for n in range(args.collectors)]
        collector = collectors[0]
        time.sleep(2)
        out: mp.Queue = mp.Queue()
        per = -(-args.terminals // args.procs)
        start_at = time.time() + 3 + args.terminals / 400  # every terminal connected before the first publish
        procs = [mp.Process(target=terminal_group, args=(broker.port, first, min(per, args.terminals - first),
                                                         args.ratings, args.batch, start_at, out))
                 for first in range(0, args.terminals, per)]
        for proc in procs:
            proc.start()
        with CpuSampler() as cpu:
            results = [out.get(timeout=600) for _ in procs]
        rss = rss_kib(collector.pid)
        for proc in procs:
            proc.join(60)
        for each in collectors:
            each.terminate()
            each.wait(30)
        with Store.open(database, load_profile("henan"), load_or_create_key(folder / "collector.key")) as store:
            totals = store.totals()
        stored = totals["ratings"]
        outcomes = {o: n for o, n in totals.items() if o in ("accepted", "duplicate", "rejected", "pending") and n}
    acked = sum(a for a, _ in results)
    elapsed = max(t for _, t in results) - start_at
    expected = args.terminals * args.ratings
    print(f"{engine}, {args.collectors} collector(s): {args.terminals} terminals x {args.ratings} ratings "
          f"({args.batch} a message): {acked} acked in "
          f"{elapsed:.2f} s = {acked / elapsed:,.0f} ratings/s; stored {stored} {outcomes}; "
          f"collector RSS {rss / 1024:.0f} MiB")
    print("  CPU per rating: " + ", ".join(f"{kind} {seconds / expected * 1e6:.0f} µs"
                                          for kind, seconds in cpu.seconds().items() if seconds))
    if stored != expected or acked != expected:
        print(f"MISMATCH: expected {expected}, stored {stored}, acked {acked}")
    return acked / elapsed


if __name__ == "__main__":
    main()
