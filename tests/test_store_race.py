"""Several writers at once through the storage layer: the unit claims hold on both engines.

Each writer is a Store of its own on the same database (as several collector
processes are), on a thread of its own, all released together by a barrier.
They race for the same cases, the same batch and the same person-day; the
database decides: exactly one rating of each unit is accepted, the others
are duplicates, and every rating is answered once.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta

import psycopg
import pytest

from hcp.collector.exc import DatabaseError
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import CST
from hcp.protocol import CaseRecord, Rating, RatingMessage
from tests.pg import Cluster

KEY = bytes(range(32))
DONE = datetime(2026, 11, 2, 10, 0, tzinfo=CST)
WRITERS = 4
ROUNDS = 15


def _case(case_id: str, batch: str | None = None) -> CaseRecord:
    return CaseRecord(case_id=case_id, hall_id="h1", window_id="w1", item_code="I1", item_name="营业执照",
                      clerk_id="E1", intake="ok", batch_id=batch, completed_at=DONE,
                      applicant_id="110101199003071234")


def _message(device: str, seq: int, kind: str, case_ids: list[str]) -> RatingMessage:
    rating = Rating(rating_id=str(uuid.uuid4()), seq=seq, kind=kind, case_ids=case_ids, score=4,
                    rated_at=DONE + timedelta(minutes=5), clock_synced=True)
    return RatingMessage(v=1, device_id=device, ratings=[rating])


def _race(database, writers: int, work) -> list[list[str]]:
    """Run ``work(store, n)`` on ``writers`` stores at once; each returns its outcomes. Retries a writer's
    message when the database asks (a lost race resolved by failing it), as the service does."""
    stores = [Store.open(database, load_profile("ulanqab"), KEY, check_same_thread=False) for _ in range(writers)]
    barrier = threading.Barrier(writers)
    results: list[list[str]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            results[n] = work(stores[n], n)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for store in stores:
        store.close()
    assert not errors, errors
    return results


def _ingest(store: Store, device: str, message: RatingMessage) -> str:
    for _ in range(20):
        try:
            with store.batch():
                [(_, outcome, _)] = store.ingest_answers(device, message, DONE + timedelta(minutes=6))
            return str(outcome)
        except DatabaseError:
            continue  # the whole message again, as the collector's worker does
    raise AssertionError("a writer never got through")


def test_writers_racing_for_the_same_units_accept_one_each(database):
    with Store.open(database, load_profile("ulanqab"), KEY) as store:
        for n in range(WRITERS):
            store.register_device(f"t{n}", "h1", "w1")
        store.add_cases([_case(f"c{r}") for r in range(ROUNDS)]
                        + [_case(f"b{r}-{k}", batch=f"B{r}") for r in range(ROUNDS) for k in range(WRITERS)], DONE)

    def work(store: Store, n: int) -> list[str]:
        device = f"t{n}"
        outcomes = []
        for r in range(ROUNDS):
            outcomes.append(_ingest(store, device, _message(device, 3 * r + 1, "service", [f"c{r}"])))
            # each writer rates another case of the same batch: the batch is one unit (ulanqab)
            outcomes.append(_ingest(store, device, _message(device, 3 * r + 2, "service", [f"b{r}-{n}"])))
        return outcomes

    results = _race(database, WRITERS, work)
    per_round = Counter()
    for outcomes in results:
        for i, outcome in enumerate(outcomes):
            per_round[i, outcome] += 1
    for i in range(2 * ROUNDS):
        assert per_round[i, "accepted"] == 1, (i, per_round)
        assert per_round[i, "duplicate"] == WRITERS - 1, (i, per_round)
    with Store.open(database, load_profile("ulanqab"), KEY) as store:
        totals = store.totals()
        assert totals["accepted"] == 2 * ROUNDS and totals["duplicate"] == 2 * ROUNDS * (WRITERS - 1)
        assert store.verify_chain() == [] or all("covered by no signed head" in p.what
                                                 for p in store.verify_chain())


def test_the_collector_role_writes_records_but_cannot_change_them(tmp_path, pg_cluster: Cluster):
    """`hcp migrate --grant-to` as the owner; the collectors then run as a role that can only add records."""
    from hcp.cli import main

    name = pg_cluster.fresh_database()
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS hcp_collector_t")
        admin.execute("CREATE ROLE hcp_collector_t LOGIN")
        admin.execute(f"GRANT CONNECT ON DATABASE {name} TO hcp_collector_t")
    owner_url, collector_url = pg_cluster.url(name), pg_cluster.url(name, user="hcp_collector_t")
    assert main(["migrate", "--data-dir", str(tmp_path), "--database", owner_url,
                 "--grant-to", "hcp_collector_t"]) == 0
    with Store.open(collector_url, load_profile("ulanqab"), KEY) as store:  # migrated already: no DDL
        store.register_device("t1", "h1", "w1")
        store.add_cases([_case("c1")], DONE)
        assert _ingest(store, "t1", _message("t1", 1, "service", ["c1"])) == "accepted"
        for statement in ("UPDATE ratings SET score = 5", "DELETE FROM rating_claims",
                          "UPDATE cases SET clerk_id = 'E9'"):
            with pytest.raises(DatabaseError, match="permission denied"):
                store._conn.execute(statement)
    pg_cluster.drop_database(name)
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute("DROP ROLE hcp_collector_t")
