"""Press → durable → thanked latency, next to a bare SQLite commit on the same disk (the floor).

Runs the agent's real path in one process: the state machine handles the star
press, the rating is committed to the outbox (WAL, synchronous=FULL), and the
machine emits Thanked only after RatingStored. Prints p50 / p99 / max.

    python bench/press_latency.py [--presses 10000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import machine, percentiles

from hcp.agent.events import ClerkTrigger, PromptSpec, RatingStored, StarPressed, StoreRating, Thanked, Tick
from hcp.agent.machine import Machine
from hcp.config.policy import load_profile
from hcp.config.schema import TimingSection
from hcp.domain import now_cst
from hcp.sync.outbox import Draft, Outbox


def press_to_thanks(folder: Path, presses: int) -> list[float]:
    machine_ = Machine(load_profile("henan"), TimingSection(response_interval_s=0, thanks_s=0.1))
    samples = []
    now = now_cst()
    with Outbox(folder / "outbox.sqlite", max_rows=presses + 10) as outbox:
        for n in range(presses):
            now += timedelta(seconds=1)
            prompt = PromptSpec(f"p{n}", (f"C{n}",), "I1", "营业执照", "E1")
            machine_.handle(ClerkTrigger(prompt), now)
            start = time.perf_counter()
            commands = machine_.handle(StarPressed(5), now)
            store = next(c for c in commands if isinstance(c, StoreRating))
            rating = outbox.add(Draft(kind=store.kind, case_ids=store.prompt.case_ids, score=store.score,
                                      rated_at=store.rated_at, clock_synced=True, prompt_id=prompt.prompt_id))
            commands = machine_.handle(RatingStored(rating.rating_id, rating.seq, rating.kind), now)
            assert any(isinstance(c, Thanked) for c in commands)
            samples.append(time.perf_counter() - start)
            now += timedelta(seconds=1)
            machine_.handle(Tick(), now)
            if n % 1000 == 999:
                outbox.settle([])  # keep the table from growing without bound: as acks would
    return samples


def bare_commit(folder: Path, commits: int) -> list[float]:
    conn = sqlite3.connect(folder / "bare.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    body = "x" * 400
    samples = []
    for _ in range(commits):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", [body])
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - start)
    conn.close()
    return samples


def main() -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presses", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, help="directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        results = {"press → durable → thanked": percentiles(press_to_thanks(folder, args.presses)),
                   "bare SQLite commit (floor)": percentiles(bare_commit(folder, args.presses))}
    print(f"# press latency, {args.presses} presses; {machine()}")
    for name, figures in results.items():
        print(f"{name:<28} p50 {figures['p50_ms']:7.3f} ms  p99 {figures['p99_ms']:7.3f} ms  "
              f"max {figures['max_ms']:7.3f} ms")
    return results


if __name__ == "__main__":
    main()
