"""Migration ``m010_figures``: the indexes the console's figures read by (dashboard, board, disclosure).

A hall's figures for a day, week or month read that hall's ratings by China day
and its cases by completion time; without these indexes every dashboard
refresh scans the whole ``ratings`` table (a province holds many halls).
The PostgreSQL twin is ``pg_schema``'s ``m010_figures``, with the same statements.
"""

from __future__ import annotations

import sqlite_utils

from hcp.db import run_script

#: The same statements on both engines.
SQL = """
CREATE INDEX ratings_by_hall_day ON ratings (hall_id, kind, day);
CREATE INDEX ratings_by_hall_received ON ratings (hall_id, received_at);
CREATE INDEX cases_by_hall_completion ON cases (hall_id, completed_at);
CREATE INDEX cases_by_hall_receipt ON cases (hall_id, received_at);
CREATE INDEX rating_links_by_time ON rating_links (linked_at)
"""


def m010_figures(db: sqlite_utils.Database) -> None:
    """Indexes for a hall's figures over a span of days."""
    run_script(db, SQL)
