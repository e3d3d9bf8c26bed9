"""The console's dashboard per hall (today, this week, this month), live by server-sent events.

The routes find their :class:`Figures` (store, names, the :class:`FigureHub`)
on ``request.app.state.figures``; the console's app sets it once
(:func:`install`). Every authenticated route passes :func:`_authorize` first,
which asks the console's ``auth.require`` for the hall's roles.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from hcp.collector.console.hall_figures import PERIODS, FigureHub, Names

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters["pct"] = lambda rate: "—" if rate is None else f"{rate * 100:.1f}%"
TEMPLATES.env.filters["score"] = lambda value: "—" if value is None else f"{value:.1f}"
#: Who may read a hall's figures (the console's role names): hall manager, follow-up, appeals, supervisor.
READERS = ("manager", "followup", "reviewer", "supervisor")
#: chart.js as ``make venv`` installs it from the npm registry (collector/console/static/package-lock.json).
CHART_JS = HERE / "static" / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
#: Seconds between two comment lines on an idle event stream (proxies close silent connections).
KEEPALIVE_S = 15.0


class Figures:
    """What the figure pages read: the store, display names and the figures' hub."""

    def __init__(self, store: Any, names: Names, *, clock: Callable[[], datetime] | None = None,
                 poll_s: float | None = None) -> None:
        self.store, self.names = store, names
        self.hub = FigureHub(store, store.profile, names, clock=clock, **({"poll_s": poll_s} if poll_s else {}))

    @property
    def profile(self) -> Any:
        return self.store.profile


def install(app: Any, store: Any, names: Names, **options: Any) -> Figures:
    """Give ``app`` the figures its routes read; returns them."""
    app.state.figures = Figures(store, names, **options)
    return app.state.figures


def figures_of(request: Request) -> Figures:
    return request.app.state.figures


def _authorize(request: Request, hall_id: str | None, roles: tuple[str, ...] = READERS) -> None:
    """Refuse (403, or the login page) unless the signed-in user holds one of ``roles`` for ``hall_id``.

    ``hall_id`` None means every hall (supervision). The console's auth decides; until it is
    joined, a user set on ``request.state.user`` by the app is asked directly.
    """
    try:
        from hcp.collector.console.auth import require
    except ImportError:
        user = getattr(request.state, "user", None)
        if user is None or not user.can(roles, hall_id):
            raise HTTPException(403, "无权访问") from None
        return
    require(request, roles, hall_id)


def known_hall(figures: Figures, hall_id: str) -> str:
    """``hall_id`` if the collector knows it (a terminal or a configured name), else 404."""
    if hall_id in figures.names.halls or hall_id in figures.hub.call(figures.store.rated_halls):
        return hall_id
    raise HTTPException(404, "没有这个大厅")


async def dashboard(request: Request) -> Response:
    hall_id = request.path_params["hall"]
    _authorize(request, hall_id)
    figures = figures_of(request)
    known_hall(figures, hall_id)
    data = await asyncio.to_thread(figures.hub.figures, hall_id)
    page = "figures/dashboard_body.html" if request.query_params.get("fragment") else "figures/dashboard.html"
    return TEMPLATES.TemplateResponse(request, page, {"data": data, "periods": PERIODS},
                                      headers={"Cache-Control": "no-store"})


async def figures_json(request: Request) -> Response:
    hall_id = request.path_params["hall"]
    _authorize(request, hall_id)
    figures = figures_of(request)
    known_hall(figures, hall_id)
    return JSONResponse(await asyncio.to_thread(figures.hub.figures, hall_id))


async def dashboard_events(request: Request) -> Response:
    hall_id = request.path_params["hall"]
    _authorize(request, hall_id)
    figures = figures_of(request)
    known_hall(figures, hall_id)
    return event_stream(request, figures.hub, hall_id, lambda data: data)


def event_stream(request: Request, hub: FigureHub, hall_id: str, shape: Callable[[dict], dict]) -> Response:
    """Server-sent events: the hall's figures (shaped by ``shape``) now and on every change."""

    async def events() -> AsyncIterator[str]:
        queue = hub.subscribe(hall_id)
        try:
            yield "retry: 1000\n\n"  # EventSource reconnects a second after the collector restarts
            while not await request.is_disconnected():
                try:
                    data = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield f"data: {json.dumps(shape(data), ensure_ascii=False)}\n\n"
        finally:
            hub.unsubscribe(hall_id, queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def chart_js(_request: Request) -> Response:
    if not CHART_JS.exists():
        raise HTTPException(404, "chart.js is not installed: run make venv (npm ci in collector/console/static)")
    return FileResponse(CHART_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ("figures.css", "dashboard.js", "board.js", "stats.js"):
        raise HTTPException(404)
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return FileResponse(HERE / "static" / name, media_type=media, headers={"Cache-Control": "max-age=3600"})


def figures_routes() -> list[Route]:
    """The dashboard's routes (authenticated), and the figures' static files."""
    from hcp.collector.console.stats_page import stats_routes

    return [Route("/halls/{hall}", dashboard), Route("/halls/{hall}/figures.json", figures_json),
            Route("/halls/{hall}/events", dashboard_events), *stats_routes()]


def static_routes() -> list[Route]:
    """The figure pages' scripts and styles, and chart.js (no login: the public pages use them too)."""
    return [Route("/static/vendor/chart.umd.min.js", chart_js), Route("/static/figures/{name}", static_file)]
