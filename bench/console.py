"""The console's figures for a hall with 1,000,000 ratings: the dashboard over real HTTP, p50/p95.

    .venv/bin/python bench/console.py [--ratings 1000000] [--days 730] [--requests 60] [--keep DIR]

Builds a collector database (the store's own schema and migrations) with one
hall of ``--ratings`` ratings spread over ``--days`` China days ending on the
last day of the previous month (so "this month" is a whole month, the largest
span the dashboard counts; the console's clock is set to that day), each on its
own case with its unit claim, 差评 follow-ups (closed after 20 days, as a
working hall does; the newer ones open), a comment on every 40th, written in
bulk by the generator below (the store's ingest path
would take an hour for a million), then serves the console's figures routes
with uvicorn and times

* ``dashboard, first look``: the process's first count of the hall (its whole
  month and open follow-ups), once per process and hall;
* ``dashboard (cached)``: the page of a hall whose figures did not change
  since the last request (the change marker is read, nothing recounted);
* ``dashboard (new rating each time)``: a rating arrives before every request,
  so each one counts today again (the kept days stand);
* ``figures JSON (new rating each time)``: the same, the live update's body;
* ``statistics page``: ``/stats`` for the month by window and by clerk (counted
  afresh on each request, charts' data included).

* ``差评 queue``: ``/queue`` of the hall, open follow-ups, as its follow-up
  officer sees it.

All through the real console (``build_app``), logged in as a supervisor over
HTTP. ``--engine both`` (the default) runs it on the SQLite file and then on
a private PostgreSQL 15 (``hcp.sim.postgres``) holding a copy of the same rows.
The rows bypass the hash chain's sealer (a benchmark database, never verified).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from common import machine, score_for

from hcp.collector.console.accounts import Accounts, parse_roles
from hcp.collector.console.app import ConsoleSettings, build_app
from hcp.collector.store import Store
from hcp.collector.web import WebServer
from hcp.config.policy import load_profile
from hcp.domain import CST
from hcp.sim.postgres import BENCH_SETTINGS, Cluster
from tests.console_support import Client

KEY = b"bench-collector-key-0123456789abcdef"
HALL = "hall01"
WINDOWS = [f"w{n:02d}" for n in range(1, 13)]
CHUNK = 20_000


def end_day() -> date:
    """The last day of the previous month (China): the data's last day and the console's today."""
    return datetime.now(CST).date().replace(day=1) - timedelta(days=1)


def build(path: Path, ratings: int, days: int) -> None:
    """The database at ``path`` with ``ratings`` ratings of HALL over ``days`` days ending on :func:`end_day`."""
    Store.open(path, load_profile("ulanqab"), KEY).close()  # schema and migrations, as the collector makes them
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    for window in WINDOWS:
        conn.execute("INSERT INTO devices VALUES (?, ?, ?, ?)", (f"{HALL}-{window}", HALL, window,
                                                                 "2024-01-01T00:00:00.000000+00:00"))
    today = end_day()
    rng = random.Random(17)
    followup_id = 0
    for first in range(0, ratings, CHUNK):
        rows = [_rating(n, ratings, days, today, rng) for n in range(first, min(first + CHUNK, ratings))]
        conn.executemany("INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, 'ok', NULL, NULL, ?, ?)",
                         [r["case"] for r in rows])
        conn.executemany("INSERT INTO ratings (rating_id, device_id, seq, kind, channel, case_ids, score, rated_at, "
                         "clock_synced, received_at, day, reasons, prompt_id, hall_id, window_id, clerk_id, "
                         "item_code, ack_outcome, ack_reason) VALUES (?, ?, ?, 'service', ?, ?, ?, ?, 1, ?, ?, "
                         "'[]', NULL, ?, ?, ?, ?, 'accepted', '')", [r["rating"] for r in rows])
        conn.executemany("INSERT INTO rating_claims VALUES (?, ?)", [r["claim"] for r in rows])
        conn.executemany("INSERT INTO rating_texts VALUES (?, ?)", [r["text"] for r in rows if r["text"]])
        bad = [r for r in rows if r["score"] <= 2]
        conn.executemany("INSERT INTO followups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                         [(followup_id + i + 1, *r["followup"]) for i, r in enumerate(bad)])
        conn.executemany("INSERT INTO followup_events (followup_id, action, state, actor, at, note) "
                         "VALUES (?, ?, ?, 'bench', ?, 'bench')",
                         [(followup_id + i + 1, action, state, r["followup"][5])
                          for i, r in enumerate(bad) if r["day"] < today - timedelta(days=20)
                          for action, state in (("contact", "contacted"), ("rectify", "rectified"),
                                                ("close", "closed"))])
        followup_id += len(bad)
        conn.commit()
        print(f"  {min(first + CHUNK, ratings):,} ratings written", end="\r", file=sys.stderr)
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    print(file=sys.stderr)


def _rating(n: int, total: int, days: int, today: date, rng: random.Random, *, on: date | None = None) -> dict:
    day = on or today - timedelta(days=days - 1 - n * days // total)
    at = datetime(day.year, day.month, day.day, 9, tzinfo=CST) + timedelta(seconds=rng.randrange(8 * 3600))
    window = WINDOWS[n % len(WINDOWS)]
    clerk = f"E{(n % 36) + 1:03d}"
    case_id, rating_id, score = f"C{n:08d}", str(uuid.UUID(int=rng.getrandbits(128))), score_for(n)
    stamp = at.astimezone(UTC).isoformat(timespec="microseconds")
    done = (at - timedelta(minutes=3)).astimezone(UTC).isoformat(timespec="microseconds")
    channel = "window" if n % 50 else "system-default"
    return {"score": score, "day": day,
            "case": (case_id, HALL, window, "I01", "营业执照", clerk, done, done),
            "rating": (rating_id, f"{HALL}-{window}", n, channel, f'["{case_id}"]', score, stamp, stamp,
                       day.isoformat(), HALL, window, clerk, "I01"),
            "claim": (f"case:{case_id}", rating_id),
            "text": (rating_id, "办事效率高，窗口人员态度好") if n % 40 == 0 else None,
            "followup": (rating_id, HALL, window, clerk, score, stamp, stamp,
                         (at + timedelta(days=2)).astimezone(UTC).isoformat(timespec="microseconds"),
                         (at + timedelta(days=15)).astimezone(UTC).isoformat(timespec="microseconds"))}


#: The tables the generator writes, copied as they are into PostgreSQL.
COPIED = ("devices", "cases", "ratings", "rating_claims", "rating_texts", "followups", "followup_events")


def copy_to_postgresql(path: Path, url: str) -> None:
    """The generated rows of the SQLite file ``path`` into the (migrated, empty) PostgreSQL database ``url``."""
    import psycopg

    Store.open(url, load_profile("ulanqab"), KEY).close()
    source = sqlite3.connect(path)
    with psycopg.connect(url, autocommit=True) as conn:
        for table in COPIED:
            columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
            with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in source.execute(f"SELECT {', '.join(columns)} FROM {table}"):  # generation order
                    copy.write_row(row)
        conn.execute("SELECT setval(pg_get_serial_sequence('followups', 'id'), (SELECT max(id) FROM followups))")
        conn.execute("ANALYZE")
    source.close()


def one_more(path: Path | str, n: int) -> None:
    """One more rating of today, as another process (the collector) writes it."""
    if isinstance(path, str):
        return one_more_pg(path, n)
    conn = sqlite3.connect(path)
    today = end_day()
    row = _rating(n, 1, 1, today, random.Random(n), on=today)
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    case_row = (*row["case"][:6], stamp, stamp)
    rating = (*row["rating"][:6], stamp, stamp, *row["rating"][8:])
    with conn:
        conn.execute("INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, 'ok', NULL, NULL, ?, ?)", case_row)
        conn.execute("INSERT INTO ratings (rating_id, device_id, seq, kind, channel, case_ids, score, rated_at, "
                     "clock_synced, received_at, day, reasons, prompt_id, hall_id, window_id, clerk_id, item_code, "
                     "ack_outcome, ack_reason) VALUES (?, ?, ?, 'service', ?, ?, ?, ?, 1, ?, ?, '[]', NULL, ?, ?, ?, "
                     "?, 'accepted', '')", rating)
        conn.execute("INSERT INTO rating_claims VALUES (?, ?)", row["claim"])
    conn.close()


def one_more_pg(url: str, n: int) -> None:
    import psycopg

    today = end_day()
    row = _rating(n, 1, 1, today, random.Random(n), on=today)
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    case_row = (*row["case"][:6], stamp, stamp)
    rating = (*row["rating"][:6], stamp, stamp, *row["rating"][8:])
    with psycopg.connect(url) as conn:  # one transaction
        conn.execute("INSERT INTO cases (case_id, hall_id, window_id, item_code, item_name, clerk_id, completed_at, "
                     "received_at, intake) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'ok')", case_row)
        conn.execute("INSERT INTO ratings (rating_id, device_id, seq, kind, channel, case_ids, score, rated_at, "
                     "clock_synced, received_at, day, reasons, prompt_id, hall_id, window_id, clerk_id, item_code, "
                     "ack_outcome, ack_reason) VALUES (%s, %s, %s, 'service', %s, %s, %s, %s, 1, %s, %s, '[]', NULL, "
                     "%s, %s, %s, %s, 'accepted', '')", rating)
        conn.execute("INSERT INTO rating_claims (unit_key, rating_id) VALUES (%s, %s)", row["claim"])


def timed(client: Client, path: str, requests: int, before=None) -> list[float]:
    samples = []
    for i in range(requests):
        if before:
            before(i)
        started = time.perf_counter()
        reply = client.get(path)
        samples.append(time.perf_counter() - started)
        if reply.status != 200:
            raise RuntimeError(f"{path}: HTTP {reply.status}")
    return samples


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--engine", choices=("both", "sqlite", "postgresql"), default="both")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the SQLite database in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="hcp-console-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "collector.sqlite"
    if not path.exists():
        started = time.perf_counter()
        build(path, args.ratings, args.days)
        print(f"# built {args.ratings:,} ratings in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(f"# the console, one hall of {args.ratings:,} ratings over {args.days} days; {machine()}")
    print("| engine | request | p50 ms | p95 ms |")
    print("|---|---|---:|---:|")
    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    for engine in engines:
        if engine == "sqlite":
            measure("SQLite", path, args)
            continue
        with Cluster.create(settings=BENCH_SETTINGS) as cluster:
            url = cluster.url(cluster.fresh_database())
            started = time.perf_counter()
            copy_to_postgresql(path, url)
            print(f"# copied into PostgreSQL in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            measure("PostgreSQL", url, args)
    if args.keep:
        print(json.dumps({"database": str(path)}), file=sys.stderr)
    else:
        shutil.rmtree(folder)
    return 0


def measure(engine: str, database: Path | str, args: argparse.Namespace) -> None:
    """Time the console's pages over ``database`` through the real app, logged in as a supervisor."""
    store = Store.open(database, load_profile("ulanqab"), KEY, check_same_thread=False)
    last = end_day()
    clock = datetime(last.year, last.month, last.day, 16, tzinfo=CST)
    Accounts(store, clock=lambda: clock, actor="bench").add("bench", "bench-password-1", parse_roles(["supervisor"]))
    app = build_app(store, ConsoleSettings(hall_names={HALL: "基准大厅"}), clock=lambda: clock)
    counter = iter(range(int(time.time() * 1000), 10**14))  # case ids unused by earlier runs on a kept database
    with WebServer(app, "127.0.0.1", 0) as server:
        client = Client(server.port)
        if client.login("bench", "bench-password-1").status != 303:
            raise RuntimeError("the benchmark account could not log in")
        [first] = timed(client, f"/halls/{HALL}", 1)
        print(f"| {engine} | dashboard, first look (once per process and hall) | {first * 1000:.0f} | |")
        runs = [("dashboard (cached)", f"/halls/{HALL}", None),
                ("dashboard (new rating each time)", f"/halls/{HALL}", lambda i: one_more(database, next(counter))),
                ("figures JSON (new rating each time)", f"/halls/{HALL}/figures.json",
                 lambda i: one_more(database, next(counter))),
                ("差评 queue, open follow-ups", f"/queue?hall={HALL}", None)]
        for name, url, before in runs:
            samples = timed(client, url, args.requests, before)
            print(f"| {engine} | {name} | {p(samples, 0.5):.0f} | {p(samples, 0.95):.0f} |")
        month = f"from={last.replace(day=1)}&to={last}"
        for by in ("window", "clerk"):
            samples = timed(client, f"/stats?hall={HALL}&by={by}&{month}", 5)
            print(f"| {engine} | statistics page, by {by}, the whole month | {p(samples, 0.5):.0f} | "
                  f"{p(samples, 0.95):.0f} |")
    store.close()


if __name__ == "__main__":
    sys.exit(main())
