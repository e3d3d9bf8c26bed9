"""Collector ingest: many simulated terminals publishing at once, every rule enforced.

A private Mosquitto and a real `hcp collector` process. N terminals (MqttLink
clients spread over a few processes) each publish their own ratings, in
messages of B ratings, for cases the collector knows (so every rating is
judged, claimed and accepted), and wait for the collector's acks. The rate is
ratings acked per second, from the first publish to the last ack.

    python bench/ingest.py [--terminals 1000] [--ratings 20] [--batch 10] [--procs 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import uuid6
from common import machine, rss_kib, score_for

from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import Kind, now_cst
from hcp.protocol import AckMessage, CaseRecord, Rating, RatingMessage, Topics, decode, encode
from hcp.sim.broker import Broker
from hcp.sync.mqtt import LinkSettings, MqttLink


def device(n: int) -> str:
    return f"ing-{n:05d}"


def case(n: int, k: int) -> str:
    return f"C{n:05d}-{k:04d}"


def prepare(folder: Path, terminals: int, ratings: int) -> None:
    key = load_or_create_key(folder / "collector.key")
    with Store.open(folder / "collector.sqlite", load_profile("henan"), key) as store:
        done = now_cst() - timedelta(hours=2)
        for n in range(terminals):
            store.register_device(device(n), "h1", f"w{n}")
            store.add_cases([CaseRecord(case_id=case(n, k), hall_id="h1", window_id=f"w{n}", item_code="I1",
                                        item_name="x", clerk_id="E1", intake="ok", completed_at=done)
                             for k in range(ratings)], now_cst())


def terminal_group(port: int, first: int, count: int, ratings: int, batch: int, start_at: float,
                   out: mp.Queue) -> None:
    """Run ``count`` terminals in this process; report (acked ratings, time of the last ack)."""
    topics, done = Topics(), threading.Event()
    acked = [0]
    lock = threading.Lock()
    last = [0.0]
    total = count * ratings

    def heard(message) -> None:
        results = decode(AckMessage, message.payload).results
        with lock:
            acked[0] += len(results)
            last[0] = time.time()
            if acked[0] >= total:
                done.set()

    links = []
    for n in range(first, first + count):
        link = MqttLink(LinkSettings("127.0.0.1", port, f"ing-{n}", clean_start=True, session_expiry_s=0,
                                     keepalive_s=120), heard)
        link.subscribe(topics.ack(device(n)))
        link.start()
        links.append((n, link))
    for _, link in links:
        link.wait_connected(60)
    rated = now_cst() - timedelta(minutes=30)
    messages = [(n, link, [encode(RatingMessage(v=1, device_id=device(n), ratings=[
        Rating(rating_id=str(uuid6.uuid7()), seq=k + 1, kind=Kind.SERVICE, case_ids=[case(n, k)], score=score_for(k),
               rated_at=rated, clock_synced=True, hall_id="h1", window_id=f"w{n}")
        for k in range(first_k, min(first_k + batch, ratings))]))
        for first_k in range(0, ratings, batch)]) for n, link in links]
    time.sleep(max(0.0, start_at - time.time()))
    for round_ in range(max(len(m[2]) for m in messages)):
        for n, link, payloads in messages:
            if round_ < len(payloads):
                link.publish(topics.rating(device(n)), payloads[round_])
    done.wait(300)
    out.put((acked[0], last[0]))
    for _, link in links:
        link.close()


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--ratings", type=int, default=20, help="ratings per terminal")
    parser.add_argument("--batch", type=int, default=10, help="ratings per message")
    parser.add_argument("--procs", type=int, default=4, help="processes the terminals are spread over")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp) / "broker") as broker:
        folder = Path(tmp) / "collector"
        folder.mkdir()
        prepare(folder, args.terminals, args.ratings)
        collector = subprocess.Popen([sys.executable, "-m", "hcp.cli", "--log-level", "WARNING", "collector",
                                      "--broker", f"127.0.0.1:{broker.port}", "--data-dir", str(folder),
                                      "--policy", "henan"])
        time.sleep(2)
        out: mp.Queue = mp.Queue()
        per = -(-args.terminals // args.procs)
        start_at = time.time() + 3 + args.terminals / 400  # every terminal connected before the first publish
        procs = [mp.Process(target=terminal_group, args=(broker.port, first, min(per, args.terminals - first),
                                                         args.ratings, args.batch, start_at, out))
                 for first in range(0, args.terminals, per)]
        for proc in procs:
            proc.start()
        results = [out.get(timeout=600) for _ in procs]
        rss = rss_kib(collector.pid)
        for proc in procs:
            proc.join(60)
        collector.terminate()
        collector.wait(30)
        conn = sqlite3.connect(folder / "collector.sqlite")
        stored = conn.execute("SELECT count(*) FROM ratings").fetchone()[0]
        outcomes = dict(conn.execute("SELECT outcome, count(*) FROM rating_outcomes GROUP BY outcome").fetchall())
        conn.close()
    acked = sum(a for a, _ in results)
    elapsed = max(t for _, t in results) - start_at
    expected = args.terminals * args.ratings
    print(f"# collector ingest; {machine()}")
    print(f"{args.terminals} terminals x {args.ratings} ratings ({args.batch} a message): {acked} acked in "
          f"{elapsed:.2f} s = {acked / elapsed:,.0f} ratings/s; stored {stored} {outcomes}; "
          f"collector RSS {rss / 1024:.0f} MiB")
    if stored != expected or acked != expected:
        print(f"MISMATCH: expected {expected}, stored {stored}, acked {acked}")
    return {"rate": acked / elapsed, "stored": stored}


if __name__ == "__main__":
    main()
