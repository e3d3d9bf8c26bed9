"""What people read: China time and tables aligned by display width."""

from __future__ import annotations

from datetime import datetime

from wcwidth import wcswidth

from hcp.cli.display import china_fields, china_time, percent, table
from hcp.domain import CST


def test_stored_utc_is_shown_in_china_time() -> None:
    assert china_time("2026-12-24T16:00:00.000000+00:00") == "2026-12-25 00:00"
    assert china_time(datetime(2026, 12, 25, 8, 30, 5, tzinfo=CST), seconds=True) == "2026-12-25 08:30:05"
    assert china_time(None) == "-" and china_time("not a time") == "not a time"
    assert china_fields({"contact_due": "2026-12-24T16:00:00.000000+00:00", "state": "open"}) == {
        "contact_due": "2026-12-25T00:00:00+08:00", "state": "open"}


def test_columns_align_by_display_width_with_chinese_text() -> None:
    lines = table(("大厅", "评价数"), [("郑州市政务服务大厅", 12), ("h2", 3), (None, 1500)], right=(1,)).splitlines()
    assert len({wcswidth(line) for line in lines}) == 1  # a Chinese character is two columns wide
    assert [line.split()[-1] for line in lines[2:]] == ["12", "3", "1500"] and lines[4].startswith("-")
    assert percent(0.95123) == "95.1%" and percent(None) == "-"
