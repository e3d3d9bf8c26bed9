"""The hall's big screen, ``/board/{hall}``: no login, read-only, for a 1920x1080 TV in the hall.

Today's satisfaction, each window's stars, this month's window ranking and the
newest comments, live by server-sent events (the browser's EventSource
reconnects by itself after a collector restart). Nothing personal: no clerk,
no case, no rater; digits and addresses a citizen typed into a comment are
masked (:func:`redact`).
"""

from __future__ import annotations

import asyncio
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hcp.collector.console.figures import SECURITY_HEADERS, TEMPLATES, event_stream, figures_of, known_hall
from hcp.domain import CST

#: Comments shown on the screen.
COMMENTS = 6
# A phone number, an id card number, a long digit run of any kind, or an e-mail address.
_PERSONAL = re.compile(r"[0-9０-９][0-9０-９ \-]{4,}[0-9０-９Xx]|[\w.+-]+@[\w-]+(\.[\w-]+)+")


def redact(text: str) -> str:
    """``text`` with anything that may identify a person (long digit runs, e-mail addresses) masked."""
    return _PERSONAL.sub(lambda match: "＊" * min(len(match.group()), 6), text)


def stars(satisfaction: float | None) -> str:
    """Five stars, filled to the mean level (satisfaction / 20), rounded to the nearest star."""
    if satisfaction is None:
        return "☆☆☆☆☆"
    filled = round(satisfaction / 20)
    return "★" * filled + "☆" * (5 - filled)


def board_data(figures, hall_id: str) -> dict:
    """What the screen shows: the hall's figures without clerks, and the newest comments, masked."""
    data = figures.hub.figures(hall_id)
    today, month = data["periods"]["today"], data["periods"]["month"]
    windows = [{"name": w["name"], "ratings": w["ratings"], "satisfaction": w["satisfaction"],
                "stars": stars(w["satisfaction"])} for w in today["windows"]]
    ranked = sorted((w for w in month["windows"] if w["ratings"]),
                    key=lambda w: (-w["satisfaction"], -w["ratings"]))
    comments = [{"at": _cst_time(at), "window": figures.names.window(hall_id, window), "stars": "★" * score,
                 "text": redact(text)}
                for at, window, score, text in figures.hub.call(figures.store.recent_comments, hall_id, COMMENTS)]
    return {"hall_name": data["hall_name"], "as_of": data["as_of"], "today": today["total"], "windows": windows,
            "ranking": [{"name": w["name"], "satisfaction": w["satisfaction"], "ratings": w["ratings"]}
                        for w in ranked[:8]], "comments": comments}


def _cst_time(stored: str) -> str:
    from datetime import datetime

    return datetime.fromisoformat(stored).astimezone(CST).strftime("%m-%d %H:%M")


async def board(request: Request) -> Response:
    figures = figures_of(request)
    hall_id = known_hall(figures, request.path_params["hall"])
    data = await asyncio.to_thread(board_data, figures, hall_id)
    page = "figures/board_body.html" if request.query_params.get("fragment") else "figures/board.html"
    return TEMPLATES.TemplateResponse(request, page, {"board": data, "hall": hall_id},
                                      headers=SECURITY_HEADERS)


async def board_events(request: Request) -> Response:
    figures = figures_of(request)
    hall_id = known_hall(figures, request.path_params["hall"])
    # The event only says "changed" and when: the screen fetches its own (masked) body again.
    return event_stream(request, figures.hub, hall_id, lambda data: {"as_of": data["as_of"]})


def board_routes() -> list[Route]:
    """The big screen's routes; no login."""
    return [Route("/board/{hall}", board), Route("/board/{hall}/events", board_events)]
