"""The public disclosure (公开), ``/public?month=YYYY-MM``: no login, monthly figures per hall and window.

Names, not ids; Chinese headers; 差评整改率 (差评 follow-ups of the month's
ratings that were rectified or explained, over those opened). No clerk, case
or rater appears. A month's figures are kept for a minute: the page is public.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hcp.collector.console.figures import TEMPLATES, Figures, figures_of
from hcp.collector.console.hall_counter import day_start_utc
from hcp.collector.console.hall_figures import count_span
from hcp.domain import CST, china_date

#: Seconds a month's figures are served from memory.
CACHE_S = 60.0
_cache: dict[tuple[int, str], tuple[float, dict]] = {}


def month_bounds(text: str | None, today: date) -> tuple[date, date]:
    """The first and last day of ``text`` (YYYY-MM; default this month), up to today."""
    try:
        first = date.fromisoformat(f"{text}-01") if text else today.replace(day=1)
    except ValueError:
        raise HTTPException(400, "month: 应为 YYYY-MM，例如 2026-03") from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, min(following - timedelta(days=1), today)


def disclosure(figures: Figures, first: date, last: date) -> dict:
    """Per hall, its total and each window's row for [first, last]."""
    store, names = figures.store, figures.names
    rectified = {(hall, window): (opened, done) for hall, window, opened, done
                 in store.rectification(day_start_utc(first), day_start_utc(last + timedelta(days=1)))}
    halls = []
    for hall_id in sorted(set(store.rated_halls()) | set(names.halls)):
        groups = count_span(store, figures.profile, hall_id, {"month": first.isoformat()}, last)
        windows = [{"name": names.window(hall_id, w), **_row(figures, counts["month"], rectified.get((hall_id, w)))}
                   for w, counts in sorted(groups.windows.items())]
        hall_fix = [v for (h, _w), v in rectified.items() if h == hall_id]
        total = (sum(o for o, _ in hall_fix), sum(d for _, d in hall_fix))
        halls.append({"name": names.hall(hall_id), "total": _row(figures, groups.hall["month"], total),
                      "windows": windows})
    return {"first": first.isoformat(), "last": last.isoformat(), "halls": halls}


def _row(figures: Figures, counts, fixes: tuple[int, int] | None) -> dict:
    row = counts.row(figures.profile)
    opened, done = fixes or (0, 0)
    keep = ("ratings", "good", "neutral", "bad", "good_rate", "bad_rate", "satisfaction", "participation")
    rate = round(done / opened, 4) if opened else None
    return {**{k: row[k] for k in keep}, "followups": opened, "rectify_rate": rate}


async def public(request: Request) -> Response:
    figures = figures_of(request)
    today = china_date(figures.hub.clock())
    first, last = month_bounds(request.query_params.get("month"), today)
    if first > today:
        raise HTTPException(400, "month: 尚未到来的月份")
    key = (id(figures), first.isoformat())
    cached = _cache.get(key)
    if cached is None or time.monotonic() - cached[0] > CACHE_S:
        data = await asyncio.to_thread(figures.hub.call, disclosure, figures, first, last)
        cached = _cache[key] = (time.monotonic(), data)
    months = _recent_months(today)
    return TEMPLATES.TemplateResponse(request, "figures/public.html",
                                      {"data": cached[1], "month": first.strftime("%Y-%m"), "months": months,
                                       "generated": figures.hub.clock().astimezone(CST).strftime("%Y-%m-%d %H:%M")})


def _recent_months(today: date, count: int = 12) -> list[str]:
    months, at = [], today.replace(day=1)
    for _ in range(count):
        months.append(at.strftime("%Y-%m"))
        at = (at - timedelta(days=1)).replace(day=1)
    return months


def public_routes() -> list[Route]:
    """The disclosure page; no login."""
    return [Route("/public", public)]
