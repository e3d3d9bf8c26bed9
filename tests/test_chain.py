"""Tamper evidence: records are append-only, and any change to a copy of the database is found."""

from __future__ import annotations

import hashlib
import io
import logging
import random
import re
import shutil
import sqlite3
import threading
from pathlib import Path
from unittest import mock

import pytest

from hcp.collector.exc import StoreError
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.store import Store, chain, chain_rows
from hcp.collector.store.schema import MIGRATIONS
from hcp.collector.store.schema_chain import APPEND_ONLY as BLOCKS_APPEND_ONLY
from hcp.collector.store.schema_chain_v2 import APPEND_ONLY as V2_APPEND_ONLY
from hcp.collector.store.schema_chain_v2 import m009_chain_v2
from hcp.collector.store.schema_lifecycle import APPEND_ONLY as LIFECYCLE_APPEND_ONLY
from hcp.config.policy import load_profile
from hcp.db import json_list, migrate, open_db
from hcp.domain import now_cst
from hcp.protocol import CaseRecord, Rating, RatingMessage
from tests.test_lifecycle import KEY, play_month, t

ROOT = Path(__file__).resolve().parents[1]
APPEND_ONLY = LIFECYCLE_APPEND_ONLY + BLOCKS_APPEND_ONLY + V2_APPEND_ONLY


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
    for path in (ROOT / "collector").rglob("*.py"):  # the storage layer (collector/store/) above all
        assert not pattern.search(path.read_text("utf-8")), f"{path.name} changes a record in place"


def _tamper(conn: sqlite3.Connection, rng: random.Random) -> str:
    """One random change an intruder with the sqlite3 shell could make; returns what it did."""
    spec = rng.choice(chain_rows.TABLES)
    table, key = spec.table, spec.key
    ident = "rowid" if spec.rowid else f'"{key}"'  # WITHOUT ROWID tables: the key names the row
    rows = conn.execute(f"SELECT {ident}, * FROM {table}").fetchall()
    if not rows:
        return ""
    rowid, *row = rng.choice(rows)
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    kind = rng.choice(["edit", "delete", "insert", "swap"])
    if kind == "edit":
        column = rng.choice([c for c in columns if c != key])
        conn.execute(f"UPDATE {table} SET {column} = CASE WHEN typeof({column}) = 'integer' THEN {column} + 1 "
                     f"WHEN {column} IS NULL THEN 'x' ELSE {column} || 'x' END WHERE {ident} = ?", (rowid,))
    elif kind == "delete":
        conn.execute(f"DELETE FROM {table} WHERE {ident} = ?", (rowid,))
    elif kind == "insert":
        values = list(row)
        at = columns.index(key)
        values[at] = f"{values[at]}9" if isinstance(values[at], str) else 10_000 + len(rows)
        conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(values))})", values)
    else:  # swap two rows' places: delete both, insert them back the other way round
        if len(rows) < 2 or not spec.rowid:
            return ""  # without a rowid, the key is the order: nothing to swap
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
        # The dropped triggers are reported too (schema check); the change itself must be found in the rows.
        assert [p for p in problems if not p.where.startswith("trigger ")], f"not caught: {done}"
        caught += 1
    assert caught >= 60  # the rest hit an empty table or a constraint


def _untriggered(conn: sqlite3.Connection) -> list[str]:
    """Drop every trigger, as an intruder would before changing records; returns their SQL to put them back."""
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for name, _sql in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    return [sql for _name, sql in triggers]


def _retriggered(conn: sqlite3.Connection, triggers: list[str]) -> None:
    for sql in triggers:
        conn.execute(sql)


def _reseal_everything(conn: sqlite3.Connection) -> None:
    """The intruder's rebuild: every row queued again and sealed as one new chain."""
    conn.execute("DELETE FROM chain_blocks")
    conn.execute("DELETE FROM chain")
    for spec in chain_rows.TABLES:
        order = "rowid" if spec.rowid else f'"{spec.key}"'
        conn.execute(f"INSERT INTO chain_queue (tbl, row_key) SELECT '{spec.table}', \"{spec.key}\" "
                     f"FROM {spec.table} ORDER BY {order}")
    chain.seal(conn)


def test_a_rewritten_chain_is_caught_by_the_signed_head(month_db, tmp_path):
    copy = tmp_path / "copy.sqlite"
    shutil.copy(month_db, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    trusted = chain.heads(conn)
    triggers = _untriggered(conn)
    conn.execute("UPDATE ratings SET score = 5 WHERE score = 1")
    _reseal_everything(conn)  # the intruder rebuilds the whole chain to match
    conn.execute("DELETE FROM chain_heads")  # and removes the heads kept in the database
    _retriggered(conn, triggers)  # and leaves the schema as it was
    # The rebuilt chain matches the rows, but no signed head covers it...
    assert [str(p) for p in chain.verify(conn)] == [
        f"chain entries 1-{conn.execute('SELECT max(seq) FROM chain_blocks').fetchone()[0]}: covered by no signed "
        "head (the heads were deleted, or the collector stopped without signing)"]
    problems = chain.verify(conn, trusted=trusted)  # ...and the heads exported earlier do not match
    # sealed in one go, the rebuilt chain has fewer blocks: the head's entry is gone or holds another link
    assert problems and ("rewritten" in str(problems[0]) or "no longer reaches" in str(problems[0]))
    conn.close()


def test_a_blob_left_in_a_text_column_is_reported_as_an_edit(month_db, tmp_path):
    copy = tmp_path / "copy.sqlite"
    shutil.copy(month_db, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    triggers = _untriggered(conn)
    rating_id = conn.execute("SELECT rating_id FROM ratings ORDER BY rowid LIMIT 1").fetchone()[0]
    conn.execute("UPDATE ratings SET item_code = x'00ff' WHERE rating_id = ?", (rating_id,))
    _retriggered(conn, triggers)
    problems = chain.verify(conn)
    conn.close()
    assert len(problems) == 1
    assert re.fullmatch(rf"ratings {rating_id}: edited since it was recorded \(chain entry \d+\)", str(problems[0]))


# ---- chains written by earlier collectors ---------------------------------------------------------------------

def _seal_per_row(conn: sqlite3.Connection) -> None:
    """What sealing wrote before migration m006: an entry in ``chain`` per row."""
    last = conn.execute("SELECT seq, link FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    seq, link = last or (0, chain.GENESIS)
    for table, key in chain.CHAINED_V1:
        done = conn.execute("SELECT max(row_order) FROM chain WHERE tbl = ?", (table,)).fetchone()[0] or 0
        for rowid, name, content in conn.execute(f'SELECT rowid, "{key}", {chain.content_sql(conn, table)} '
                                                 f"FROM {table} WHERE rowid > ? ORDER BY rowid", (done,)).fetchall():
            digest = chain.content_hash(content)
            seq += 1
            link = chain.next_link(link, table, str(name), digest)
            conn.execute("INSERT INTO chain (seq, tbl, row_key, row_order, row_hash, link) VALUES (?, ?, ?, ?, ?, ?)",
                         (seq, table, str(name), rowid, digest, link))


def _seal_v1_blocks(conn: sqlite3.Connection) -> None:
    """What sealing wrote from m006 to m009_chain_v2: a block per table by rowid range, SQLite's JSON hashed."""
    seq, link = chain._last(conn)
    for table, key in chain.CHAINED_V1:
        done = conn.execute("SELECT max(coalesce((SELECT max(last_order) FROM chain_blocks WHERE tbl = ?1), 0), "
                            "coalesce((SELECT max(row_order) FROM chain WHERE tbl = ?1), 0))", (table,)).fetchone()[0]
        rows = conn.execute(f'SELECT rowid, "{key}", CAST({chain.row_json_sql(conn, table)} AS BLOB) FROM {table} '
                            "WHERE rowid > ? ORDER BY rowid", (done,)).fetchall()
        if not rows:
            continue
        keys = json_list([str(name) for _rowid, name, _content in rows])
        hashes = b"".join([hashlib.sha256(content).digest() for *_, content in rows])
        seq += 1
        link = chain.block_link(link, table, rows[0][0], rows[-1][0], keys, hashes)
        conn.execute("INSERT INTO chain_blocks (seq, tbl, first_order, last_order, row_keys, row_hashes, link) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, table, rows[0][0], rows[-1][0], keys, hashes, link))


def _old_rating(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("INSERT INTO ratings (rating_id, device_id, seq, kind, channel, case_ids, score, rated_at, "
                 "clock_synced, received_at, day, reasons, prompt_id, hall_id, window_id, clerk_id, item_code, "
                 "ack_outcome, ack_reason) VALUES (?, 'd1', ?, 'service', 'window', ?, ?, ?, 1, ?, '2025-05-06', "
                 "'[]', NULL, 'h1', 'w1', 'E1', 'I', 'accepted', '')",
                 (f"r{n}", n + 1, f'["C{n}"]', 1 + n % 5, f"2025-05-06T0{n}:00:00.000000Z",
                  f"2025-05-06T0{n}:00:01.000000Z"))
    conn.execute("INSERT INTO rating_claims (unit_key, rating_id) VALUES (?, ?)", (f"case:C{n}", f"r{n}"))


def _old_database(path: Path) -> None:
    """A database as the collector left it before m009_chain_v2: per-row entries, then version-1 blocks."""
    db = open_db(path)
    migrate(db, MIGRATIONS[:MIGRATIONS.index(m009_chain_v2)])
    conn = db.conn
    conn.execute("BEGIN")
    conn.execute("INSERT INTO devices VALUES ('d1', 'h1', 'w1', '2025-05-01T00:00:00.000000Z')")
    for n in range(6):
        conn.execute("INSERT INTO cases (case_id, hall_id, window_id, item_code, item_name, clerk_id, intake, "
                     "completed_at, received_at) VALUES (?, 'h1', 'w1', 'I', 'x', 'E1', 'ok', ?, ?)",
                     (f"C{n}", "2025-05-06T00:00:00.000000Z", "2025-05-06T00:00:01.000000Z"))
    _old_rating(conn, 0)
    _old_rating(conn, 1)
    _seal_per_row(conn)  # before m006
    conn.execute("COMMIT")
    conn.execute("BEGIN")
    _old_rating(conn, 2)
    _old_rating(conn, 3)
    _seal_v1_blocks(conn)  # m006
    chain.sign_head(conn, KEY, now_cst())
    conn.execute("COMMIT")
    conn.close()


def test_chains_of_earlier_collectors_still_verify_and_version_2_continues_them(tmp_path):
    """Per-row entries and version-1 blocks verify as they are; m007 chains what they left out, blocks go on."""
    path = tmp_path / "old.sqlite"
    _old_database(path)
    with Store.open(path, load_profile("ordos"), KEY) as store:
        conn = store._conn
        versions = dict(conn.execute("SELECT version, count(*) FROM chain_blocks GROUP BY 1"))
        assert conn.execute("SELECT count(*) FROM chain").fetchone()[0] == 2 and versions[1] == 1
        assert versions[2] >= 3  # the migration sealed the cases, claims and registrations already there
        store.add_cases([CaseRecord(case_id="C9", hall_id="h1", window_id="w1", item_code="I", item_name="x",
                                    clerk_id="E1", intake="ok", completed_at=now_cst())], now_cst())
        for n in (4, 9):
            rating = Rating(rating_id=f"0190a0b0-0000-7000-8000-00000000000{n}", seq=n + 1, kind="service",
                            case_ids=[f"C{n}"], score=1, rated_at=now_cst(), clock_synced=True)
            store.ingest("d1", RatingMessage(v=1, device_id="d1", ratings=[rating]), now_cst())
        assert [p.where.split(" ")[1] for p in chain.verify(conn)] == ["entries"]  # sealed, not yet signed
        store.sign_head(now_cst())
        assert chain.verify(conn) == []
    conn = sqlite3.connect(path, isolation_level=None)
    triggers = _untriggered(conn)
    conn.execute("UPDATE ratings SET score = 5 WHERE rating_id = 'r0'")  # sealed per row
    conn.execute("UPDATE ratings SET score = 5 WHERE rating_id = 'r2'")  # sealed in a version-1 block
    conn.execute("UPDATE ratings SET score = 5 WHERE rating_id LIKE '%009'")  # sealed in a version-2 block
    conn.execute("UPDATE cases SET clerk_id = 'E2' WHERE case_id = 'C1'")  # sealed by the migration
    _retriggered(conn, triggers)
    problems = sorted(str(p) for p in chain.verify(conn))
    conn.close()
    assert [p.split(" (")[0] for p in problems] == [
        "cases C1: edited since it was recorded", "ratings 0190a0b0-0000-7000-8000-000000000009: edited since it was "
        "recorded", "ratings r0: edited since it was recorded", "ratings r2: edited since it was recorded"]


def test_the_store_signs_lists_exports_and_verifies_its_heads(month_db, tmp_path):
    path, heads_file = tmp_path / "c.sqlite", tmp_path / "anchor" / "heads.jsonl"
    shutil.copy(month_db, path)
    with Store.open(path, load_profile("ordos"), KEY, heads_file=heads_file) as store:
        assert store.sign_head(t(31)) is None  # nothing new since the fixture signed
        store.register_device("h1-w9", "h1", "w9")
        head = store.sign_head(t(1, month=6))
        assert head is not None and store.heads()[-1] == head and len(store.heads()) == 2
        assert heads_file.read_text("utf-8") == chain.head_json(head) + "\n"
        exported = io.StringIO()
        assert store.export_heads(exported) == 2
        assert exported.getvalue().splitlines() == [chain.head_json(h) for h in store.heads()]
        assert store.chain_public_key == head.public_key == chain.public_hex(chain.signing_key(KEY))
        assert store.verify_chain(chain.read_heads(heads_file), public_key=store.chain_public_key) == []
        stranger = Store.open(tmp_path / "other.sqlite", load_profile("ordos"), b"k" * 32)
        with stranger:
            problems = [p.what for p in store.verify_chain(public_key=stranger.chain_public_key)]
        assert problems[:2] == ["signed by another key than the collector's"] * 2  # so they cover nothing:
        assert problems[2].startswith("covered by no signed head") and len(problems) == 3


def test_a_database_failure_while_signing_is_a_store_error_and_closing_logs_it(month_db, tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    shutil.copy(month_db, path)
    full = sqlite3.OperationalError("database or disk is full")
    with Store.open(path, load_profile("ordos"), KEY) as store:
        store.register_device("h1-w9", "h1", "w9")
        with mock.patch("hcp.collector.store.chain.sign_head", side_effect=full), \
                caplog.at_level(logging.ERROR, logger="hcp.collector.store"):
            with pytest.raises(StoreError) as raised:
                store.sign_head(t(1, month=6))
            assert str(raised.value) == "cannot sign the chain head: the database says database or disk is full"
            store.close()  # a clean close signs what it sealed: its failure is logged, not raised
    assert "could not sign the chain head on closing: cannot sign the chain head: the database says database or " \
           "disk is full" in caplog.text


# ---- the version-2 definition ----------------------------------------------------------------------------------

def test_the_chained_columns_are_every_column_of_the_migrated_tables():
    db = open_db(":memory:")
    migrate(db, MIGRATIONS)
    for spec in chain_rows.TABLES:
        assert spec.columns == tuple(row[1] for row in db.conn.execute(f"PRAGMA table_info({spec.table})"))
        sql = db.conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (spec.table,)).fetchone()[0]
        assert spec.rowid == ("WITHOUT ROWID" not in sql), spec.table


def test_the_canonical_bytes_of_a_row_never_change():
    """Chains already written must verify with later code and Pythons: a change here is a new VERSION."""
    row = ("t", "é\udcff\n'\"", 1, None, 1.5, b"\x00", -2**70)
    assert ascii(row).encode("ascii") == (b"""('t', '\\xe9\\udcff\\n\\'"', 1, None, 1.5, b'\\x00', """
                                          b"-1180591620717411303424)")
    assert chain_rows.row_digest(row).hex() == "e95025a99f0a618e42e32cb3fae56b8743fa3eb8d0900c323b7f75042151210d"
    assert chain_rows.row_digest(("t", "1")) != chain_rows.row_digest(("t", 1)) != chain_rows.row_digest(("t", None))
    assert chain_rows.row_digest(("t", b"1")) != chain_rows.row_digest(("t", "b'1'"))


def test_two_writers_on_one_database_chain_every_row_in_commit_order(tmp_path):
    """Two stores (the collector and its phone page) commit at once: each seals what it wrote, under the lock."""
    path = tmp_path / "two.sqlite"
    with Store.open(path, load_profile("ordos"), KEY) as store:
        for device in ("d1", "d2"):
            store.register_device(device, "h1", device)
        store.add_cases([CaseRecord(case_id=f"C{device}{n}", hall_id="h1", window_id=device, item_code="I",
                                    item_name="x", clerk_id="E1", intake="ok", completed_at=now_cst())
                         for device in ("d1", "d2") for n in range(40)], now_cst())

    def write(device: str) -> None:
        with Store.open(path, load_profile("ordos"), KEY, check_same_thread=False) as writer:
            for n in range(40):
                rating = Rating(rating_id=f"0190a0b0-0000-7000-8000-{device[1]}{n:011d}", seq=n + 1, kind="service",
                                case_ids=[f"C{device}{n}"], score=1 + n % 5, rated_at=now_cst(), clock_synced=True)
                writer.ingest(device, RatingMessage(v=1, device_id=device, ratings=[rating]), now_cst())

    threads = [threading.Thread(target=write, args=(device,)) for device in ("d1", "d2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Store.open(path, load_profile("ordos"), KEY) as store:
        assert store.totals()["accepted"] == 80
        assert chain.verify(store._conn) == []  # both writers signed on closing
