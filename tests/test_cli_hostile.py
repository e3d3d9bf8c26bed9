"""Hostile inputs a technician meets: every command answers with one line on stderr and a non-zero exit,
never a traceback. Broken pipes go through a real pipe whose reading end is closed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hcp.cli import main
from tests.test_cli_store_open import immutable
from tests.test_lifecycle_cli import _month

#: Every command that opens the collector's store, with placeholder arguments ({f} is some existing file).
STORE_COMMANDS = [
    ["verify"], ["stats"], ["disclose", "-o", "{out}"], ["devices"], ["devices", "list"], ["devices", "alerts"],
    ["devices", "add", "t1", "--hall", "h1", "--window", "w1"], ["devices", "remove", "t1"], ["export"],
    ["defaults"], ["followup", "list"], ["followup", "contact", "1", "--by", "u"], ["followup", "show", "1"],
    ["appeal", "file", "R1", "--by", "u", "--evidence", "e"],
    ["appeal", "decide", "1", "--reject", "--by", "u", "--reason", "r"], ["appeal", "list"],
    ["exclude", "R1", "--as", "invalid", "--by", "u", "--reason", "r"], ["malicious", "list"],
    ["malicious", "add", "A1", "--by", "u", "--reason", "r"], ["chain", "sign"], ["chain", "heads"],
    ["enter", "K1", "--channel", "paper", "--score", "5"], ["import-ratings", "{f}", "--channel", "paper"],
    ["upstream"], ["web"], ["push-settings", "--hall", "h1", "--version", "3"],
]
#: Commands that create their data directory when it is missing.
CREATING_COMMANDS = [["migrate"], ["collector", "--broker", "127.0.0.1:1"],
                     ["agent", "--device-id", "t1", "--hall", "h1", "--window", "w1", "--broker", "127.0.0.1:1"]]


def _argv(command: list[str], tmp_path: Path) -> list[str]:
    some_file = tmp_path / "some.file"  # a well-formed (empty) ratings file: the data dir is what is wrong
    some_file.write_text("case_id,score\n")
    return [part.format(f=some_file, out=tmp_path / "out") for part in command]


def _one_line_failure(argv: list[str], capsys) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status != 0, f"hcp {' '.join(argv)} exited 0"
    assert err.count("\n") == 1 and "Traceback" not in err, f"hcp {' '.join(argv)}:\n{err}"
    return err


@pytest.mark.parametrize("command", STORE_COMMANDS + CREATING_COMMANDS, ids=" ".join)
def test_data_dir_under_a_regular_file(command, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.write_text("not a directory\n")
    err = _one_line_failure([*_argv(command, tmp_path), "--data-dir", str(plain / "data")], capsys)
    assert str(plain / "data") in err


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
def test_data_dir_that_is_not_there(command, tmp_path, capsys):
    typo = tmp_path / "TYPO"
    err = _one_line_failure([*_argv(command, tmp_path), "--data-dir", str(typo)], capsys)
    assert str(typo) in err and not typo.exists()


@pytest.mark.parametrize("command", CREATING_COMMANDS, ids=" ".join)
def test_read_only_data_dir(command, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    immutable(data, True)
    try:
        err = _one_line_failure([*_argv(command, tmp_path), "--data-dir", str(data)], capsys)
    finally:
        immutable(data, False)
    assert str(data) in err


PROMPT = ["--item-code", "001", "--item-name", "个体工商户设立登记", "--clerk", "E1", "--broker", "127.0.0.1:1"]


@pytest.mark.parametrize("argv, named", [
    (["prompt", "t1", "--case", "C 1/中", *PROMPT], "--case"),
    (["prompt", "hall01/w03#", "--case", "C1", *PROMPT], "device_id"),
    (["prompt", "t+", "--case", "C1", *PROMPT], "device_id"),
    (["devices", "add", "h 1", "--hall", "h1", "--window", "w1"], "device_id"),
    (["export", "-o", "{missing}/ratings.jsonl"], "missing"),
    (["chain", "heads", "-o", "{missing}/heads.jsonl"], "missing"),
    (["defaults", "--at", "2999-01-01T00:00"], "--at"),
    (["stats", "--database", "mysql://hcp@db/hcp"], "collector.database"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_bad_values_are_one_line(argv, named, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a database URL used to become a folder named "postgresql:"
    _month(tmp_path)
    argv = [part.format(missing=tmp_path / "missing") for part in argv]
    err = _one_line_failure([*argv, "--data-dir", str(tmp_path)] if argv[0] != "prompt" else argv, capsys)
    assert named in err


@pytest.mark.parametrize("command", [["export"], ["followup", "list", "--json"], ["devices", "list"],
                                     ["stats"], ["status"]], ids=" ".join)
def test_output_closed_early(command, tmp_path):
    _month(tmp_path)
    reading, writing = os.pipe()
    os.close(reading)  # like `| head -1` that has read its line and gone
    try:
        done = subprocess.run([sys.executable, "-m", "hcp.cli", *command, "--data-dir", str(tmp_path)],
                              stdout=writing, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writing)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "closed" in done.stderr, done.stderr
