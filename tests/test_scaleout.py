"""Several collectors sharing one broker and one database (issue 16): real ``hcp collector`` processes.

The database is the ``shared_database`` fixture's parameter: one SQLite file today, which the
PostgreSQL store extends with its own kind. The three-collector kill -9 run under a steady stream is the
fault suite's ``shared_kill`` scenario (tests/faults/scenarios.py); here it runs at CI size.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from shared import Recorder, SharedCollector, SharedDatabase
from stack import wait_for

from hcp.collector.channels import Contacts
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import now_cst
from hcp.protocol import CaseRecord, RatingMessage

pytestmark = pytest.mark.timeout(240)

DEFAULTED, REMINDED, BAD, GOOD = 15, 8, 5, 5


@pytest.fixture(params=["sqlite"])
def shared_database(request, tmp_path: Path) -> SharedDatabase:
    """The database the collectors of a test share; the PostgreSQL store adds "postgresql" to the params."""
    return SharedDatabase.sqlite(tmp_path / "collectors")


def _case(case_id: str, done) -> CaseRecord:
    return CaseRecord(case_id=case_id, hall_id="h1", window_id="w1", item_code="I1", item_name="营业执照",
                      clerk_id="E1", intake="ok", completed_at=done)


def _rating(store: Store, case_id: str, score: int) -> None:
    message = RatingMessage.model_validate_json(json.dumps({"v": 1, "device_id": "t1", "ratings": [
        {"rating_id": str(uuid.uuid4()), "seq": 1, "kind": "service", "case_ids": [case_id], "score": score,
         "rated_at": now_cst().isoformat(), "clock_synced": True}]}))
    [answer] = store.ingest("t1", message, now_cst())
    assert answer.outcome.value == "accepted", answer


def _prepare(database: SharedDatabase) -> None:
    """Cases past the rating period (defaults), unrated ones with a phone (reminders), 差评 (alerts), ratings."""
    now = now_cst()
    key = load_or_create_key(database.data / "collector.key")
    with Store.open(database.url, load_profile("ulanqab"), key) as store:
        store.register_device("t1", "h1", "w1")
        store.add_cases([_case(f"old{n}", now - timedelta(days=10)) for n in range(DEFAULTED)], now)
        store.add_cases([_case(f"phone{n}", now - timedelta(hours=30)) for n in range(REMINDED)], now)
        store.add_cases([_case(f"rated{n}", now - timedelta(hours=1)) for n in range(BAD + GOOD)], now)
        contacts = Contacts(store)
        for n in range(REMINDED):
            contacts.add(f"phone{n}", f"1390000{n:04d}")
        for n in range(BAD + GOOD):
            _rating(store, f"rated{n}", 1 if n < BAD else 5)


def _jobs_config(sms: Recorder, platform: Recorder) -> str:
    return (f'[notify]\ngateway_url = "{sms.url}"\ninterval_s = 0.5\nduty_managers = {{h1 = "13800000000"}}\n'
            f'[upstream]\nurl = "{platform.url}"\ninterval_s = 0.5\nsigning = "none"\nbackoff_base_s = 0.5\n'
            '[chain]\nsign_interval_s = 1\n')


def test_three_collectors_run_each_background_job_once(broker, shared_database: SharedDatabase) -> None:
    """Defaults, reminders, alerts and upstream records, with three collectors' timers racing: each exactly once."""
    db = shared_database
    _prepare(db)
    with Recorder(delay_s=0.05) as sms, Recorder(delay_s=0.02) as platform:
        collectors = [SharedCollector(broker, db, f"collector-{n}", policy="ulanqab",
                                      extra=_jobs_config(sms, platform)) for n in range(3)]
        try:
            for collector in collectors:
                collector.start_connected()
            # The first default job runs 10 s after start; upstream then forwards the defaults too.
            wait_for(lambda: platform.count() >= DEFAULTED + BAD + GOOD, 90, "upstream records missing")
            wait_for(lambda: sms.count("reminder:") >= REMINDED and sms.count("alert:") >= BAD, 30,
                     "reminders or alerts missing")
            time.sleep(3)  # a few more rounds of every timer in all three
        finally:
            for collector in collectors:
                collector.stop()
    assert sms.twice() == {} and platform.twice() == {}
    assert (sms.count("reminder:"), sms.count("alert:")) == (REMINDED, BAD)
    assert platform.count() == DEFAULTED + BAD + GOOD
    assert db.scalar("SELECT count(*) FROM ratings WHERE channel = 'system-default'") == DEFAULTED
    assert db.scalar("SELECT count(*) FROM notifications WHERE status = 'sent'") == REMINDED + BAD
    assert db.scalar("SELECT count(*) FROM upstream_outbox WHERE status = 'sent'") == DEFAULTED + BAD + GOOD
