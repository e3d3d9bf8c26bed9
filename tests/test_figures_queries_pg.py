"""The figures' SQL (collector/store/figures.py) on both engines: the known data set copied into a real
PostgreSQL 15 (tests/pg.py) answers every query as SQLite does, through the storage layer's Engine."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from hcp.collector.console.hall_counter import day_start_utc
from hcp.collector.store.engine import connect
from hcp.collector.store.figures import FiguresQueries
from hcp.collector.store.pg_schema import migrate
from hcp.domain import china_date, utc_text
from tests.figures_support import NOW, build, open_store
from tests.pg import copy_rows

#: Tables the figures read, copied row for row (PostgreSQL numbers ``row_order`` itself).
TABLES = ("devices", "cases", "ratings", "rating_claims", "rating_decisions", "rating_links", "exclusions",
          "malicious_raters", "followups", "followup_events", "rating_texts")


class Queries(FiguresQueries):
    """The mixin over a bare Engine, as the Store holds one after the storage layer's swap."""

    def __init__(self, engine) -> None:
        self._conn = engine


def _copy(sqlite, pg: psycopg.Connection) -> None:
    copy_rows(sqlite, pg, TABLES)


def _answers(queries: FiguresQueries) -> dict:
    today = china_date(NOW)
    first = today.replace(day=1)
    start, end = day_start_utc(first), day_start_utc(today + timedelta(days=1))
    since = utc_text(NOW - timedelta(hours=30))
    return {
        "marker": queries.figure_marker("hall01", today.isoformat()),
        "listed": queries.malicious_listed(),
        "ratings": sorted(queries.figure_ratings("hall01", first.isoformat(), today.isoformat()), key=repr),
        "cases": sorted(queries.figure_cases("hall01", start, end, False), key=repr),
        "cases_failed_too": sorted(queries.figure_cases("hall01", start, end, True), key=repr),
        "touched": tuple(sorted(part) if isinstance(part, list) else part
                         for part in queries.touched_days("hall01", since)),
        "followups": sorted(queries.hall_followups("hall01", 0), key=repr),
        "followup_rows": queries.followup_rows([1, 2]),
        "stepped": sorted(queries.stepped_followups(0)),
        "rectification": sorted(queries.rectification(start, end)),
        "comments": queries.recent_comments("hall01", 5),
        "halls": queries.rated_halls(),
    }


def test_every_figures_query_answers_alike_on_both_engines(tmp_path, pg_cluster, pg_database):
    store = open_store(tmp_path)
    build(store)
    sqlite_answers = _answers(store)
    with psycopg.connect(pg_cluster.dsn(pg_database)) as pg:
        migrate(pg)
        pg.commit()
        _copy(store._conn, pg)
    with connect(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/{pg_database}") as engine:
        assert engine.dialect == "postgresql"
        pg_answers = _answers(Queries(engine))
    store.close()
    assert sqlite_answers["listed"] and sqlite_answers["ratings"] and sqlite_answers["followups"]
    for name, answer in sqlite_answers.items():
        assert pg_answers[name] == answer, name
