"""The case record's optional fields for the upstream formats: validated naming the field, stored once."""

from __future__ import annotations

import json

import pytest

from hcp.exc import ProtocolError
from hcp.protocol import CasesMessage, decode
from tests.channel_support import NOW, case, open_store


@pytest.mark.parametrize(("field", "value", "error"), [
    ("area_code", "37010", "cases[0].area_code:"),
    ("promised_days", -1, "cases[0].promised_days:"),
    ("applicant_type", "robot", "cases[0].applicant_type:"),
    ("dept_code", "部门", "cases[0].dept_code:"),
    ("accepted_at", "2026-03-11T10:00:00+08:00", "cases[0].accepted_at: after completed_at"),
])
def test_new_case_fields_are_validated_naming_the_field(field, value, error):
    record = {"case_id": "C1", "hall_id": "h", "window_id": "w", "item_code": "i", "item_name": "n",
              "clerk_id": "e", "intake": "ok", "completed_at": "2026-03-10T10:00:00+08:00", field: value}
    with pytest.raises(ProtocolError) as err:
        decode(CasesMessage, json.dumps({"v": 1, "cases": [record]}))
    assert str(err.value).startswith(error)


def test_the_new_fields_are_optional_and_stored_with_the_case(tmp_path):
    with open_store(tmp_path) as store:
        [result] = store.add_cases([case("OLD")], NOW)
        assert result.outcome == "stored"
        assert store._conn.execute("SELECT count(*) FROM case_upstream").fetchone() == (0,)

    with open_store(tmp_path) as store:
        detailed = case("NEW").model_copy(update={"dept_code": "D1", "promised_days": 0, "area_code": "370102"})
        [result] = store.add_cases([detailed], NOW)
        assert result.outcome == "stored"
        assert store._conn.execute("SELECT dept_code, promised_days, area_code, clerk_name FROM case_upstream "
                                   "WHERE case_id = 'NEW'").fetchone() == ("D1", 0, "370102", None)
