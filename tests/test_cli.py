"""Every command has help; config errors print one actionable line."""

import argparse

import pytest

from hcp.cli import build_parser, main


def all_parsers(parser: argparse.ArgumentParser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub
                assert helps.get(name), f"hcp {' '.join((*path, name))} has no help line"
                yield from all_parsers(sub, (*path, name))


def test_every_command_and_option_has_help():
    seen = 0
    for path, parser in all_parsers(build_parser()):
        if path:
            assert parser.description, f"hcp {' '.join(path)} has no description"
        for action in parser._actions:
            if action.option_strings or action.dest not in ("command", "devices_command"):
                assert action.help, f"hcp {' '.join(path)} {action.dest} has no help"
        seen += 1
    assert seen >= 8


@pytest.mark.parametrize("command", ["agent", "collector", "devices", "export", "demo", "cases", "prompt"])
def test_help_runs(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: hcp" in capsys.readouterr().out


def test_agent_without_device_id_names_the_key(capsys, tmp_path):
    assert main(["agent", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "device.id" in err and err.count("\n") == 1


def test_broken_config_file_names_the_file(capsys, tmp_path):
    bad = tmp_path / "agent.toml"
    bad.write_text("[device\nid = 1\n")
    assert main(["agent", "--config", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_bad_broker_flag(capsys, tmp_path):
    assert main(["collector", "--broker", "nohost", "--data-dir", str(tmp_path)]) == 2
    assert "--broker" in capsys.readouterr().err


def test_devices_add_list_remove(capsys, tmp_path):
    db = ["--data-dir", str(tmp_path)]
    assert main(["migrate", *db]) == 0
    assert main(["devices", *db, "add", "t1", "--hall", "h1", "--window", "w1"]) == 0
    assert main(["devices", *db]) == 0
    assert "t1" in capsys.readouterr().out
    assert main(["devices", *db, "remove", "t1"]) == 0
    capsys.readouterr()
    assert main(["devices", *db, "list"]) == 0
    assert "t1" not in capsys.readouterr().out
