"""The console's request guards: who is logged in, and the CSRF token of every POST.

:class:`SessionMiddleware` runs before every route, the figures pages' too:
it sets ``request.state.user`` from the session cookie and refuses any POST
whose form lacks the session's CSRF token (the login form: its own cookie's
token), before the route sees it. The parsed form is left in
``request.state.form`` (field -> list of values), so a route never reads the
body again. Bodies are bounded first by :class:`hcp.collector.web.BodyLimit`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hcp.collector.console.auth import CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE, User, same_token

#: The path whose POST carries the login cookie's token instead of a session's.
LOGIN_PATH = "/login"


class SessionMiddleware:
    """ASGI middleware: the session's user into ``request.state.user``; a POST without its CSRF token is 403."""

    def __init__(self, app: ASGIApp, lookup: Callable[[str], User | None],
                 refuse: Callable[[Request, str], Awaitable[HTMLResponse]] | None = None) -> None:
        self.app = app
        self.lookup = lookup
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session_id = request.cookies.get(SESSION_COOKIE, "")
        user = await run_in_threadpool(self.lookup, session_id) if session_id else None
        state = scope.setdefault("state", {})
        state["user"] = user
        if scope["method"] == "POST":
            body = await _whole_body(receive)
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            state["form"] = form
            expected = request.cookies.get(LOGIN_COOKIE, "") if scope["path"] == LOGIN_PATH else (
                user.csrf if user else "")
            if not same_token((form.get(CSRF_FIELD) or [""])[0], expected):
                response = await self._refusal(request)
                await response(scope, receive, send)
                return
            receive = _replay(body)
        await self.app(scope, receive, send)

    async def _refusal(self, request: Request) -> HTMLResponse:
        text = "表单已失效或来源不明（缺少安全令牌），请返回页面刷新后重试。"
        if self.refuse is not None:
            return await self.refuse(request, text)
        return HTMLResponse(text, status_code=403)


async def _whole_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def form_value(request: Request, name: str) -> str:
    """One field of the POST's form ('' when absent), as the middleware parsed it."""
    form = getattr(request.state, "form", None) or {}
    return (form.get(name) or [""])[0]


def form_values(request: Request, name: str) -> list[str]:
    """Every value of a repeated field of the POST's form."""
    form = getattr(request.state, "form", None) or {}
    return list(form.get(name) or [])
