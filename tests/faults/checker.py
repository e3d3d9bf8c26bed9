"""The checker: every rating a terminal thanked for, against what the collector holds.

In the manner of Jepsen's checkers, it knows nothing about the faults: it takes
the history (ratings thanked for, presses attempted) and the final state (the
collector's rows) and sorts every rating into

* ok: thanked and stored exactly once;
* lost: thanked and not stored (a broken promise);
* duplicated: one press stored under two rating ids, or one case counted by
  two accepted service ratings (a broken promise);
* unexpected: stored, yet no press made it (a rating nobody made);
* unthanked: stored from a press whose thanks never showed because the agent
  was killed between COMMIT and the thanks. Allowed: the citizen saw no thanks,
  but the press was real and is counted once.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StoredRating:
    rating_id: str
    case_ids: tuple[str, ...]
    kind: str
    outcome: str


@dataclass
class Figures:
    """What one run shows: counts per category and free-form notes (kill points, drops...)."""

    scenario: str
    made: int = 0
    thanked: int = 0
    ok: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    unthanked: int = 0
    seconds: float = 0.0
    notes: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.lost == self.duplicated == self.unexpected == 0 and not self.problems

    def line(self) -> str:
        notes = " ".join(f"{k}={v}" for k, v in self.notes.items())
        return (f"{self.scenario:<14} made {self.made:>7} thanked {self.thanked:>7} ok {self.ok:>7} "
                f"lost {self.lost} duplicated {self.duplicated} unexpected {self.unexpected} "
                f"unthanked {self.unthanked:>3}  {self.seconds:6.1f} s  {notes}")


HEADER = "scenario       figures (lost, duplicated and unexpected must be 0)"


def collector_ratings(database: Path | str) -> list[StoredRating]:
    """Every rating the collector stored, with its current outcome (read-only; it may be running).

    ``database``: an SQLite file or a PostgreSQL URL.
    """
    from stack import read_rows

    rows = read_rows(database, "SELECT r.rating_id, r.case_ids, r.kind, o.outcome FROM ratings r "
                               "JOIN rating_outcomes o ON o.rating_id = r.rating_id")
    return [StoredRating(rid, tuple(json.loads(cases)), kind, outcome) for rid, cases, kind, outcome in rows]


def collector_sound_pg(url: str) -> list[str]:
    """What is wrong with a PostgreSQL collector database after the faults: the hash chain and schema."""
    from hcp.collector.store import chain
    from hcp.collector.store.engine import connect

    with connect(url) as engine:
        return [f"chain: {p}" for p in chain.verify(engine) if not p.what.startswith("covered by no signed head")]


def collector_sound(database: Path) -> list[str]:
    """What is wrong with a collector's database after the faults: SQLite's integrity and the hash chain.

    A kill -9 mid-commit must leave neither a damaged file nor a record outside
    the chain (or a chain block without its records).
    """
    from hcp.collector.store import chain

    conn = sqlite3.connect(database, timeout=30)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        problems = [] if integrity == "ok" else [f"{database.name}: integrity_check: {integrity}"]
        # A collector killed -9 leaves its last entries unsigned (the next run signs them): not a fault here.
        problems += [f"{database.name}: chain: {p}" for p in chain.verify(conn)
                     if not p.what.startswith("covered by no signed head")]
    finally:
        conn.close()
    return problems


def check(figures: Figures, thanked: Iterable[str], pressed_cases: Iterable[str],
          stored: list[StoredRating]) -> Figures:
    """Fill ``figures`` from the history and the collector's rows.

    ``thanked``: rating ids the terminals thanked for (or committed directly, for
    a backlog); ``pressed_cases``: every case a press was attempted for, thanked
    or not (each case is pressed at most once in a run).
    """
    thanked = list(thanked)
    pressed = set(pressed_cases)
    by_id: dict[str, list[StoredRating]] = defaultdict(list)
    for row in stored:
        by_id[row.rating_id].append(row)
    per_case = Counter(case for row in stored for case in row.case_ids)
    figures.thanked = len(thanked)
    figures.made = max(figures.made, len(pressed), len(thanked))
    thanked_set = set(thanked)
    figures.duplicated += len(thanked) - len(thanked_set)  # the same id thanked twice would be a bug too
    for rating_id in thanked_set:
        rows = by_id.get(rating_id, [])
        if not rows:
            figures.lost += 1
        elif len(rows) == 1 and all(per_case[c] == 1 for c in rows[0].case_ids):
            figures.ok += 1
    figures.duplicated += sum(len(rows) - 1 for rows in by_id.values())
    figures.duplicated += sum(n - 1 for n in per_case.values() if n > 1)  # one press (case) stored twice
    for rating_id, rows in by_id.items():
        if rating_id in thanked_set:
            continue
        if all(case in pressed for case in rows[0].case_ids):
            figures.unthanked += 1
        else:
            figures.unexpected += 1
    return figures
