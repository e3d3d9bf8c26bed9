"""`hcp verify` against an intruder with superuser rights on the PostgreSQL store: each change exits 1 naming it.

The twin of test_chain_tamper.py. The intruder turns the append-only
triggers off for their session (``session_replication_role = replica``, what
a superuser can do without touching the schema), changes what they want, and
leaves. Schema changes (a planted trigger, a redefined view, a disabled
trigger) are caught by comparing the catalog with the migrations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from hcp.cli import main
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store, chain
from hcp.config.policy import load_profile
from hcp.domain import now_cst
from hcp.protocol import CaseRecord, Rating, RatingMessage
from tests.pg import Cluster
from tests.test_lifecycle import play_month


@pytest.fixture
def hall(tmp_path: Path, pg_cluster: Cluster) -> tuple[Path, str]:
    """A month of an Ordos hall on a fresh PostgreSQL database, signed, with its heads file; (folder, URL)."""
    name = pg_cluster.fresh_database()
    url = pg_cluster.url(name)
    heads = tmp_path / "anchor" / "heads.jsonl"
    (tmp_path / "collector.toml").write_text(f'[data]\ndir = "{tmp_path}"\n[policy]\npreset = "ordos"\n'
                                             f'[collector]\ndatabase = "{url}"\n'
                                             f'[chain]\nheads_file = "{heads}"\n', "utf-8")
    key = load_or_create_key(tmp_path / "collector.key")
    with Store.open(url, load_profile("ordos"), key, heads_file=heads) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.register_device("h1-w2", "h1", "w2")
        play_month("ordos", store, Lifecycle(store))
    yield tmp_path, url
    pg_cluster.drop_database(name)


def _verify(folder: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["verify", "--config", str(folder / "collector.toml"), *extra])
    return code, capsys.readouterr().out


def _as_intruder(url: str, change: Callable[[psycopg.Connection], None], *, quiet_triggers: bool = True) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if quiet_triggers:
            conn.execute("SET session_replication_role = replica")  # the append-only triggers do not fire
        change(conn)


def test_an_untouched_hall_verifies(hall, capsys):
    folder, _url = hall
    assert _verify(folder, capsys) == (0, "verified: records, chain and signed heads agree\n")


def test_the_append_only_triggers_hold_without_superuser_tricks(hall):
    _folder, url = hall
    with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
        _as_intruder(url, lambda conn: conn.execute("DELETE FROM rating_claims"), quiet_triggers=False)


@pytest.mark.parametrize(("sql", "expected"), [
    ("UPDATE cases SET clerk_id = 'E9' WHERE case_id = 'c1'", "cases c1: edited since it was recorded (chain entry "),
    ("DELETE FROM rating_claims WHERE unit_key = 'case:c1'", "rating_claims case:c1: deleted (chain entry "),
    ("UPDATE devices SET hall_id = 'h9' WHERE device_id = 'h1-w1'",
     "devices h1-w1: differs from its registration events (recorded h1/w1, now h9/w1)"),
    ("CREATE FUNCTION soften() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.score = 5; RETURN NEW; END $$; "
     "CREATE TRIGGER ratings_soften BEFORE INSERT ON ratings FOR EACH ROW EXECUTE FUNCTION soften()",
     "function soften(): not created by the migrations"),
    ("CREATE OR REPLACE VIEW rating_outcomes AS SELECT rating_id, row_order AS received_order, "
     "'accepted'::text AS outcome, ''::text AS reason, NULL::text AS decided_at FROM ratings",
     "view rating_outcomes: defined otherwise than the migrations create it"),
    ("ALTER TABLE ratings DISABLE TRIGGER ratings_append_only",
     "trigger ratings.ratings_append_only: defined otherwise than the migrations create it"),
], ids=["case-clerk", "unit-claim", "device", "trigger", "view", "disabled-trigger"])
def test_a_tampering_is_named(hall, capsys, sql, expected):
    folder, url = hall
    _as_intruder(url, lambda conn: conn.execute(sql))
    code, out = _verify(folder, capsys)
    assert code == 1, out
    assert expected in out


def test_deleting_every_signed_head(hall, capsys):
    folder, url = hall
    _as_intruder(url, lambda conn: conn.execute("DELETE FROM chain_heads"))
    code, out = _verify(folder, capsys)  # the heads file still has them
    assert code == 1 and "in the heads file but no longer in the database (deleted)" in out


def test_truncating_the_tail_with_the_in_database_head(hall, capsys):
    folder, url = hall
    key = load_or_create_key(folder / "collector.key")
    with Store.open(url, load_profile("ordos"), key, heads_file=folder / "anchor" / "heads.jsonl") as store:
        first = chain.heads(store._conn)[-1]
        store.add_cases([CaseRecord(case_id="c99", hall_id="h1", window_id="w1", item_code="I", item_name="x",
                                    clerk_id="E1", intake="ok", completed_at=now_cst())], now_cst())
        rating = Rating(rating_id="0190a0b0-0000-7000-8000-000000000099", seq=99, kind="service", case_ids=["c99"],
                        score=1, rated_at=now_cst(), clock_synced=True)
        store.ingest("h1-w1", RatingMessage(v=1, device_id="h1-w1", ratings=[rating]), now_cst())
    assert _verify(folder, capsys)[0] == 0

    def truncate(conn: psycopg.Connection) -> None:
        conn.execute("DELETE FROM followup_events WHERE followup_id IN "
                     "(SELECT id FROM followups WHERE rating_id LIKE '%099')")
        conn.execute("DELETE FROM followups WHERE rating_id LIKE '%099'")
        conn.execute("DELETE FROM rating_claims WHERE unit_key = 'case:c99'")
        conn.execute("DELETE FROM ratings WHERE rating_id LIKE '%099'")
        conn.execute("DELETE FROM cases WHERE case_id = 'c99'")
        conn.execute("DELETE FROM chain_blocks WHERE seq > %s", (first.seq,))
        conn.execute("DELETE FROM chain_heads WHERE seq > %s", (first.seq,))

    _as_intruder(url, truncate)
    code, out = _verify(folder, capsys)
    assert code == 1 and "the chain no longer reaches this entry (truncated)" in out
