"""A business system may send the applicant's phone with the case record, for the reminder SMS.

It is kept encrypted: never in the database as text, never in a log, never in an export.
"""

from __future__ import annotations

import logging

from test_collector_service import T, _store, cases, outcomes, setup, start, terminal  # noqa: F401 - fixtures

from hcp.collector.channels import Contacts

PHONE = "13912345678"


def test_the_phone_of_a_stored_case_is_kept_encrypted(setup, terminal, caplog):  # noqa: F811 - fixtures
    caplog.set_level(logging.DEBUG)
    _config, collector = setup
    start(collector, terminal)
    message = cases("c1", "c2")
    message["cases"][0]["applicant_phone"] = PHONE
    assert outcomes(terminal.ask(T.cases, message)) == ["stored", "stored"]
    collector.close()
    with _store(collector) as store:
        contacts = Contacts(store)
        assert (contacts.phone("c1"), contacts.phone("c2")) == (PHONE, None)
        assert all(PHONE not in str(row) for row in store.export())
    held = _database_bytes(collector.database)
    assert PHONE.encode() not in held and PHONE.encode().hex().encode() not in held
    assert PHONE not in caplog.text


def test_a_malformed_phone_is_refused_naming_the_field(setup, terminal):  # noqa: F811 - fixtures
    _config, collector = setup
    start(collector, terminal)
    message = cases("c1")
    message["cases"][0]["applicant_phone"] = "call me"
    answer = terminal.ask(T.cases, message)
    assert answer["error"].startswith("cases[0].applicant_phone:")


def _database_bytes(database) -> bytes:
    """Everything the database holds: the SQLite files (with -wal, -shm), or every row of every table on
    PostgreSQL rendered as text (bytea as hex, so a phone in a sealed column would show as its hex too)."""
    if isinstance(database, str):
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            tables = [name for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            text = "".join(str(row) for table in tables for row in conn.execute(f"SELECT t::text FROM {table} t"))
        return text.encode()
    return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
