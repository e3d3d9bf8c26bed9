"""Commands that read a collector's data open what is there: no empty database for a typo, the policy
the database was made for, a URL refused, private files."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from hcp.cli import main
from hcp.collector.opening import open_store
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.config.schema import CollectorConfig, load_config


@pytest.mark.parametrize("command", [["verify"], ["stats"], ["devices"], ["devices", "list"], ["export"],
                                     ["followup", "list"], ["appeal", "list"], ["upstream"], ["chain", "sign"],
                                     ["defaults"]])
def test_reading_commands_refuse_a_missing_database(command, tmp_path, capsys):
    typo = tmp_path / "TYPO"
    assert main([*command, "--data-dir", str(typo)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(typo / "collector.sqlite") in err
    assert not typo.exists()


def test_a_missing_key_is_refused_too(tmp_path, capsys):
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    (tmp_path / "collector.key").unlink()
    assert main(["verify", "--data-dir", str(tmp_path)]) == 2
    assert str(tmp_path / "collector.key") in capsys.readouterr().err
    assert not (tmp_path / "collector.key").exists()


def test_the_database_keeps_its_policy(tmp_path, capsys):
    flags = ["--data-dir", str(tmp_path)]
    assert main(["migrate", *flags, "--policy", "ulanqab"]) == 0
    assert main(["stats", *flags, "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "stats.json").read_text("utf-8"))["policy"] == "乌兰察布"
    capsys.readouterr()
    assert main(["appeal", "file", "R1", "--by", "u", "--evidence", "e", "--policy", "siping", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ulanqab (乌兰察布)" in err and "siping (四平)" in err
    assert main(["migrate", *flags, "--policy", "henan"]) == 2  # the collector's start refuses as well
    assert main(["migrate", *flags, "--policy", "henan", "--change-policy"]) == 0  # on purpose
    assert main(["stats", *flags, "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "stats.json").read_text("utf-8"))["policy"] == "河南"


def test_a_database_made_before_the_record_adopts_the_collectors_policy(tmp_path):
    key = load_or_create_key(tmp_path / "collector.key")
    with Store.open(tmp_path / "collector.sqlite", load_profile("ordos"), key) as store:
        store._conn.execute("DELETE FROM store_meta")  # as made before m007 recorded anything
    config = load_config(CollectorConfig, None, {"data": {"dir": str(tmp_path)}, "policy": {"preset": "ordos"}})
    with open_store(config, create=True):
        pass
    bare = load_config(CollectorConfig, None, {"data": {"dir": str(tmp_path)}})
    with open_store(bare) as store:
        assert store.profile.name == "鄂尔多斯"


@pytest.mark.parametrize("command", [["collector"], ["stats"], ["migrate"]])
def test_another_kind_of_database_url_is_refused(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a URL used to become a folder named "mysql:"
    assert main([*command, "--database", "mysql://hcp@db/hcp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "collector.database" in err and "mysql://" in err
    assert list(tmp_path.iterdir()) == []


def test_reading_commands_refuse_an_empty_postgresql_database(tmp_path, capsys, pg_cluster):
    """A reading command on a server database without the collector's tables says so, and creates none."""
    name = pg_cluster.fresh_database()
    url = pg_cluster.url(name)
    assert main(["migrate", "--data-dir", str(tmp_path / "other")]) == 0  # a key to read with
    for command in (["stats"], ["verify"], ["export", "-o", str(tmp_path / "x.jsonl")]):
        code = main([*command, "--data-dir", str(tmp_path / "other"), "--database", url])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "no collector database here yet" in err, err
    assert main(["migrate", "--data-dir", str(tmp_path / "other"), "--database", url]) == 0
    assert main(["stats", "--data-dir", str(tmp_path / "other"), "--database", url]) == 0
    pg_cluster.drop_database(name)


def test_database_wal_and_key_are_private(tmp_path):
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    config = load_config(CollectorConfig, None, {"data": {"dir": str(tmp_path)}})
    with open_store(config) as store:
        store.register_device("t1", "h1", "w1")
        names = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert names == {"collector.sqlite": 0o600, "collector.sqlite-wal": 0o600, "collector.sqlite-shm": 0o600,
                     "collector.key": 0o600}


def immutable(path: Path, on: bool) -> None:
    """chattr +i / -i: read-only even for root, who runs these tests (file modes do not stop root)."""
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, (f"chattr on {path} failed ({done.stderr.strip()}): the read-only tests need "
                                  "e2fsprogs (scripts/install-deps.sh) and a file system with the immutable "
                                  "attribute (ext4, xfs, btrfs)")


def test_a_read_only_database_stops_the_collector_with_one_line(tmp_path, capsys):
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    database = tmp_path / "collector.sqlite"
    immutable(database, True)
    try:
        assert main(["collector", "--data-dir", str(tmp_path), "--broker", "127.0.0.1:1"]) == 2
    finally:
        immutable(database, False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(database) in err and "not writable" in err


def test_sqlite_version_of_the_record(tmp_path):
    assert main(["migrate", "--data-dir", str(tmp_path), "--policy", "siping"]) == 0
    row = sqlite3.connect(tmp_path / "collector.sqlite").execute("SELECT value FROM store_meta").fetchone()
    assert json.loads(row[0])["region"] == "四平"


def test_c_stands_after_the_last_word_and_mqtt_commands_take_tls():
    from hcp.cli import build_parser
    from tests.test_cli import all_parsers

    parser = build_parser()
    for argv in (["devices", "add", "t1", "--hall", "h", "--window", "w", "-c", "x.toml"],
                 ["devices", "-c", "x.toml", "add", "t1", "--hall", "h", "--window", "w"],
                 ["followup", "list", "-c", "x.toml"], ["prompt", "t1", "--case", "C1", "--item-code", "1",
                                                        "--item-name", "n", "--clerk", "E1", "-c", "x.toml"],
                 ["cases", "-", "-c", "x.toml"], ["push-settings", "--device", "t1", "--version", "2", "-c", "x.toml"]):
        assert str(parser.parse_args(argv).config) == "x.toml", argv
    for path, sub in all_parsers(parser):
        options = {o for action in sub._actions for o in action.option_strings}
        if "--broker" in options and path[0] != "provision":  # provision writes these into the config
            assert {"-c", "--ca-file", "--cert-file", "--key-file"} <= options, path
        if "--database" in options and path[0] not in ("collector", "push-settings"):  # those two connect
            assert "--broker" not in options, f"hcp {' '.join(path)} lists --broker but never connects"
