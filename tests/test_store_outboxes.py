"""The delivery outboxes' SQL is in the storage layer (collector/store/outboxes.py, identities.py), on real SQLite."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hcp.collector.retry_outbox import NOTIFICATIONS, UPSTREAM, Backoff, Outcome, RetryOutbox
from hcp.collector.upstream_identity import Identities
from tests.channel_support import KEY, NOW, open_store

ROOT = Path(__file__).parent.parent
#: The modules whose SQL moved into the layer: none may speak SQL or reach into the Store's privates again.
MOVED = ("collector/retry_outbox.py", "collector/upstream.py", "collector/upstream_identity.py",
         "collector/upstream_format.py", "collector/upstream_preset.py", "collector/notify.py", "hcp/cli/channels.py")
_SQL = re.compile(r"\.execute(many)?\(|_conn\b|\bsqlite3\b|\bsqlite_utils\b|\bstore\._[a-z]|"
                  r"\b(SELECT|INSERT|UPDATE|DELETE FROM|CREATE TABLE)\b")


def test_the_delivery_modules_issue_no_sql_and_use_only_the_stores_public_names():
    found = [f"{path}:{n}: {line.strip()}" for path in MOVED
             for n, line in enumerate((ROOT / path).read_text("utf-8").splitlines(), 1) if _SQL.search(line)]
    assert found == []


def test_a_scan_cursor_starts_at_zero_and_moves_only_when_told(tmp_path):
    with open_store(tmp_path) as store:
        assert store.read_cursor("upstream-ratings") == 0
        with store.unit():
            store.move_cursor("upstream-ratings", 7)
        store.move_cursor("notify-alerts", 3)
        assert (store.read_cursor("upstream-ratings"), store.read_cursor("notify-alerts")) == (7, 3)
        store.move_cursor("upstream-ratings", 9)
        assert store.read_cursor("upstream-ratings") == 9


def test_the_outbox_methods_keep_each_tables_words(tmp_path):
    with open_store(tmp_path) as store:
        at = "2026-03-10T02:00:00Z"
        assert store.enqueue_outbox(UPSTREAM, [("r1", "rating", "{}"), ("r2", "rating", "{}")], at) == 2
        assert store.enqueue_outbox(UPSTREAM, [("r1", "rating", "{}")], "2026-03-10T03:00:00Z") == 0
        items = store.pending_outbox_records(UPSTREAM, -1)
        assert [(i.key, i.values, i.attempts) for i in items] == [("r1", {"kind": "rating", "payload": "{}"}, 0),
                                                                    ("r2", {"kind": "rating", "payload": "{}"}, 0)]
        assert store.pending_outbox_records(UPSTREAM, 1, "2026-03-10T01:00:00Z") == []
        store.finish_outbox_record(UPSTREAM, "r2", "rejected", 1, "bad code", "2026-03-10T02:01:00Z")
        store.retry_outbox_record_later(UPSTREAM, "r1", 1, "unreachable", "2026-03-10T02:05:00Z")
        assert store.pending_outbox_records(UPSTREAM, -1)[0].next_at == "2026-03-10T02:05:00Z"
        assert store.outbox_statuses(UPSTREAM) == {"pending": 1, "sent": 0, "rejected": 1}
        assert store.given_up_outbox_records(UPSTREAM) == [("r2", "bad code")]
        assert store.outbox_statuses(NOTIFICATIONS) == {"pending": 0, "sent": 0, "failed": 0}


def test_the_retry_outbox_policy_writes_through_the_layer(tmp_path):
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, NOTIFICATIONS, Backoff(10, 1000, max_attempts=2))
        outbox.enqueue([("alert:a", "alert", "a")], NOW)
        outbox.drain(NOW, lambda item: Outcome.retry("busy"))
        outbox.drain(NOW.replace(hour=11), lambda item: Outcome.retry("busy"))
        assert store.given_up_outbox_records(NOTIFICATIONS) == [("alert:a", "gave up after 2 attempts: busy")]


def test_identities_sealed_before_the_move_still_open(tmp_path):
    """The key derivation moved into the layer: an identity sealed under the former one opens the same."""
    cipher = AESGCM(hashlib.sha256(b"hcp-rater-identity\0" + KEY).digest())
    nonce = os.urandom(12)
    sealed = nonce + cipher.encrypt(nonce, json.dumps({"cert": "X1", "name": "N"}).encode(), b"c1")
    with open_store(tmp_path) as store:
        assert store.keep_sealed_identities([("c1", sealed, "2026-03-10T02:00:00Z")]) == 1
        assert store.keep_sealed_identities([("c1", b"other", "2026-03-10T02:00:00Z")]) == 0
        identity = Identities(store).get("c1")
        assert (identity.cert, identity.name) == ("X1", "N")
        store.schedule_identity_erasure([("2026-03-11T00:00:00Z", "c1")])
        assert store.erase_identities("2026-03-10T23:00:00Z", "2026-01-01T00:00:00Z") == 0
        assert store.erase_identities("2026-03-11T00:00:00Z", "2026-01-01T00:00:00Z") == 1
        assert store.sealed_identity("c1") is None
