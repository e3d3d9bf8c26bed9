"""The durable outbox on real SQLite files in tmp_path."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from unittest import mock

import pytest

from hcp.domain import CST, Kind, Outcome
from hcp.protocol import AckResult, Rating
from hcp.sync.exc import OutboxError, OutboxFull
from hcp.sync.outbox import Draft, Outbox

RATED_AT = datetime(2024, 5, 6, 10, 30, tzinfo=CST)


def draft(n: int = 0, prompt_id: str | None = None, **extra: object) -> Draft:
    return Draft(kind=Kind.SERVICE, case_ids=(f"case-{n}",), score=5, rated_at=RATED_AT, clock_synced=True,
                 prompt_id=prompt_id, hall_id="hall01", window_id="w03", clerk_id="c7", item_code="item-1",
                 **extra)  # type: ignore[arg-type]


def accepted(*ratings: Rating) -> list[AckResult]:
    return [AckResult(rating_id=r.rating_id, outcome=Outcome.ACCEPTED) for r in ratings]


def test_add_pending_settle(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as box:
        added = [box.add(draft(n, reasons=("slow",), uptime_s=12.5)) for n in range(5)]
        assert [r.seq for r in added] == [1, 2, 3, 4, 5]
        assert added[0].reasons == ["slow"] and added[0].uptime_s == 12.5
        assert box.pending(10) == added
        assert box.pending(2, after_seq=2) == added[2:4]
        assert [p.seq for p in box.pending_raw(10, after_seq=3)] == [4, 5]
        assert box.depth() == 5 and box.oldest_rated_at() == RATED_AT
        assert box.last_ack_at() is None

        assert box.settle([*accepted(added[0], added[2]), AckResult(rating_id="f" * 32, outcome=Outcome.ACCEPTED)]) == 2
        assert [r.seq for r in box.pending(10)] == [2, 4, 5]
        assert box.depth() == 3
        assert box.settle(accepted(added[0])) == 0  # a repeated ack is harmless
        assert box.last_ack_at() is not None
        assert box.settle([]) == 0


def test_seq_never_reused_after_delete_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        first = [box.add(draft(n)) for n in range(3)]
        assert box.settle(accepted(*first)) == 3
        assert box.depth() == 0 and box.oldest_rated_at() is None
    with Outbox(path) as box:
        assert box.add(draft(9)).seq == 4


def test_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        added = [box.add(draft(n, prompt_id=f"p{n}")) for n in range(3)]
        box.settle(accepted(added[1]))
    with Outbox(path) as box:
        assert box.pending(10) == [added[0], added[2]]
        assert box.depth() == 2
        assert box.was_rated("case-1") and box.last_outcome("p1") is not None
        assert box.integrity_ok()


def test_full_outbox_refuses_visibly_and_drops_nothing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite", max_rows=3) as box:
        added = [box.add(draft(n)) for n in range(3)]
        with pytest.raises(OutboxFull, match="limit is 3"):
            box.add(draft(3))
        with pytest.raises(OSError):
            box.add(draft(4))
        assert box.depth() == 3 and box.pending(10) == added
        assert not box.was_rated("case-3")
        box.settle(accepted(added[0]))
        assert box.add(draft(5)).seq == 4


def test_disk_full_raises_outbox_error_and_keeps_earlier_rows(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    Outbox(path).close()
    pages = path.stat().st_size // 4096  # closing checkpointed the WAL into the file
    with Outbox(path, max_page_count=pages + 3) as box:
        kept: list[Rating] = []
        with pytest.raises(OutboxError, match="database or disk is full"):
            for n in range(10_000):
                kept.append(box.add(draft(n, reasons=tuple(f"r{k}" for k in range(20)))))
        assert kept and box.depth() == len(kept)
        assert box.pending(len(kept) + 10) == kept
        assert box.integrity_ok()
    with Outbox(path) as box:  # space again: nothing of the failed add remains, not even its seq
        assert box.pending(len(kept) + 10) == kept
        assert box.add(draft(99_999)).seq == len(kept) + 1
        assert box.integrity_ok()


def test_io_error_is_translated_with_its_cause(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as box:
        box.add(draft(0))
        with mock.patch.object(box, "_insert", side_effect=sqlite3.OperationalError("disk I/O error")), \
                pytest.raises(OutboxError, match="disk I/O error"):
            box.add(draft(1))
        assert box.depth() == 1 and box.add(draft(2)).seq == 2


def test_rated_cases_are_remembered(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        rating = box.add(Draft(kind=Kind.SERVICE, case_ids=("A-1", "A-2"), score=3, rated_at=RATED_AT,
                               clock_synced=False))
        box.add(Draft(kind=Kind.HALL, case_ids=(), score=4, rated_at=RATED_AT, clock_synced=False))
        box.settle(accepted(rating))
        assert box.was_rated("A-1") and box.was_rated("A-2") and not box.was_rated("B-1")
    with Outbox(path) as box:
        assert box.rated_case_ids() == {"A-1", "A-2"}


def test_old_rated_cases_are_purged(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        box.settle(accepted(box.add(draft(1, prompt_id="p-1"))))
        box.add(draft(2, prompt_id="p-2"))
    with sqlite3.connect(path) as conn:  # as if rating 1 was made and answered 24 years ago
        conn.execute("UPDATE rated_cases SET recorded_at = '2000-01-01T00:00:00+00:00' WHERE case_id = 'case-1'")
        conn.execute("UPDATE outcomes SET at = '2000-01-01T00:00:00+00:00'")
    conn.close()
    with Outbox(path) as box:
        assert not box.was_rated("case-1") and box.last_outcome("p-1") is None
        assert box.was_rated("case-2") and box.depth() == 1


def test_last_outcome_per_prompt(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as box:
        first = box.add(draft(1, prompt_id="p-1"))
        box.add(draft(2, prompt_id="p-2"))
        assert box.last_outcome("p-1") is None
        box.settle([AckResult(rating_id=first.rating_id, outcome=Outcome.REJECTED, reason="case unknown")])
        assert box.last_outcome("p-1") == AckResult(rating_id=first.rating_id, outcome=Outcome.REJECTED,
                                                    reason="case unknown")
        assert box.last_outcome("p-2") is None


def test_close_twice_and_use_after_close(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite")
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.pending(1)
    with pytest.raises(OutboxError):
        box.integrity_ok()


def test_unopenable_file_raises_outbox_error(tmp_path: Path) -> None:
    bad = tmp_path / "outbox.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="outbox"):
        Outbox(bad)
