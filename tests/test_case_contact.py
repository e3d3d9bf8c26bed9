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
    data = b"".join(p.read_bytes() for p in collector.database.parent.glob(collector.database.name + "*"))
    assert PHONE.encode() not in data
    assert PHONE not in caplog.text


def test_a_malformed_phone_is_refused_naming_the_field(setup, terminal):  # noqa: F811 - fixtures
    _config, collector = setup
    start(collector, terminal)
    message = cases("c1")
    message["cases"][0]["applicant_phone"] = "call me"
    answer = terminal.ask(T.cases, message)
    assert answer["error"].startswith("cases[0].applicant_phone:")
