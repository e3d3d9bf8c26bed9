"""Config files: the examples load, and every mistake names the file and the key."""

from pathlib import Path

import pytest

from hcp.config.policy import load_profile, preset_names
from hcp.config.schema import AgentConfig, CollectorConfig, load_config
from hcp.domain import Grade
from hcp.exc import ConfigError, PolicyError

CONFIG = Path(__file__).parent.parent / "config"


def test_example_files_load():
    agent = load_config(AgentConfig, CONFIG / "agent.example.toml")
    assert agent.device.id == "hall01-w03"
    assert agent.policy.load().hall_rating
    collector = load_config(CollectorConfig, CONFIG / "collector.example.toml")
    assert collector.policy.load().name == "乌兰察布"


@pytest.mark.parametrize(("text", "key"), [
    ('[device]\nid = "t1"\nhall_id = "h"\nwindow_id = "w"\ncolour = 1\n', "device.colour"),
    ('[device]\nid = "t1"\nhall_id = "h"\n', "device.window_id"),
    ('[device]\nid = "t 1"\nhall_id = "h"\nwindow_id = "w"\n', "device.id"),
    ('[device]\nid = "t1"\nhall_id = "h"\nwindow_id = "w"\n[broker]\nport = 70000\n', "broker.port"),
    ('[device]\nid = "t1"\nhall_id = "h"\nwindow_id = "w"\n[timing]\nthanks_s = -1\n', "timing.thanks_s"),
    ('[device]\nid = "t1"\nhall_id = "h"\nwindow_id = "w"\n[policy]\npreset = "atlantis"\n', "policy.preset"),
    ('[device]\nid = "t1"\nhall_id = "h"\nwindow_id = "w"\n[policy]\noverrides = { hall_rating = "x" }\n',
     "policy"),
])
def test_mistakes_name_file_and_key(tmp_path, text, key):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(AgentConfig, path)
    assert str(path) in str(err.value) and f"key {key}" in str(err.value)


def test_unreadable_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(AgentConfig, tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[device\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(AgentConfig, broken)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(AgentConfig, binary)


def test_presets_follow_the_rules_digest():
    assert set(preset_names()) == {"ordos", "qingdao-xihaian", "henan", "ulanqab", "siping"}
    assert load_profile("ordos").default_level == 4      # 满意
    for name in ("henan", "ulanqab", "siping"):
        assert load_profile(name).default_level == 3     # 基本满意
    assert load_profile("qingdao-xihaian").default_after_days is None
    assert load_profile("ulanqab").hall_rating and load_profile("siping").hall_rating
    assert not load_profile("henan").hall_rating
    assert "勤政廉洁" in load_profile("henan").dimensions
    for name in preset_names():
        profile = load_profile(name)
        assert [profile.grade(s) for s in (5, 4, 3, 2, 1)] == [Grade.GOOD] * 2 + [Grade.NEUTRAL] + [Grade.BAD] * 2


def test_policy_errors_name_the_key(tmp_path):
    with pytest.raises(PolicyError, match="unknown preset"):
        load_profile("atlantis")
    with pytest.raises(PolicyError, match="default_after_days and default_level go together"):
        load_profile("henan", overrides={"default_level": None})
    own = tmp_path / "policy.toml"
    own.write_text('name = "x"\ncode = "9"\nhall_rating = "maybe"\n')
    with pytest.raises(PolicyError, match="key hall_rating"):
        load_profile(path=own)


def test_print_config_refuses_what_the_start_refuses_naming_the_file(tmp_path, capsys):
    from hcp.cli import main

    path = tmp_path / "collector.toml"
    path.write_text(f'[data]\ndir = "{tmp_path}"\n[policy]\npreset = "atlantis"\n')
    assert main(["collector", "-c", str(path), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: key policy.preset: unknown preset 'atlantis'" in err and err.count("\n") == 1


@pytest.mark.parametrize("text", ['[data]\noutbox_max_rows = 5\n', '[receipt]\nenabled = false\n'])
def test_terminal_keys_are_not_collector_keys(tmp_path, text):
    path = tmp_path / "collector.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(CollectorConfig, path)
