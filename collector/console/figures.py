"""The console's dashboard per hall (today, this week, this month), live by server-sent events.

The routes find their :class:`Figures` (store, names, the :class:`FigureHub`)
on ``request.app.state.figures``: set by :func:`install`, or made on first use
from the console's own state (``app.state.console``: its store, names, clock
and the lock of its store connection). Every authenticated route passes
:func:`_authorize` first, which asks the console's ``auth.require``.
:func:`figures_routes` returns every route of the figures, the big screen's,
the disclosure's and their static files included (those three need no login).
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


def _console_frame(request: Request) -> dict:
    """The console's own top bar for the signed-in pages (its navigation, the user, logging out), so the
    dashboard and statistics look and move like the rest of the console; the public pages have none."""
    from hcp.collector.console.app import _role_labels, navigation
    from hcp.collector.console.auth import current_user

    user = current_user(request)
    if user is not None and not hasattr(user, "csrf"):
        user = None  # a test's stand-in reader, not a console session
    return {"console_user": user, "console_nav": navigation(user, request.url.path) if user else [],
            "console_roles": _role_labels(user) if user else ""}


TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"), context_processors=[_console_frame])
TEMPLATES.env.filters["pct"] = lambda rate: "—" if rate is None else f"{rate * 100:.1f}%"
TEMPLATES.env.filters["score"] = lambda value: "—" if value is None else f"{value:.1f}"
#: Who may read a hall's figures (the console's role names): hall manager, follow-up, appeals, supervisor.
READERS = ("manager", "followup", "reviewer", "supervisor")
#: chart.js as ``make venv`` installs it from the npm registry (collector/console/static/package-lock.json).
CHART_JS = HERE / "static" / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
#: Seconds between two comment lines on an idle event stream (proxies close silent connections).
KEEPALIVE_S = 15.0
#: The console's navigation links to the figures: (path, label, roles).
NAV = (("/halls", "实时看板", READERS), ("/stats", "统计分析", READERS))
#: Scripts and styles from the console itself only; nothing inline, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
}


class Figures:
    """What the figure pages read: the store, display names and the figures' hub."""

    def __init__(self, store: Any, names: Names, *, clock: Callable[[], datetime] | None = None,
                 poll_s: float | None = None, lock: Any = None) -> None:
        self.store, self.names = store, names
        self.hub = FigureHub(store, store.profile, names, clock=clock, lock=lock,
                             **({"poll_s": poll_s} if poll_s else {}))

    @property
    def profile(self) -> Any:
        return self.store.profile


def install(app: Any, store: Any, names: Names, **options: Any) -> Figures:
    """Give ``app`` the figures its routes read; returns them."""
    app.state.figures = Figures(store, names, **options)
    return app.state.figures


def figures_of(request: Request) -> Figures:
    """The figures of the request's app, made from the console's state on first use."""
    state = request.app.state
    if getattr(state, "figures", None) is None:
        console = state.console
        names = Names(dict(console.settings.hall_names), dict(console.settings.window_names))
        state.figures = Figures(console.store, names, clock=console.clock, lock=console.lock)
    return state.figures


def _authorize(request: Request, hall_id: str | None, roles: tuple[str, ...] = READERS) -> None:
    """Refuse (403, or the login page) unless the signed-in user holds one of ``roles`` for ``hall_id``.

    ``hall_id`` None means every hall: only a user whose roles cover every hall (supervision).
    The console's ``auth.require`` decides first when it is there (login page, 403).
    """
    try:
        from hcp.collector.console.auth import require
    except ImportError:
        pass
    else:
        require(request, roles, hall_id)  # None there means "some hall": every hall is checked below
    user = getattr(request.state, "user", None)
    if user is None:
        raise HTTPException(403, "无权访问：请先登录。")
    if hall_id is None and user.halls(roles) is not None:
        raise HTTPException(403, "无权访问：全部大厅的统计仅限所辖为全部大厅的账号，请选择大厅。")
    if hall_id is not None and not user.can(roles, hall_id):
        raise HTTPException(403, "无权访问：您的角色或所辖大厅不包括此大厅。")


def readable_halls(request: Request, figures: Figures) -> list[str]:
    """The halls the signed-in user may read figures of, in order."""
    known = sorted(set(figures.hub.call(figures.store.rated_halls)) | set(figures.names.halls))
    user = getattr(request.state, "user", None)
    allowed = None if user is None else user.halls(READERS)
    return known if allowed is None else [hall for hall in known if hall in allowed]


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
                                      headers=SECURITY_HEADERS)


async def figures_json(request: Request) -> Response:
    hall_id = request.path_params["hall"]
    _authorize(request, hall_id)
    figures = figures_of(request)
    known_hall(figures, hall_id)
    return JSONResponse(await asyncio.to_thread(figures.hub.figures, hall_id), headers=SECURITY_HEADERS)


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
                             headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"})


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


async def halls(request: Request) -> Response:
    _authorize_some(request)
    figures = figures_of(request)
    rows = [(hall, figures.names.hall(hall)) for hall in readable_halls(request, figures)]
    return TEMPLATES.TemplateResponse(request, "figures/halls.html", {"halls": rows}, headers=SECURITY_HEADERS)


def _authorize_some(request: Request) -> None:
    """Refuse unless the user reads the figures of some hall."""
    user = getattr(request.state, "user", None)
    try:
        from hcp.collector.console.auth import require
    except ImportError:
        if user is None or user.halls(READERS) == frozenset():
            raise HTTPException(403, "无权访问") from None
    else:
        require(request, READERS, None)


def figures_routes() -> list[Route]:
    """Every route of the figures: the dashboards and statistics (login), the big screen and the
    disclosure (no login), and their static files."""
    from hcp.collector.console.board import board_routes
    from hcp.collector.console.public import public_routes
    from hcp.collector.console.stats_page import stats_routes

    return [Route("/halls", halls), Route("/halls/{hall}", dashboard),
            Route("/halls/{hall}/figures.json", figures_json), Route("/halls/{hall}/events", dashboard_events),
            *stats_routes(), *board_routes(), *public_routes(), *static_routes()]


def static_routes() -> list[Route]:
    """The figure pages' scripts and styles, and chart.js (no login: the public pages use them too)."""
    return [Route("/static/vendor/chart.umd.min.js", chart_js), Route("/static/figures/{name}", static_file)]
