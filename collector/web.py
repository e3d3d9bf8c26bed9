"""The phone rating page behind the receipt QR: Starlette app, served by uvicorn in a thread.

The page writes through its OWN store connection (same SQLite file, WAL), not
the MQTT worker's: each rating is one ``BEGIN IMMEDIATE`` transaction in which
the rules are judged and the unit keys claimed (:mod:`hcp.collector.channels`),
so the database's unique claims decide between the window and the phone, in
any process. A lock keeps the app's one connection to one request at a time;
SQLite serialises writers anyway, and a hall's phones are few.

Requests are counted (the limits package, a moving window in memory) per
client address (an IPv6 client by its /64, which one subscriber holds whole),
and per case once the receipt QR's signature checks out;
over a budget the page answers 429 with Retry-After. Client addresses are
counted, never logged.

Memory is bounded before any of that: a body is refused 413 by its
Content-Length before a byte of it is read, and a body without one (chunked) is
read with a hard cap (:class:`BodyLimit`); uvicorn answers 503 beyond
``web.max_connections`` and 400 to a header block over ``web.max_header_bytes``.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hcp.collector import webpage
from hcp.collector.channels import CaseState, Channels, Entry
from hcp.collector.store import Store
from hcp.config.channels import DEFAULT_TRUSTED_PROXIES
from hcp.domain import Channel, Kind, Outcome, now_cst
from hcp.ui.exc import TokenError, TokenProblem
from hcp.ui.receipt import verify

log = logging.getLogger("hcp.collector.web")


@dataclass(frozen=True)
class PageSettings:
    """What the page shows besides the case record."""

    receipt_key: bytes = field(repr=False)
    hall_names: dict[str, str] = field(default_factory=dict)
    window_names: dict[str, str] = field(default_factory=dict)  # "hall/window" -> name
    limit_per_address: str = "300/minute"  # limits notation, as web.limit_per_address
    limit_per_case: str = "20/minute"
    max_body_bytes: int = 16 * 1024  # web.max_body_bytes: a form is a few hundred bytes


@dataclass(frozen=True)
class ServerLimits:
    """What uvicorn itself bounds (web.max_connections, web.max_header_bytes)."""

    max_connections: int = 100
    max_header_bytes: int = 16 * 1024


class BodyTooLarge(Exception):
    """A request body over web.max_body_bytes; answered 413 without reading the rest."""


class BodyLimit:
    """ASGI middleware: refuse a body over ``max_bytes`` by its Content-Length before reading it, and stop
    reading one without a length (chunked) as soon as it passes the cap, so no request can make the
    process hold more than ``max_bytes`` of body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await _too_large(scope, send)
            return
        await self.app(scope, self._capped(receive), send)

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(f"request body over {self.max_bytes} bytes")
            return message

        return capped


def _declared_length(scope: Scope) -> int:
    """The Content-Length a request declares; 0 when it declares none (uvicorn refuses a malformed one)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.strip().isdigit() else 0
    return 0


async def _too_large(scope: Scope, send: Send) -> None:
    await _body_too_large(None, BodyTooLarge())(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


class Throttled(Exception):
    """Over a request budget: ask again after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"over the request budget; retry after {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class RequestBudgets:
    """Requests counted per client address and per case; refusals are counted and logged once a minute."""

    def __init__(self, per_address: str, per_case: str, clock: Callable[[], float] = time.monotonic) -> None:
        # A moving window counts exactly N in any 60 s (a fixed or sliding-counter window lets more
        # through at a window's edge); it keeps at most N times per key, pruned as they expire.
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._rates = {"address": parse_many(per_address), "case": parse_many(per_case)}
        self._clock = clock
        self._lock = threading.Lock()
        self._refused: dict[str, int] = {}
        self._logged_at = -math.inf  # the first refusal is logged at once

    def take(self, kind: str, key: str) -> None:
        """Count one request against ``kind`` ("address" or "case") for ``key``; raise Throttled if over."""
        over = [rate for rate in self._rates[kind] if not self._limiter.hit(rate, kind, key)]
        if over:
            self._note_refusal(kind)
            raise Throttled(max(self._wait_s(rate, kind, key) for rate in over))

    def _wait_s(self, rate: RateLimitItem, kind: str, key: str) -> float:
        reset = self._limiter.get_window_stats(rate, kind, key).reset_time
        return max(1.0, reset - time.time())

    def _note_refusal(self, kind: str) -> None:
        with self._lock:
            self._refused[kind] = self._refused.get(kind, 0) + 1
            now = self._clock()
            if now - self._logged_at < 60:
                return
            counts, self._refused, self._logged_at = self._refused, {}, now
        log.warning("phone page: refused %s over the request budget (web.limit_per_address, web.limit_per_case)",
                    ", ".join(f"{n} request(s) per {kind}" for kind, n in sorted(counts.items())))


class RatingPage:
    """The page's logic over one store; the Starlette app calls it in a worker thread."""

    def __init__(self, store: Store, settings: PageSettings, clock: Callable[[], datetime] = now_cst) -> None:
        self.store = store
        self.channels = Channels(store)
        self.settings = settings
        self.clock = clock
        self.budgets = RequestBudgets(settings.limit_per_address, settings.limit_per_case)
        self._lock = threading.RLock()

    def show(self, case_id: str, token: str) -> tuple[int, str, str]:
        """(HTTP status, title, body) for opening the page; raises Throttled over the case's budget."""
        problem = self._token_problem(case_id, token)
        if problem:
            return problem
        with self._lock:
            state = self.channels.case_state(case_id, self.clock())
        return self._for_state(state, token)

    def submit(self, case_id: str, fields: dict[str, list[str]]) -> tuple[int, str, str]:
        """(HTTP status, title, body) after the form was sent; raises Throttled over the case's budget."""
        token = _one(fields, "t")
        problem = self._token_problem(case_id, token)
        if problem:
            return problem
        form = _form_state(fields)
        if form.error:
            return self._again(case_id, token, form)
        with self._lock:
            state = self.channels.case_state(case_id, self.clock())
            if state.state != "open":
                return self._for_state(state, token)
            return self._enter(case_id, token, form, state)

    def _enter(self, case_id: str, token: str, form: webpage.FormState, state: CaseState) -> tuple[int, str, str]:
        now = self.clock()
        result = self.channels.enter(Entry(case_id, form.score or 0, Channel.QR, now, form.reasons, form.text), now)
        if result.outcome != Outcome.ACCEPTED:
            if not result.stored:
                return self._again(case_id, token, webpage.FormState(**{**form.__dict__, "error": _plain(result)}))
            return self._for_state(self.channels.case_state(case_id, now), token)
        log.info("phone rating %s stored for a case in hall %s", result.rating_id, state.case.hall_id)
        note = self._hall(case_id, form, now)
        return 200, "感谢您的评价", webpage.message("感谢您的评价", "您的评价已提交，我们将持续改进服务。" + note,
                                                    ok=True, case=self._page_case(state))

    def _hall(self, case_id: str, form: webpage.FormState, now: datetime) -> str:
        if form.hall_score is None or not self.store.profile.hall_rating:
            return ""
        result = self.channels.enter(Entry(case_id, form.hall_score, Channel.QR, now, kind=Kind.HALL), now)
        if result.outcome == Outcome.ACCEPTED:
            return "大厅评价已提交。"
        return "您今天已评价过本大厅，本次大厅评价未计入。" if result.outcome == Outcome.DUPLICATE else ""

    def _again(self, case_id: str, token: str, form: webpage.FormState) -> tuple[int, str, str]:
        with self._lock:
            state = self.channels.case_state(case_id, self.clock())
        if state.state != "open":
            return self._for_state(state, token)
        return 422, "办事评价", self._form(state, token, form)

    def _token_problem(self, case_id: str, token: str) -> tuple[int, str, str] | None:
        try:
            verify(token, case_id, self.settings.receipt_key, self.clock().timestamp())
        except TokenError as err:
            if err.problem is TokenProblem.EXPIRED:
                return 410, "二维码已过期", webpage.message("二维码已过期", "二维码已过期，请通过其他渠道评价"
                                                            "（服务窗口评价器、12345热线等）。")
            return 403, "二维码无效", webpage.message("二维码无效", "二维码无效，请扫描办事回执上的二维码。")
        # Counted only for a genuine QR: made-up links cannot use up a citizen's case.
        self.budgets.take("case", case_id)
        return None

    def _for_state(self, state: CaseState, token: str) -> tuple[int, str, str]:
        case = self._page_case(state) if state.case else None
        pages = {
            "unknown": (404, "暂未查到办件", "暂未查到该办件的信息，请稍后再试。"),
            "failed-intake": (409, "该办件不开放评价", "该办件未受理，不开放评价。"),
            "rated": (409, "您已评价", "您已评价，感谢您的参与。每次服务只能评价一次。"),
            "defaulted": (409, "评价期已结束", f"评价期已于{state.last_day}结束，系统已按规定给予默认评价。"),
            "period-ended": (409, "评价期已结束", f"评价期已于{state.last_day}结束，无法再评价。"),
        }
        if state.state == "open":
            return 200, "办事评价", self._form(state, token, webpage.FormState())
        status, title, text = pages[state.state]
        return status, title, webpage.message(title, text, ok=state.state == "rated", case=case)

    def _form(self, state: CaseState, token: str, form: webpage.FormState) -> str:
        profile = self.store.profile
        reasons = profile.dimensions if profile.reasons_after_bad else []
        return webpage.form(self._page_case(state), token, bad=profile.grades.bad, reasons=reasons,
                            hall_question=profile.hall_rating, state=form)

    def _page_case(self, state: CaseState) -> webpage.PageCase:
        row = state.case
        assert row is not None
        window = self.settings.window_names.get(f"{row.hall_id}/{row.window_id}", f"{row.window_id} 窗口")
        return webpage.PageCase(self.settings.hall_names.get(row.hall_id, row.hall_id), window, row.item_name)


def _one(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[0]


def _score(text: str) -> int | None:
    return int(text) if text in ("1", "2", "3", "4", "5") else None


def _form_state(fields: dict[str, list[str]]) -> webpage.FormState:
    score = _score(_one(fields, "score"))
    state = webpage.FormState(score=score, reasons=tuple(fields.get("reasons", [])), text=_one(fields, "text"),
                              hall_score=_score(_one(fields, "hall_score")))
    if score is None:
        return webpage.FormState(**{**state.__dict__, "error": "请先选择星级（1 至 5 星）。"})
    return state


def _plain(result) -> str:
    reason = str(result.reason)
    if "差评" in reason:
        return "差评请至少选择一项不满意的方面，或填写意见。"
    if reason.startswith("text:"):
        return "意见请不超过 500 字。"
    return "提交未成功，请检查后重试。"


def create_app(page: RatingPage) -> Starlette:
    """The ASGI app: GET and POST /r/{case_id}, and /healthz."""

    async def get_page(request: Request) -> Response:
        case_id = request.path_params["case_id"]
        page.budgets.take("address", _client(request))
        return _html(*await run_in_threadpool(page.show, case_id, request.query_params.get("t", "")))

    async def post_page(request: Request) -> Response:
        page.budgets.take("address", _client(request))
        body = await request.body()  # capped by BodyLimit
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return _html(*await run_in_threadpool(page.submit, request.path_params["case_id"], fields))

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route("/r/{case_id}", get_page, methods=["GET"]), Route("/r/{case_id}", post_page, methods=["POST"]),
              Route("/healthz", health)]
    # Throttled, from the address budget here or a case's in the page, is answered 429 wherever it is raised.
    middleware = [Middleware(BodyLimit, max_bytes=page.settings.max_body_bytes),
                  Middleware(GZipMiddleware, minimum_size=500)]
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={Throttled: _too_many, BodyTooLarge: _body_too_large})


def _client(request: Request) -> str:
    """The client's address (uvicorn puts a trusted proxy's X-Forwarded-For here, web.trusted_proxies);
    for IPv6 its /64: one subscriber gets a whole /64 and could otherwise take a new address per request."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return str(ipaddress.ip_network(f"{address}/64", strict=False)) if address.version == 6 else host


def _too_many(_request: Request, over: Exception) -> HTMLResponse:
    assert isinstance(over, Throttled)
    wait = math.ceil(over.retry_after_s)
    response = _html(429, "请求过于频繁", webpage.message("请求过于频繁", f"请求过于频繁，请{wait}秒后再试。"))
    response.headers["Retry-After"] = str(wait)
    return response


def _body_too_large(_request: Request | None, _over: Exception) -> PlainTextResponse:
    # Connection: close, so uvicorn drops the connection instead of waiting for the unread body.
    return PlainTextResponse("请求内容过大", status_code=413, headers={"Connection": "close"})


def _html(status: int, title: str, body: str) -> HTMLResponse:
    nonce = secrets.token_urlsafe(12)
    headers = {
        "Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
                                   "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        "Referrer-Policy": "no-referrer",  # the token is in the URL
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(webpage.document(title, body, nonce), status_code=status, headers=headers)


class WebServer:
    """uvicorn serving the page in a background thread; ``close()`` stops it and is safe twice."""

    def __init__(self, app: Starlette, host: str, port: int,
                 trusted_proxies: Sequence[str] = DEFAULT_TRUSTED_PROXIES,
                 limits: ServerLimits = ServerLimits()) -> None:
        import uvicorn

        # X-Forwarded-For is believed from these proxies only; uvicorn then gives the client's address
        # as request.client. Empty: the header is never believed.
        trusted = list(trusted_proxies)
        # h11 explicitly: its max_incomplete_event_size is what bounds the header block (httptools, if it
        # were installed and picked by "auto", has no such setting). limit_concurrency answers 503 beyond
        # that many connections, each of which holds at most uvicorn's 64 KiB read buffer of body.
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                                proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None, http="h11",
                                limit_concurrency=limits.max_connections,
                                h11_max_incomplete_event_size=limits.max_header_bytes)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        if not self._server.started:
            raise OSError("the rating page's web server did not start (is the port in use?)")

    @property
    def port(self) -> int:
        """The port actually bound (useful when 0 was asked)."""
        return self._server.servers[0].sockets[0].getsockname()[1]

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.should_exit = True
            thread.join(10)

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

