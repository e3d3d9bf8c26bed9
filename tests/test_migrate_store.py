"""`hcp migrate-store`: an SQLite collector's month moved to PostgreSQL, chain included, and carrying on there."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from hcp.cli import main
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store, copy
from hcp.config.policy import load_profile
from hcp.domain import now_cst
from hcp.protocol import CaseRecord, Rating, RatingMessage
from tests.pg import Cluster
from tests.test_lifecycle import play_month


@pytest.fixture
def month(tmp_path: Path) -> Path:
    """A month of an Ordos hall on SQLite in ``tmp_path``, as ``hcp collector`` leaves it."""
    key = load_or_create_key(tmp_path / "collector.key")
    with Store.open(tmp_path / "collector.sqlite", load_profile("ordos"), key) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.register_device("h1-w2", "h1", "w2")
        play_month("ordos", store, Lifecycle(store))
    return tmp_path


@pytest.fixture
def target(pg_cluster: Cluster):
    name = pg_cluster.fresh_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_month_moves_verifies_and_counts_the_same(month, target, capsys):
    data = ["--data-dir", str(month)]
    code, out = _run(capsys, "migrate-store", *data, "--from", str(month / "collector.sqlite"), "--to", target)
    assert code == 0, out
    assert "the target verifies" in out
    assert _run(capsys, "verify", *data, "--database", target)[0] == 0
    sqlite_stats = _run(capsys, "stats", *data, "--by", "window")
    pg_stats = _run(capsys, "stats", *data, "--database", target, "--by", "window")
    assert sqlite_stats == pg_stats and sqlite_stats[0] == 0
    assert _run(capsys, "export", *data, "-o", str(month / "a.jsonl"))[0] == 0
    assert _run(capsys, "export", *data, "--database", target, "-o", str(month / "b.jsonl"))[0] == 0
    assert (month / "a.jsonl").read_text("utf-8") == (month / "b.jsonl").read_text("utf-8")
    # Run again: recognised, nothing copied twice.
    code, out = _run(capsys, "migrate-store", *data, "--from", str(month / "collector.sqlite"), "--to", target)
    assert code == 0 and "already holds this copy" in out


def test_the_collector_carries_on_on_postgresql(month, target, capsys):
    data = ["--data-dir", str(month)]
    assert _run(capsys, "migrate-store", *data, "--from", str(month / "collector.sqlite"), "--to", target)[0] == 0
    key = load_or_create_key(month / "collector.key")
    with Store.open(target, load_profile("ordos"), key) as store:
        store.add_cases([CaseRecord(case_id="new1", hall_id="h1", window_id="w1", item_code="I", item_name="x",
                                    clerk_id="E1", intake="ok", completed_at=now_cst())], now_cst())
        rating = Rating(rating_id="0190a0b0-0000-7000-8000-0000000000aa", seq=999, kind="service",
                        case_ids=["new1"], score=1, rated_at=now_cst(), clock_synced=True)
        answer = store.ingest("h1-w1", RatingMessage(v=1, device_id="h1-w1", ratings=[rating]), now_cst())
        assert [a.outcome for a in answer] == ["accepted"]
        assert store.totals()["cases"] > 1
    code, out = _run(capsys, "verify", *data, "--database", target)
    assert code == 0, out


def test_an_interrupted_copy_leaves_nothing_and_runs_again(month, target, capsys):
    data = ["--data-dir", str(month)]
    real = copy._copy_table

    def failing(src, dst, table):
        if table == "followups":
            raise OSError("the disk went away")
        return real(src, dst, table)

    with mock.patch.object(copy, "_copy_table", side_effect=failing), pytest.raises(OSError):
        main(["migrate-store", *data, "--from", str(month / "collector.sqlite"), "--to", target])
    capsys.readouterr()
    key = load_or_create_key(month / "collector.key")
    with Store.open(target, load_profile("ordos"), key) as store:
        assert store.totals()["ratings"] == 0  # the copy was one transaction
    code, out = _run(capsys, "migrate-store", *data, "--from", str(month / "collector.sqlite"), "--to", target)
    assert code == 0 and "the target verifies" in out, out


def test_a_target_with_other_data_is_refused(month, target, capsys):
    key = load_or_create_key(month / "collector.key")
    with Store.open(target, load_profile("ordos"), key) as store:
        store.register_device("x1", "h9", "w9")
        store.add_cases([CaseRecord(case_id="other", hall_id="h9", window_id="w9", item_code="I", item_name="x",
                                    clerk_id="E1", intake="ok", completed_at=now_cst())], now_cst())
        rating = Rating(rating_id="0190a0b0-0000-7000-8000-0000000000bb", seq=1, kind="service",
                        case_ids=["other"], score=5, rated_at=now_cst(), clock_synced=True)
        store.ingest("x1", RatingMessage(v=1, device_id="x1", ratings=[rating]), now_cst())
    code, out = _run(capsys, "migrate-store", "--data-dir", str(month), "--from", str(month / "collector.sqlite"),
                     "--to", target)
    assert code == 2 and "copy into an empty database" in out and out.count("\n") == 1, out
