"""The TOML hcp writes (hcp provision, --print-config) reads back as what was written, whatever the text."""

from __future__ import annotations

import tomllib

from hypothesis import given
from hypothesis import strategies as st

from hcp.agent.provision import write_config
from hcp.config.schema import AgentConfig
from hcp.config.secrets import printable

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_SCALAR = st.one_of(_TEXT, st.integers(-2**63, 2**63 - 1), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False))
_TABLE = st.dictionaries(_TEXT, st.one_of(_SCALAR, st.lists(st.integers(0, 40), max_size=5)), max_size=5)


@given(st.dictionaries(_TEXT.filter(bool), _TABLE, max_size=4))
def test_any_table_of_text_reads_back(tmp_path_factory, data) -> None:
    path = tmp_path_factory.mktemp("toml") / "agent.toml"
    write_config(path, data)
    assert tomllib.loads(path.read_text("utf-8")) == data


def test_a_hall_name_with_a_control_character_stays_valid_toml() -> None:
    config = AgentConfig.model_validate({"device": {"id": "t1", "hall_id": "h1", "window_id": "w1",
                                                    "hall_name": "示例\x7f大厅", "window_name": "3号\t窗口"}})
    assert tomllib.loads(printable(config))["device"]["hall_name"] == "示例\x7f大厅"
