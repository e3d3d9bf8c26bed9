"""hcp enter and hcp import-ratings: every row's outcome reported, a bad row never stopping the rest."""

from __future__ import annotations

import io

from hcp.cli import main
from tests.channel_support import NOW, case, open_store


def _db(tmp_path):
    with open_store(tmp_path, "henan") as store:
        store.add_cases([case(f"K{i}", completed=NOW) for i in range(4)], NOW)
    return ["--data-dir", str(tmp_path), "--database", str(tmp_path / "collector.sqlite"), "--policy", "henan"]


def test_import_reports_every_row(tmp_path, capsys):
    flags = _db(tmp_path)
    csv_file = tmp_path / "paper.csv"
    at = NOW.isoformat()
    csv_file.write_text("\ufeffcase_id,score,reasons,text,rated_at,ref\n"
                        f"K0,5,,,{at},F1\n"
                        f"K0,4,,,{at},F2\n"          # the same case again: duplicate
                        f"K1,x,,,{at},F3\n"          # unreadable score
                        f"K2,1,,,{at},F4\n"          # 差评 without reason or text
                        f"K3,2,办事效率|服务态度,,{at},F5\n"
                        f"NOPE,5,,,{at},F6\n", "utf-8")
    assert main(["import-ratings", str(csv_file), "--channel", "paper", *flags]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["accepted", "duplicate", "rejected", "rejected", "accepted",
                                                        "rejected"]
    assert main(["import-ratings", str(csv_file), "--channel", "paper", *flags]) == 1  # again: same answers
    assert [line.split("\t")[2] for line in capsys.readouterr().out.splitlines()][:2] == ["accepted", "duplicate"]
    with open_store(tmp_path, "henan") as store:
        assert store._conn.execute("SELECT count(*), min(channel) FROM ratings").fetchone() == (3, "paper")


def test_enter_and_contact(tmp_path, capsys, monkeypatch):
    flags = _db(tmp_path)
    assert main(["enter", "K1", "--channel", "hotline", "--score", "3", "--at", NOW.isoformat(), *flags]) == 0
    assert "\taccepted\t" in capsys.readouterr().out
    assert main(["enter", "K1", "--channel", "paper", "--score", "5", "--at", NOW.isoformat(), *flags]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("138 0000 0001\n"))
    assert main(["contact", "K2", *flags]) == 0
    assert "13800000001" not in capsys.readouterr().out
    assert main(["upstream", *flags]) == 0
    assert "pending 0" in capsys.readouterr().out


def _import(tmp_path, capsys, text: str) -> tuple[int, str, str]:
    flags = _db(tmp_path)
    csv_file = tmp_path / "paper.csv"
    csv_file.write_text(text, "utf-8")
    code = main(["import-ratings", str(csv_file), "--channel", "paper", *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_wrong_header_is_named_once_and_nothing_is_stored(tmp_path, capsys):
    code, out, err = _import(tmp_path, capsys, "caseid,score\nK0,5\nK1,4\n")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "paper.csv:1: wrong header: missing column(s) case_id; unknown column(s) 'caseid'" in err
    with open_store(tmp_path, "henan") as store:
        assert store._conn.execute("SELECT count(*) FROM ratings").fetchone() == (0,)


def test_bad_cells_name_their_column_and_value(tmp_path, capsys):
    at = NOW.isoformat()
    code, out, _ = _import(tmp_path, capsys, "case_id,score,rated_at\n"
                           f"K0,5,yesterday\nK1,seven,{at}\nK2,9,{at}\nK3,5,{at}\n")
    assert code == 1
    reasons = [line.split("\t")[3] for line in out.splitlines()]
    assert reasons[:3] == ["rated_at: 'yesterday' is not ISO 8601 (e.g. 2026-03-09T15:20+08:00)",
                           "score: 'seven' is not a whole number 1-5", "score: 9 is not 1-5"]
    assert out.splitlines()[3].split("\t")[2] == "accepted"


def test_an_unbalanced_quote_is_reported_with_its_line(tmp_path, capsys):
    at = NOW.isoformat()
    code, out, err = _import(tmp_path, capsys, "case_id,score,text,rated_at\n"
                             f"K0,5,fine,{at}\nK1,4,\"never closed,{at}\nK2,5,,{at}\n")
    assert code == 2 and out == ""
    assert "paper.csv:3: a quote opened in the row starting on this line is never closed" in err
