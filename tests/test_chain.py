"""Tamper evidence: records are append-only, and any change to a copy of the database is found."""

from __future__ import annotations

import random
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from hcp.collector import chain
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.schema_chain import APPEND_ONLY as BLOCKS_APPEND_ONLY
from hcp.collector.schema_lifecycle import APPEND_ONLY as LIFECYCLE_APPEND_ONLY
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from tests.test_lifecycle import KEY, play_month, t

ROOT = Path(__file__).resolve().parents[1]
APPEND_ONLY = LIFECYCLE_APPEND_ONLY + BLOCKS_APPEND_ONLY


@pytest.fixture(scope="module")
def month_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / "c.sqlite"
    with Store.open(path, load_profile("ordos"), KEY) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.register_device("h1-w2", "h1", "w2")
        life = Lifecycle(store)
        ids = play_month("ordos", store, life)
        life.file_appeal(ids["c10"], filed_by="unit-w1", evidence="recording", at=t(21))
        life.step(1, "contact", actor="fu1", note="called", at=t(13))
        life.set_contact(1, "13800000000")
        assert life.sign_head(t(31)) is not None
    return path


def test_untouched_database_verifies(month_db):
    with Store.open(month_db, load_profile("ordos"), KEY) as store:
        assert Lifecycle(store).verify() == []
        sealed = store._conn.execute("SELECT sum(json_array_length(row_keys)) FROM chain_blocks").fetchone()[0]
        records = sum(store._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                      for table, _key in chain.CHAINED)
        assert sealed == records >= 20


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_records_cannot_be_updated_or_deleted(month_db, table):
    conn = sqlite3.connect(month_db, isolation_level=None)
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    column = info[-1][1]
    if not conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:  # a trigger fires per row: give it one
        conn.execute("BEGIN")
        values = ", ".join("1" if r[2] == "INTEGER" else "'x'" for r in info)
        conn.execute(f"INSERT INTO {table} VALUES ({values})")
    for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def test_no_code_updates_or_deletes_a_record():
    pattern = re.compile(rf"\b(UPDATE|DELETE\s+FROM|REPLACE\s+INTO)\s+({'|'.join(APPEND_ONLY)})\b", re.I)
    for path in (ROOT / "collector").glob("*.py"):
        assert not pattern.search(path.read_text("utf-8")), f"{path.name} changes a record in place"


def _tamper(conn: sqlite3.Connection, rng: random.Random) -> str:
    """One random change an intruder with the sqlite3 shell could make; returns what it did."""
    table, key = rng.choice(chain.CHAINED)
    rows = conn.execute(f"SELECT rowid, * FROM {table}").fetchall()
    if not rows:
        return ""
    rowid, *row = rng.choice(rows)
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    kind = rng.choice(["edit", "delete", "insert", "swap"])
    if kind == "edit":
        column = rng.choice([c for c in columns if c != key])
        conn.execute(f"UPDATE {table} SET {column} = CASE WHEN typeof({column}) = 'integer' THEN {column} + 1 "
                     f"WHEN {column} IS NULL THEN 'x' ELSE {column} || 'x' END WHERE rowid = ?", (rowid,))
    elif kind == "delete":
        conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
    elif kind == "insert":
        values = list(row)
        values[columns.index(key)] = f"{values[columns.index(key)]}9" if isinstance(values[columns.index(key)],
                                                                                  str) else 10_000 + rowid
        conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(values))})", values)
    else:  # swap two rows' places: delete both, insert them back the other way round
        if len(rows) < 2:
            return ""
        (a, *row_a), (b, *row_b) = rng.sample(rows, 2)
        conn.execute(f"DELETE FROM {table} WHERE rowid IN (?, ?)", (a, b))
        if key == "id" or (columns[0] == key and isinstance(row_a[0], int)):
            return ""  # integer keys are the order itself: a swap is two edits, covered above
        for values in (row_b, row_a):
            conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(values))})", values)
    return f"{kind} {table} row {rowid}"


def test_random_tampering_is_always_caught(month_db, tmp_path):
    rng = random.Random(20250530)
    caught = 0
    for trial in range(150):
        copy = tmp_path / f"copy{trial}.sqlite"
        shutil.copy(month_db, copy)
        conn = sqlite3.connect(copy, isolation_level=None)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        try:
            done = _tamper(conn, rng)
        except sqlite3.IntegrityError:
            done = ""  # the schema's own constraints refused this change
        if not done:
            conn.close()
            continue
        problems = chain.verify(conn, public_key=chain.public_hex(chain.signing_key(KEY)))
        conn.close()
        assert problems, f"not caught: {done}"
        caught += 1
    assert caught >= 60  # the rest hit an empty table or a constraint


def test_a_rewritten_chain_is_caught_by_the_signed_head(month_db, tmp_path):
    copy = tmp_path / "copy.sqlite"
    shutil.copy(month_db, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    trusted = chain.heads(conn)
    conn.execute("DROP TRIGGER ratings_no_update")
    conn.execute("DROP TRIGGER chain_blocks_no_delete")
    conn.execute("UPDATE ratings SET score = 5 WHERE score = 1")
    conn.execute("DELETE FROM chain_blocks")  # the intruder rebuilds the whole chain to match
    chain.seal(conn)
    conn.execute("DROP TRIGGER chain_heads_no_delete")
    conn.execute("DELETE FROM chain_heads")  # and removes the heads kept in the database
    assert chain.verify(conn) == []
    problems = chain.verify(conn, trusted=trusted)  # but the heads exported earlier do not match
    # sealed in one go, the rebuilt chain has fewer blocks: the head's entry is gone or holds another link
    assert problems and ("rewritten" in str(problems[0]) or "no longer reaches" in str(problems[0]))
    conn.close()


def test_a_blob_left_in_a_text_column_is_reported_as_an_edit(month_db, tmp_path):
    copy = tmp_path / "copy.sqlite"
    shutil.copy(month_db, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("DROP TRIGGER ratings_no_update")
    rating_id = conn.execute("SELECT rating_id FROM ratings ORDER BY rowid LIMIT 1").fetchone()[0]
    conn.execute("UPDATE ratings SET item_code = x'00ff' WHERE rating_id = ?", (rating_id,))
    problems = chain.verify(conn)
    conn.close()
    assert [str(p) for p in problems] == [f"ratings {rating_id}: edited since it was recorded (chain entry 1)"]


def _seal_per_row(conn: sqlite3.Connection) -> None:
    """What sealing wrote before migration m006: an entry in ``chain`` per row."""
    last = conn.execute("SELECT seq, link FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    seq, link = last or (0, chain.GENESIS)
    for table, key in chain.CHAINED:
        done = conn.execute("SELECT max(row_order) FROM chain WHERE tbl = ?", (table,)).fetchone()[0] or 0
        for rowid, name, content in conn.execute(f'SELECT rowid, "{key}", {chain.content_sql(conn, table)} '
                                                 f"FROM {table} WHERE rowid > ? ORDER BY rowid", (done,)).fetchall():
            digest = chain.content_hash(content)
            seq += 1
            link = chain.next_link(link, table, str(name), digest)
            conn.execute("INSERT INTO chain (seq, tbl, row_key, row_order, row_hash, link) VALUES (?, ?, ?, ?, ?, ?)",
                         (seq, table, str(name), rowid, digest, link))


def test_per_row_entries_from_before_blocks_still_verify_and_blocks_continue_them(tmp_path):
    """A database chained per row (before m006) verifies; new records are sealed in blocks after it."""
    from hcp.domain import now_cst
    from hcp.protocol import CaseRecord, Rating, RatingMessage

    path = tmp_path / "old.sqlite"
    with Store.open(path, load_profile("ordos"), KEY) as store:
        store.register_device("d1", "h1", "w1")
        store.add_cases([CaseRecord(case_id=f"C{n}", hall_id="h1", window_id="w1", item_code="I", item_name="x",
                                    clerk_id="E1", intake="ok", completed_at=now_cst()) for n in range(4)], now_cst())

        def rate(n: int) -> None:
            rating = Rating(rating_id=f"0190a0b0-0000-7000-8000-00000000000{n}", seq=n + 1, kind="service",
                            case_ids=[f"C{n}"], score=1 + n, rated_at=now_cst(), clock_synced=True)
            store.ingest("d1", RatingMessage(v=1, device_id="d1", ratings=[rating]), now_cst())

        conn = store._conn
        conn.execute("BEGIN")  # the old collector: records and their per-row entries, no blocks
        for n in (0, 1):
            rate(n)
        _seal_per_row(conn)
        conn.execute("COMMIT")
        legacy = conn.execute("SELECT max(seq) FROM chain").fetchone()[0]
        assert legacy >= 2
        for n in (2, 3):  # the new collector seals in blocks, after the per-row entries
            with store.batch():
                rate(n)
        assert conn.execute("SELECT min(seq) FROM chain_blocks").fetchone()[0] == legacy + 1
        assert chain.verify(conn) == []
        assert chain.sign_head(conn, KEY, now_cst()).seq == conn.execute("SELECT max(seq) FROM chain_blocks"
                                                                          ).fetchone()[0]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER ratings_no_update")
    conn.execute("UPDATE ratings SET score = 5 WHERE rating_id LIKE '%0'")  # a row sealed per row
    conn.execute("UPDATE ratings SET score = 1 WHERE rating_id LIKE '%3'")  # a row sealed in a block
    problems = sorted(str(p) for p in chain.verify(conn))
    conn.close()
    assert len(problems) == 2 and all("edited since it was recorded" in p for p in problems)
    assert problems[0].startswith("ratings 0190a0b0-0000-7000-8000-000000000000")
