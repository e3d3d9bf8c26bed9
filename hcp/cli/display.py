"""How the CLI shows things to people: times in China Standard Time, tables aligned for Chinese text.

The database keeps moments as UTC text (``hcp.domain.utc_text``), which sorts
well and is what exports carry; a person at a service hall reads China time.
Columns are aligned by display width (``wcwidth``: a Chinese character takes
two columns), which ``tabulate`` uses when ``wcwidth`` is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tabulate import tabulate

from hcp.domain import CST

#: Suffixes of the fields that hold a moment, in records shown as JSON.
TIME_SUFFIXES = ("_at", "_due", "_seen", "cutoff")


def china_time(value: str | datetime | None, *, seconds: bool = False) -> str:
    """``value`` (a datetime or stored ISO text) as China time, e.g. ``2026-12-25 00:00``; ``-`` for none."""
    moment = _moment(value)
    if moment is None:
        return "-" if not value else str(value)
    return moment.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def china_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with every moment field as China-time ISO text (``+08:00``), for JSON a person reads."""
    shown = {}
    for key, value in record.items():
        moment = _moment(value) if key.endswith(TIME_SUFFIXES) else None
        shown[key] = moment.astimezone(CST).isoformat(timespec="seconds") if moment else value
    return shown


def _moment(value: str | datetime | None) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=CST)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, right: Sequence[int] = ()) -> str:
    """A plain text table, columns aligned by display width; ``right``: indexes of right-aligned columns."""
    align = ["right" if i in right else "left" for i in range(len(headers))]
    shown = [["-" if cell is None or cell == "" else cell for cell in row] for row in rows]
    return tabulate(shown, headers=list(headers), tablefmt="simple", disable_numparse=True, colalign=align)


def percent(rate: float | None) -> str:
    """A rate 0-1 as a percentage with one decimal; ``-`` when there is nothing to divide."""
    return "-" if rate is None else f"{rate * 100:.1f}%"
