"""The console's SQL (collector/store/accounts.py, console.py, the reversal in lifecycle.py) on both engines:
a seeded hall copied into a real PostgreSQL 15 (tests/pg.py) answers every read as SQLite does, and the
writes run there too, through the storage layer's Engine."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import psycopg

from hcp.collector.lifecycle import Lifecycle
from hcp.collector.store.accounts import AccountQueries
from hcp.collector.store.console import ConsoleQueries
from hcp.collector.store.engine import connect
from hcp.collector.store.lifecycle import LifecycleQueries
from hcp.collector.store.pg_schema import migrate
from hcp.domain import utc_text
from tests.channel_support import NOW
from tests.console_support import seeded_store
from tests.pg import copy_rows

#: Tables the console reads, copied row for row (PostgreSQL numbers ``row_order`` itself).
TABLES = ("devices", "cases", "ratings", "rating_claims", "rating_decisions", "rating_links", "rating_texts",
          "followups", "followup_events", "appeals", "appeal_decisions", "exclusions", "exclusion_reversals",
          "console_users", "console_roles", "console_sessions", "console_audit")
STATES = ("open", "contacted", "rectified", "explained", "closed", "spot-checked")


class Queries(AccountQueries, ConsoleQueries, LifecycleQueries):
    """The mixins over a bare Engine, as the Store holds one after the storage layer's swap."""

    def __init__(self, engine) -> None:
        self._conn = engine

    @contextmanager
    def _unit(self):
        if self._conn.in_transaction:
            with self._conn.savepoint():
                yield
        else:
            with self._conn.transaction():
                yield


def _copy(sqlite, pg: psycopg.Connection) -> None:
    copy_rows(sqlite, pg, TABLES)


def _answers(q, seeded) -> dict:
    ratings = sorted(seeded.ratings.values())
    later = utc_text(NOW + timedelta(days=30))
    return {
        "queue": q.followup_queue(["hall01"], STATES[:4]),
        "queue_all": q.followup_queue(None, STATES),
        "queue_late": q.followup_queue(["hall01", "hall02"], STATES, overdue_at=later, limit=2),
        "in_halls": q.followups_in_halls(["hall02"]),
        "events": q.followup_events(seeded.followups["C2"]),
        "followup_of": [q.followup_of_rating(r) for r in ratings],
        "views": q.rating_views(ratings),
        "case": q.case_view("C1"),
        "of_case": q.ratings_of_case("C1", None),
        "exclusion": [q.exclusion_view(r) for r in ratings],
        "exclusions": q.exclusions_in_halls(["hall01"]),
        "exclusions_all": q.exclusions_in_halls(None),
        "state": [q.exclusion_state(r) for r in ratings],
        "appeals": q.appeals_of_rating(seeded.ratings["C2"]),
        "appeals_in": q.appeals_in_halls(["hall01"]),
        "accounts": q.accounts(),
        "session": q.session("hash-1", utc_text(NOW)),
        "expired": q.session("hash-1", later),
        "audit": q.audit_log(limit=50),
        "audit_before": q.audit_log(before_id=5, limit=3),
    }


def test_every_console_query_answers_alike_on_both_engines(tmp_path, pg_cluster, pg_database):
    store, seeded = seeded_store(tmp_path)
    life = Lifecycle(store)
    c2 = seeded.followups["C2"]
    life.step(c2, "contact", actor="fu", note="已联系", at=NOW + timedelta(minutes=10))
    appeal = life.file_appeal(seeded.ratings["C2"], filed_by="mgr", evidence="证据", at=NOW + timedelta(minutes=20))
    life.decide_appeal(appeal.id, upheld=True, kind="malicious", reviewer="rev", reason="属实",
                       at=NOW + timedelta(minutes=30))
    life.reverse_exclusion(seeded.ratings["C2"], decided_by="rev", reason="撤销", at=NOW + timedelta(minutes=40))
    life.exclude(seeded.ratings["C9"], "malicious", decided_by="rev2", reason="恶意", at=NOW + timedelta(minutes=50))
    store.add_session("hash-1", "fu", "csrf-1", utc_text(NOW - timedelta(hours=1)), utc_text(NOW + timedelta(hours=7)))
    sqlite_answers = _answers(store, seeded)
    with psycopg.connect(pg_cluster.dsn(pg_database)) as pg:
        migrate(pg)
        pg.commit()
        _copy(store._conn, pg)
    with connect(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/{pg_database}") as engine:
        assert engine.dialect == "postgresql"
        queries = Queries(engine)
        pg_answers = _answers(queries, seeded)
        _writes(queries)
    store.close()
    assert sqlite_answers["queue"][1] and sqlite_answers["exclusions_all"] and sqlite_answers["session"]
    for name, answer in sqlite_answers.items():
        assert pg_answers[name] == answer, name


def _writes(q: Queries) -> None:
    """The console's writes on PostgreSQL: accounts, roles, sessions, the audit log, a reversal."""
    at = utc_text(NOW)
    q.add_account("pg-user", "$argon2id$fake", at)
    q.set_roles("pg-user", [("manager", "hall01"), ("supervisor", "*")], at)
    q.add_session("hash-2", "pg-user", "csrf-2", at, utc_text(NOW + timedelta(hours=1)))
    assert q.session("hash-2", at) == ("pg-user", "csrf-2")
    q.set_disabled("pg-user", True, at)
    assert q.session("hash-2", at) is None
    q.set_disabled("pg-user", False, at)
    q.set_password_hash("pg-user", "$argon2id$other", at)
    q.add_session("hash-3", "pg-user", "csrf-3", at, utc_text(NOW + timedelta(hours=1)))
    q.end_session("hash-3")
    assert q.session("hash-3", at) is None
    q.add_audit(at, "pg-user", "login", "pg-user", None, "127.0.0.1", "")
    assert q.audit_log(limit=1)[0].actor == "pg-user"
    account = q.account("pg-user")
    assert account is not None and account.roles == (("manager", "hall01"), ("supervisor", "*"))
    [(exclusion, _hall)] = [(e, h) for e, h in q.exclusions_in_halls(None) if e.in_force]
    with q._conn.transaction():
        q.insert_exclusion_reversal(exclusion.id, exclusion.rating_id, "rev2", at, "撤销")
    assert q.exclusion_state(exclusion.rating_id)[3] is True
