"""Statistics, ``/stats``: the figures of ``hcp stats`` with charts in the browser, rankings, CSV and XLSX.

The figures are :func:`hcp.collector.stats.compute`'s (a test holds them
equal), for one hall (or every hall, for supervision) over China days [from,
to], grouped by window, clerk, item, hall, day or month, counted from the
store's grouped rows per hall (one month of a hall of a million ratings in
well under a second, where ``compute`` reads every rating); the ranking is
:func:`~hcp.collector.stats.ranking`'s.
Charts are drawn by chart.js, served by the console itself. Exports carry
Chinese headers and no personal data (no rating, case or rater ids).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hcp.collector import stats
from hcp.collector.console.figures import SECURITY_HEADERS, TEMPLATES, Figures, _authorize, figures_of, readable_halls
from hcp.collector.console.hall_counter import HallCounter
from hcp.collector.console.hall_figures import Counts
from hcp.domain import china_date

BY_NAMES = {"window": "窗口", "clerk": "工作人员", "item": "事项", "hall": "大厅", "day": "日期", "month": "月份"}
#: Export columns: (key, Chinese header). The group's own column comes first.
COLUMNS = (("ratings", "评价数"), ("l5", "非常满意"), ("l4", "满意"), ("l3", "基本满意"), ("l2", "不满意"),
           ("l1", "非常不满意"), ("good", "好评"), ("neutral", "中评"), ("bad", "差评"), ("good_rate", "好评率"),
           ("neutral_rate", "中评率"), ("bad_rate", "差评率"), ("satisfaction", "满意度"), ("defaults", "默认评价"),
           ("default_share", "默认评价占比"), ("excluded_invalid", "无效评价"), ("excluded_malicious", "恶意差评"),
           ("excluded_listed", "恶意评价人"), ("completed", "办结件数"), ("rated", "参评件数"),
           ("participation", "参评率"))


@dataclass(frozen=True)
class Query:
    """What the statistics page was asked for."""

    hall: str | None
    by: str
    first: date
    last: date


def parse(request: Request, today: date) -> Query:
    """The query from the page's parameters; a bad one is a 400 naming the parameter."""
    params = request.query_params
    by = params.get("by", "window")
    if by not in BY_NAMES:
        raise HTTPException(400, f"by: 应为 {', '.join(BY_NAMES)} 之一")
    try:
        last = date.fromisoformat(params["to"]) if params.get("to") else today
        first = date.fromisoformat(params["from"]) if params.get("from") else last - timedelta(days=29)
    except ValueError:
        raise HTTPException(400, "from/to: 日期应为 YYYY-MM-DD") from None
    if first > last:
        raise HTTPException(400, "from: 起始日期晚于结束日期")
    return Query(params.get("hall") or None, by, first, last)


def figures_for(figures: Figures, query: Query) -> tuple[list[dict], list[dict]]:
    """The rows (with a display ``name``) and the daily trend of ``query``, as ``hcp stats`` counts them."""
    store, profile, names = figures.store, figures.profile, figures.names
    halls = [query.hall] if query.hall else sorted(set(store.rated_halls()) | set(names.halls))
    rows, trend = grouped(store, profile, halls, query.first, query.last, query.by, trend=True)
    for row in rows:
        row["name"] = _name(names, query.by, row, several=query.hall is None and len(names.halls) > 1)
    return rows, trend


def grouped(store, profile, halls: list[str], first: date, last: date, by: str,
            *, trend: bool = False) -> tuple[list[dict], list[dict]]:
    """``hcp stats``'s rows by ("hall", ``by``) for ``halls`` over [first, last], counted from the store's
    grouped rows (:class:`~hcp.collector.console.hall_counter.HallCounter`), and the daily trend over all."""
    tallies: dict[tuple, Counts] = defaultdict(Counts)
    days: dict[str, Counts] = defaultdict(Counts)
    for hall in halls:
        counter = HallCounter(hall)
        counter.count(store, profile.failed_intake_ratable, first, last)
        for day, rows in counter.ratings.items():
            for window, clerk, item, score, is_default, excluded, listed, count in rows:
                for counts in (tallies[_key(by, hall, window, clerk, item, day)], days[day]):
                    if excluded or listed:
                        counts.excluded[excluded or "listed"] += count
                    else:
                        counts.levels[score] += count
                        counts.defaults += count if is_default else 0
        for day, rows in counter.cases.items():
            for window, clerk, item, rated, count in rows:
                for counts in (tallies[_key(by, hall, window, clerk, item, day)], days[day]):
                    counts.completed += count
                    counts.rated += count if rated else 0
    dims = ("hall",) if by == "hall" else ("hall", by)
    rows = [{**dict(zip(dims, key, strict=True)), **_plain(tallies[key].row(profile))}
            for key in sorted(tallies, key=lambda key: tuple("" if part is None else part for part in key))]
    daily = [{"day": day, **_plain(days[day].row(profile))} for day in sorted(days)] if trend else []
    return rows, daily


def _key(by: str, hall: str, window: str, clerk: str | None, item: str | None, day: str) -> tuple:
    value = {"window": f"{hall}/{window}", "clerk": clerk, "item": item, "day": day, "month": day[:7]}
    return (hall,) if by == "hall" else (hall, value[by])


def _plain(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("open_followups", "overdue_followups")}


def _name(names, by: str, row: dict, *, several: bool) -> str:
    if by == "hall":
        return names.hall(row["hall"])
    if by == "window":
        hall, window = row["window"].split("/", 1)
        return names.window(hall, window) + (f"（{names.hall(hall)}）" if several else "")
    return str(row[by] if row[by] is not None else "—")


async def stats_page(request: Request) -> Response:
    figures = figures_of(request)
    query = parse(request, china_date(figures.hub.clock()))
    _authorize(request, query.hall)
    if query.by == "hall" and query.hall:
        query = Query(query.hall, "window", query.first, query.last)
    rows, trend = await asyncio.to_thread(figures.hub.call, figures_for, figures, query)
    halls = readable_halls(request, figures)
    chart = {"labels": [r["name"] for r in rows], "satisfaction": [r["satisfaction"] for r in rows],
             "good": [r["good"] for r in rows], "neutral": [r["neutral"] for r in rows],
             "bad": [r["bad"] for r in rows],
             **_daily_series(trend, query.first, query.last)}
    return TEMPLATES.TemplateResponse(request, "figures/stats.html", {
        "query": query, "rows": rows, "ranking": stats.ranking(rows)[:10], "chart": chart, "by_names": BY_NAMES,
        "halls": [(h, figures.names.hall(h)) for h in halls], "export": request.url.query})


def _daily_series(trend: list[dict], first: date, last: date) -> dict:
    """The trend chart's series, one point a day from ``first`` to ``last`` (a day without ratings: a gap)."""
    by_day = {row["day"]: row for row in trend}
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    return {"days": days, "day_satisfaction": [by_day[d]["satisfaction"] if d in by_day else None for d in days],
            "day_bad": [by_day[d]["bad"] if d in by_day else 0 for d in days]}


def table(rows: list[dict], by: str) -> tuple[list[str], list[list]]:
    """Chinese headers and cells of an export: the group's name, then :data:`COLUMNS`."""
    headers = ["大厅", BY_NAMES[by]] if by != "hall" else ["大厅"]
    headers += [title for _key, title in COLUMNS]
    cells = [([r["hall"], r["name"]] if by != "hall" else [r["name"]]) + [r.get(key) for key, _ in COLUMNS]
             for r in rows]
    return headers, cells


async def export(request: Request) -> Response:
    figures = figures_of(request)
    query = parse(request, china_date(figures.hub.clock()))
    _authorize(request, query.hall)
    rows, _trend = await asyncio.to_thread(figures.hub.call, figures_for, figures, query)
    headers, cells = table(rows, query.by)
    stem = f"好差评统计-{BY_NAMES[query.by]}-{query.first}-{query.last}"
    if request.url.path.endswith(".csv"):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(headers)
        writer.writerows(cells)
        body, media, suffix = ("\ufeff" + out.getvalue()).encode(), "text/csv; charset=utf-8", "csv"  # BOM: Excel
    else:
        body, media, suffix = _xlsx(headers, cells, query), \
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"
    disposition = f"attachment; filename*=UTF-8''{quote(f'{stem}.{suffix}')}"
    return Response(body, media_type=media, headers={**SECURITY_HEADERS, "Content-Disposition": disposition})


def _xlsx(headers: list[str], cells: list[list], query: Query) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = f"按{BY_NAMES[query.by]}"
    sheet.append([f"统计期间 {query.first} 至 {query.last}（北京时间）"])
    sheet.append(headers)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in cells:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def stats_routes() -> list[Route]:
    """The statistics page and its exports (authenticated)."""
    return [Route("/stats", stats_page), Route("/stats.csv", export), Route("/stats.xlsx", export)]
