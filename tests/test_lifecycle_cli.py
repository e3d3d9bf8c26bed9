"""The lifecycle commands end to end on a real database: refusals are one line and exit 2."""

from __future__ import annotations

import io
import json
import sqlite3
from unittest import mock

import pytest

from hcp.cli import main
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from tests.test_lifecycle import play_month


def _month(tmp_path):
    key = load_or_create_key(tmp_path / "collector.key")
    with Store.open(tmp_path / "collector.sqlite", load_profile("ordos"), key) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.register_device("h1-w2", "h1", "w2")
        return play_month("ordos", store, Lifecycle(store))


def test_followup_commands(tmp_path, capsys, monkeypatch):
    _month(tmp_path)
    db = ["--data-dir", str(tmp_path), "--policy", "ordos"]
    assert main(["followup", "close", "1", "--by", "fu1", *db]) == 2
    err = capsys.readouterr().err
    assert "is open: cannot close" in err and err.count("\n") == 1
    assert main(["followup", "contact", "1", "--by", "fu1", "--note", "called", "--at", "2025-05-13T09:00", *db]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("13800000000\n"))  # never on argv: the process list shows it
    assert main(["followup", "set-contact", "1", *db]) == 0
    with pytest.raises(SystemExit):  # a number on the command line is refused, not stored
        main(["followup", "set-contact", "2", "13900000000", *db])
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["followup", "set-contact", "2", *db]) == 2
    assert "contact: nothing on standard input" in capsys.readouterr().err
    assert main(["followup", "list", "--overdue", "--json", "--at", "2025-06-20T00:00", *db]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [f["id"] for f in listed] == [2, 3, 4] and all("13800000000" not in json.dumps(f) for f in listed)
    assert main(["followup", "show", "1", "--contact", *db]) == 0
    assert "13800000000" in capsys.readouterr().out
    assert main(["malicious", "add", "someone", "--by", "s1", "--reason", "abuse", *db]) == 0
    assert main(["malicious", "add", "someone", "--by", "s1", "--reason", "abuse", *db]) == 2
    assert "already on the malicious" in capsys.readouterr().err


def test_stats_chart_disclosure_and_verify(tmp_path, capsys):
    _month(tmp_path)
    db = ["--data-dir", str(tmp_path), "--policy", "ordos"]
    out = tmp_path / "report"
    assert main(["stats", "--by", "window", "-o", str(out), *db]) == 0
    assert "h1/w2" in capsys.readouterr().out
    assert (out / "chart.png").stat().st_size > 10_000
    report = json.loads((out / "stats.json").read_text("utf-8"))
    assert report["ranking"][0]["window"] == "h1/w2"
    assert (out / "stats-window.csv").read_text("utf-8").startswith("window,ratings,l5")
    assert main(["disclose", "-o", str(out), *db]) == 0
    public = (out / "disclosure.json").read_text("utf-8")
    assert "k1" not in public and "c1" not in public and "applicant" not in public
    assert main(["chain", "sign", *db]) == 0
    assert main(["chain", "heads", "-o", str(tmp_path / "heads.jsonl"), *db]) == 0
    assert main(["verify", "--heads", str(tmp_path / "heads.jsonl"), *db]) == 0
    assert main(["stats", "--by", "nonsense", *db]) == 2


def test_a_database_failure_while_signing_is_one_line(tmp_path, capsys):
    _month(tmp_path)
    db = ["--data-dir", str(tmp_path), "--policy", "ordos"]
    with mock.patch("hcp.collector.store.chain.sign_head", side_effect=sqlite3.OperationalError("disk I/O error")):
        assert main(["chain", "sign", *db]) == 2
    err = capsys.readouterr().err
    assert "cannot sign the chain head: the database says disk I/O error" in err and err.count("\n") == 1


def test_people_read_china_time_and_aligned_columns(tmp_path, capsys):
    _month(tmp_path)
    db = ["--data-dir", str(tmp_path), "--policy", "ordos"]
    assert main(["followup", "list", *db]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Follow-up 1's contact is due 2025-05-14T16:00 UTC: midnight of the 15th in China.
    assert "2025-05-15 00:00" in lines[2] and "+00:00" not in "".join(lines)
    assert main(["followup", "list", "--json", *db]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["contact_due"] == "2025-05-15T00:00:00+08:00"


def test_stats_in_chinese_with_timeliness_tables(tmp_path, capsys):
    _month(tmp_path)
    db = ["--data-dir", str(tmp_path), "--policy", "ordos"]
    assert main(["stats", "--by", "window", *db]) == 0
    printed = capsys.readouterr().out
    head = printed.splitlines()[0]
    assert head.split()[:4] == ["窗口", "评价数", "非常满意", "满意"] and "好评率" in head
    assert "{" not in printed and "差评回访与整改" in printed and "申诉复核" in printed
    assert [line.split() for line in printed.splitlines() if line.startswith("差评工单")] == [["差评工单", "4"]]


def test_the_chart_follows_by_with_a_sorted_legend_and_bars_on_their_ticks(tmp_path):
    from hcp.collector.stats import compute, figure

    _month(tmp_path)
    with Store.open(tmp_path / "collector.sqlite", load_profile("ordos"),
                    load_or_create_key(tmp_path / "collector.key")) as store:
        rows = compute(store, store.profile, ("day", "clerk"))
    fig = figure(rows, title="t", time="day", series="clerk")
    top, bottom = fig.axes
    assert [text.get_text() for text in top.get_legend().get_texts()] == ["k1", "k2"]
    ticks = list(bottom.get_xticks())
    centres = {round(bar.get_x() + bar.get_width() / 2, 6) for bar in bottom.patches}
    assert centres <= {round(t, 6) for t in ticks}
