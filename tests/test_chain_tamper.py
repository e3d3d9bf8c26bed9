"""`hcp verify` against an intruder with the sqlite3 shell: each change that alters a count exits 1 naming it.

The intruder drops the append-only triggers, changes what they want, and puts
the triggers back, so the schema looks untouched unless the change is to the
schema itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from hcp.cli import main
from hcp.collector.channels import Contacts
from hcp.collector.exc import DatabaseFull
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store, chain
from hcp.collector.store.engine import SqliteEngine
from hcp.config.policy import load_profile
from hcp.db import open_db
from hcp.domain import now_cst
from hcp.protocol import CaseRecord, Rating, RatingMessage
from tests.test_lifecycle import play_month, t


@pytest.fixture
def hall(tmp_path) -> Path:
    """A month of an Ordos hall in ``tmp_path``, signed, with its heads file configured in collector.toml."""
    heads = tmp_path / "anchor" / "heads.jsonl"
    (tmp_path / "collector.toml").write_text(f'[data]\ndir = "{tmp_path}"\n[policy]\npreset = "ordos"\n'
                                             f'[chain]\nheads_file = "{heads}"\n', "utf-8")
    key = load_or_create_key(tmp_path / "collector.key")
    with Store.open(tmp_path / "collector.sqlite", load_profile("ordos"), key, heads_file=heads) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.register_device("h1-w2", "h1", "w2")
        play_month("ordos", store, Lifecycle(store))
    return tmp_path


def _verify(folder: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["verify", "--config", str(folder / "collector.toml"), *extra])
    return code, capsys.readouterr().out


def _as_intruder(folder: Path, change: Callable[[sqlite3.Connection], None]) -> None:
    conn = sqlite3.connect(folder / "collector.sqlite", isolation_level=None)
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for name, _sql in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    change(conn)
    for _name, sql in triggers:
        conn.execute(sql)
    conn.close()


def test_an_untouched_hall_verifies_with_its_heads_file(hall, capsys):
    assert (hall / "anchor" / "heads.jsonl").read_text("utf-8").count("\n") == 1  # signed on closing the store
    assert _verify(hall, capsys) == (0, "verified: records, chain and signed heads agree\n")
    (hall / "anchor" / "heads.jsonl").unlink()
    assert _verify(hall, capsys) == (1, f"heads file {hall / 'anchor' / 'heads.jsonl'}: missing, though the "
                                        "database holds signed heads\n1 problem(s)\n")


def test_editing_a_case_records_clerk(hall, capsys):
    _as_intruder(hall, lambda conn: conn.execute("UPDATE cases SET clerk_id = 'E9' WHERE case_id = 'c1'"))
    code, out = _verify(hall, capsys)
    assert code == 1 and out.startswith("cases c1: edited since it was recorded (chain entry ")


def test_deleting_a_unit_claim(hall, capsys):
    _as_intruder(hall, lambda conn: conn.execute("DELETE FROM rating_claims WHERE unit_key = 'case:c1'"))
    code, out = _verify(hall, capsys)
    assert code == 1 and out.startswith("rating_claims case:c1: deleted (chain entry ")


def test_moving_a_device_outside_the_collector(hall, capsys):
    _as_intruder(hall, lambda conn: conn.execute("UPDATE devices SET hall_id = 'h9' WHERE device_id = 'h1-w1'"))
    code, out = _verify(hall, capsys)
    assert code == 1 and out.startswith("devices h1-w1: differs from its registration events (recorded h1/w1, now "
                                        "h9/w1)")


def test_planting_a_trigger_on_ratings(hall, capsys):
    conn = sqlite3.connect(hall / "collector.sqlite", isolation_level=None)
    conn.execute("CREATE TRIGGER ratings_soften AFTER INSERT ON ratings BEGIN SELECT 1; END")
    conn.close()
    code, out = _verify(hall, capsys)
    assert code == 1 and out.startswith("trigger ratings_soften: not created by the migrations (added outside the "
                                        "collector): CREATE TRIGGER ratings_soften")


def test_redefining_the_outcomes_view(hall, capsys):
    conn = sqlite3.connect(hall / "collector.sqlite", isolation_level=None)
    conn.execute("DROP VIEW rating_outcomes")
    conn.execute("CREATE VIEW rating_outcomes AS SELECT rating_id, rowid AS received_order, 'accepted' AS outcome, "
                 "'' AS reason, NULL AS decided_at FROM ratings")
    conn.close()
    code, out = _verify(hall, capsys)
    assert code == 1 and out.startswith("view rating_outcomes: defined otherwise than the migrations create it")


def test_deleting_every_signed_head(hall, capsys):
    _as_intruder(hall, lambda conn: conn.execute("DELETE FROM chain_heads"))
    code, out = _verify(hall, capsys)  # the heads file still has them
    assert code == 1 and "in the heads file but no longer in the database (deleted)" in out
    (hall / "collector.toml").write_text(f'[data]\ndir = "{hall}"\n[policy]\npreset = "ordos"\n', "utf-8")
    code, out = _verify(hall, capsys)  # no heads file: the chain has entries no head covers
    assert code == 1 and out.startswith("chain entries 1-")
    assert "covered by no signed head" in out


def test_truncating_the_tail_with_the_in_database_head(hall, capsys):
    key = load_or_create_key(hall / "collector.key")
    with Store.open(hall / "collector.sqlite", load_profile("ordos"), key,
                    heads_file=hall / "anchor" / "heads.jsonl") as store:
        first = chain.heads(store._conn)[-1]
        store.add_cases([CaseRecord(case_id="c99", hall_id="h1", window_id="w1", item_code="I", item_name="x",
                                    clerk_id="E1", intake="ok", completed_at=now_cst())], now_cst())
        rating = Rating(rating_id="0190a0b0-0000-7000-8000-000000000099", seq=99, kind="service", case_ids=["c99"],
                        score=1, rated_at=now_cst(), clock_synced=True)
        store.ingest("h1-w1", RatingMessage(v=1, device_id="h1-w1", ratings=[rating]), now_cst())
    assert _verify(hall, capsys)[0] == 0

    def truncate(conn: sqlite3.Connection) -> None:
        for table in ("followups", "followup_events", "rating_claims", "ratings", "cases"):
            conn.execute(f"DELETE FROM {table} WHERE {_newest(table)}")
        conn.execute("DELETE FROM chain_blocks WHERE seq > ?", (first.seq,))
        conn.execute("DELETE FROM chain_heads WHERE seq > ?", (first.seq,))

    _as_intruder(hall, truncate)
    assert _verify(hall, capsys, "--heads", str(hall / "nothing.jsonl"))[0] == 2  # a heads file that is not there
    code, out = _verify(hall, capsys)
    assert code == 1 and "the chain no longer reaches this entry (truncated)" in out


def _newest(table: str) -> str:
    return {"cases": "case_id = 'c99'", "rating_claims": "unit_key = 'case:c99'",
            "ratings": "rating_id LIKE '%099'", "followups": "rating_id LIKE '%099'",
            "followup_events": "followup_id IN (SELECT id FROM followups WHERE rating_id LIKE '%099')"}[table]


def test_records_left_unsigned_by_a_crash_fail_until_signed(hall, capsys):
    key = load_or_create_key(hall / "collector.key")
    store = Store.open(hall / "collector.sqlite", load_profile("ordos"), key)
    Lifecycle(store).exclude(store._conn.execute("SELECT rating_id FROM ratings WHERE rating_id NOT IN "
                                                 "(SELECT rating_id FROM exclusions) LIMIT 1").fetchone()[0], "invalid",
                             decided_by="sup1", reason="pressed by mistake", at=t(20), raised_by_rater=True)
    store._conn.close()  # killed: no clean close, no head
    code, out = _verify(hall, capsys, "--heads", str(hall / "collector.toml.none"))  # missing: exit 2
    assert code == 2
    (hall / "collector.toml").write_text(f'[data]\ndir = "{hall}"\n[policy]\npreset = "ordos"\n', "utf-8")
    code, out = _verify(hall, capsys)
    assert code == 1 and "covered by no signed head" in out
    assert main(["chain", "sign", "--config", str(hall / "collector.toml")]) == 0
    assert _verify(hall, capsys)[0] == 0


def test_a_full_disk_inside_a_savepoint_is_reported_as_a_full_disk(tmp_path):
    """On SQLITE_FULL in a statement without a statement journal, SQLite rolls the whole transaction back
    itself: the savepoint is gone, and the real cause must show, not "no such savepoint"."""
    path = tmp_path / "full.sqlite"
    Store.open(path, load_profile("ordos"), bytes(32)).close()
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    store = Store(SqliteEngine(open_db(path, max_page_count=pages + 2)), load_profile("ordos"), bytes(32))
    contacts = Contacts(store)
    # store.savepoint(): a message's savepoint; keeping phones is the last step of a cases message
    with pytest.raises(DatabaseFull, match="database or disk is full"), store.batch(), \
            store.savepoint():
        for n in range(1000):
            contacts.add(f"C{n:05d}", "13800000000")
    assert not store._conn.in_transaction
    store.close()
