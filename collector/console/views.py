"""The console's pages and actions: login, the 差评 work queue, appeals and exclusions, lookup, fleet, audit.

Each route checks the role it needs for the hall of what it touches
(:func:`.auth.require`) before anything else, runs under the console's lock
(one store connection), writes through the lifecycle's operations, and records
its action in the audit log in the same transaction. A POST ends in a 303 to
the page it changed; a refusal re-renders that page with the reason (409).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hcp.collector.console.app import Console
from hcp.collector.console.audit import ACTION_NAMES
from hcp.collector.console.auth import LOGIN_COOKIE, SESSION_COOKIE, current_user, new_token, require
from hcp.collector.console.exc import LoginRefused
from hcp.collector.console.middleware import form_value, form_values
from hcp.collector.exc import NotFound, Refused
from hcp.collector.fleet import Health, assess
from hcp.collector.followup import STEPS
from hcp.domain import utc_text
from hcp.exc import HcpError

log = logging.getLogger("hcp.collector.console")

#: Who may read the work queue, appeals, lookups, the fleet.
QUEUE_READERS = ("manager", "followup", "supervisor")
APPEAL_READERS = ("manager", "reviewer", "supervisor")
LOOKUP_READERS = ("manager", "followup", "reviewer", "supervisor")
FLEET_READERS = ("operator", "supervisor")
#: Follow-up steps: who takes each.
STEP_ROLES = {"contact": "followup", "rectify": "followup", "explain": "followup", "close": "followup",
              "spot-check": "manager"}
STEP_NAMES = {"contact": "已联系", "rectify": "已整改", "explain": "已解释说明", "close": "办结", "spot-check": "抽查"}
STATE_NAMES = {"open": "待联系", "contacted": "已联系", "rectified": "已整改", "explained": "已解释说明",
               "closed": "已办结", "spot-checked": "已抽查"}
CHANNEL_NAMES = {"window": "窗口评价器", "qr": "扫码评价", "paper": "纸质评价", "hotline": "12345热线", "sms": "短信",
                 "app": "移动端", "web": "网站", "kiosk": "自助终端", "system-default": "系统默认评价"}
#: The queue's state filter -> the states it shows.
QUEUE_FILTERS = {"active": ("open", "contacted", "rectified", "explained"), "all": tuple(STATE_NAMES),
                 **{state: (state,) for state in STATE_NAMES}}
OUTCOME_NAMES = {"accepted": "有效", "pending": "待关联办件", "rejected": "未采纳", "duplicate": "重复评价"}
EXCLUSION_NAMES = {"invalid": "无效评价（评价人申请）", "malicious": "恶意差评"}
#: Done-messages after a POST, by code (never text from the request).
DONE = {"contact": "已记录：已联系。", "rectify": "已记录：已整改。", "explain": "已记录：已解释说明。",
        "close": "已办结。", "spot-check": "已记录抽查。", "appeal": "申诉已提交。", "decided": "复核结论已记录。",
        "excluded": "该评价已剔除，不计入统计。", "reversed": "已撤销剔除，该评价重新计入统计。",
        "pushed": "终端设置已推送。"}
_MAX_ROWS = 300


def routes(console: Console) -> list[BaseRoute]:
    """Every route of the console's own pages."""
    v = _Views(console)
    return [
        Route("/", v.home), Route("/healthz", v.health),
        Route("/login", v.login_form, methods=["GET"]), Route("/login", v.login, methods=["POST"]),
        Route("/logout", v.logout, methods=["POST"]),
        Route("/queue", v.queue), Route("/followups/{followup_id:int}", v.followup),
        Route("/followups/{followup_id:int}/step", v.step, methods=["POST"]),
        Route("/followups/{followup_id:int}/reveal", v.reveal, methods=["POST"]),
        Route("/appeals", v.appeals, methods=["GET"]), Route("/appeals", v.file_appeal, methods=["POST"]),
        Route("/appeals/{appeal_id:int}", v.appeal),
        Route("/appeals/{appeal_id:int}/decide", v.decide, methods=["POST"]),
        Route("/ratings/{rating_id}", v.rating), Route("/ratings/{rating_id}/exclude", v.exclude, methods=["POST"]),
        Route("/ratings/{rating_id}/reverse", v.reverse, methods=["POST"]),
        Route("/lookup", v.lookup), Route("/fleet", v.fleet, methods=["GET"]),
        Route("/fleet/push", v.push, methods=["POST"]), Route("/audit", v.audit_log),
    ]


def _locked(method: Callable[..., Response]) -> Callable[..., Any]:
    """Run a view in a worker thread under the console's lock (one store connection, one request at a time)."""

    @wraps(method)
    async def endpoint(self: _Views, request: Request) -> Response:
        def run() -> Response:
            with self.console.lock:
                return method(self, request)

        return await run_in_threadpool(run)

    return endpoint


def address(request: Request) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For already applied by uvicorn)."""
    return request.client.host if request.client else "unknown"


class _Views:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.store = console.store
        self.lifecycle = console.lifecycle

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        done = DONE.get(request.query_params.get("done", ""))
        if done and not context.get("flash"):
            context["flash"] = {"kind": "ok", "text": done}
        return self.console.render(request, template, status, names=_NAMES, **context)

    def _record(self, request: Request, action: str, target: str, hall_id: str | None, detail: str = "") -> None:
        user = current_user(request)
        self.console.audit.record(user.name if user else "?", action, target, hall_id=hall_id,
                                  address=address(request), detail=detail)

    # -- home, login, logout ----------------------------------------------------------

    async def health(self, _request: Request) -> Response:
        return PlainTextResponse("ok")

    async def home(self, request: Request) -> Response:
        user = current_user(request)
        if user is None:
            return RedirectResponse("/login", 303)
        return self.render(request, "home.html", title="首页")

    async def login_form(self, request: Request) -> Response:
        if current_user(request) is not None:
            return RedirectResponse("/", 303)
        return self._login_page(request)

    def _login_page(self, request: Request, status: int = 200, error: str = "", name: str = "",
                    target: str | None = None) -> Response:
        token = new_token()
        target = request.query_params.get("next", "") if target is None else target
        response = self.render(request, "login.html", status, title="登录", login_token=token, error=error,
                               next=_safe_next(target), name=name)
        response.set_cookie(LOGIN_COOKIE, token, max_age=1800, path="/login", httponly=True, samesite="strict",
                            secure=self.console.settings.secure_cookie)
        return response

    async def login(self, request: Request) -> Response:
        name, password = form_value(request, "name"), form_value(request, "password")
        try:
            session_id, _user = await run_in_threadpool(self.console.login, name, password, address(request))
        except LoginRefused as refused:
            status = 429 if refused.retry_after_s else 401
            response = self._login_page(request, status, str(refused), name[:64], form_value(request, "next"))
            if refused.retry_after_s:
                response.headers["Retry-After"] = str(int(refused.retry_after_s) + 1)
            return response
        response = RedirectResponse(_safe_next(form_value(request, "next")) or "/", 303)
        # A new id at every login: an id planted in the browser before (session fixation) is never a session.
        response.set_cookie(SESSION_COOKIE, session_id, max_age=int(self.console.settings.session_hours * 3600),
                            path="/", httponly=True, samesite="strict", secure=self.console.settings.secure_cookie)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: Request) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if session_id:
            await run_in_threadpool(self.console.logout, session_id, current_user(request), address(request))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- the 差评 work queue -----------------------------------------------------------

    @_locked
    def queue(self, request: Request) -> Response:
        require(request, QUEUE_READERS)
        user = current_user(request)
        assert user is not None
        hall = request.query_params.get("hall", "")
        if hall:
            require(request, QUEUE_READERS, hall)
        halls = [hall] if hall else user.halls(QUEUE_READERS)
        state = request.query_params.get("state", "active")
        if state not in QUEUE_FILTERS:
            state = "active"
        now = self.console.clock()
        late_only = request.query_params.get("overdue") == "1"
        shown, total = self.store.followup_queue(None if halls is None else sorted(halls), QUEUE_FILTERS[state],
                                                 overdue_at=utc_text(now) if late_only else None, limit=_MAX_ROWS)
        views = self.store.rating_views([f.rating_id for f in shown])  # one query for the page
        rows = [{"f": f, "r": views.get(f.rating_id), "late": f.overdue(now)} for f in shown]
        choices = sorted(user.halls(QUEUE_READERS) or self.console.halls())
        return self.render(request, "queue.html", title="差评工作台", rows=rows, total=total, hall=hall,
                           halls=choices, state=state, overdue=late_only)

    @_locked
    def followup(self, request: Request) -> Response:
        found = self._followup_or_404(request)
        require(request, QUEUE_READERS, found.hall_id)
        return self._followup_page(request, found)

    def _followup_or_404(self, request: Request):
        require(request, QUEUE_READERS)
        try:
            return self.lifecycle.followup(request.path_params["followup_id"])
        except NotFound:
            raise HTTPException(404, "没有这条差评回访记录。") from None

    def _followup_page(self, request: Request, found, flash: dict | None = None, status: int = 200,
                       contact: str | None = None) -> Response:
        user = current_user(request)
        assert user is not None
        now = self.console.clock()
        view = self.store.rating_views([found.rating_id]).get(found.rating_id)
        steps = [action for action, (allowed, _after) in STEPS.items() if found.state in allowed
                 and (action != "spot-check" or found.spot_check) and user.can(STEP_ROLES[action], found.hall_id)]
        return self.render(request, "followup.html", status, title=f"差评回访 #{found.id}", f=found, r=view,
                           late=found.overdue(now), events=self.store.followup_events(found.id), steps=steps,
                           can_reveal=user.can("followup", found.hall_id),
                           has_contact=self.store.has_followup_contact(found.id), contact=contact, flash=flash)

    @_locked
    def step(self, request: Request) -> Response:
        found = self._followup_or_404(request)
        action = form_value(request, "action")
        if action not in STEP_ROLES:
            raise HTTPException(403, "未知的操作。")
        require(request, STEP_ROLES[action], found.hall_id)
        user = current_user(request)
        assert user is not None
        try:
            with self.store.unit():
                self.lifecycle.step(found.id, action, actor=user.name, note=form_value(request, "note")[:2000],
                                    at=self.console.clock())
                self._record(request, f"followup-{action}", f"followup:{found.id}", found.hall_id)
        except Refused as refused:
            return self._followup_page(request, self.lifecycle.followup(found.id), _refusal(refused), 409)
        return RedirectResponse(f"/followups/{found.id}?done={action}", 303)

    @_locked
    def reveal(self, request: Request) -> Response:
        found = self._followup_or_404(request)
        require(request, "followup", found.hall_id)
        try:
            contact = self.lifecycle.contact(found.id)
        except Refused as refused:
            return self._followup_page(request, found, _refusal(refused), 409)
        with self.store.unit():
            self._record(request, "contact-reveal", f"followup:{found.id}", found.hall_id,
                         "已显示" if contact else "未留联系方式")
        log.info("console: a follow-up officer viewed the contact of follow-up %s", found.id)
        return self._followup_page(request, found, contact=contact or "")

    # -- appeals and exclusions ---------------------------------------------------------

    @_locked
    def appeals(self, request: Request) -> Response:
        return self._appeals_page(request)

    def _appeals_page(self, request: Request, flash: dict | None = None, status: int = 200) -> Response:
        require(request, APPEAL_READERS)
        user = current_user(request)
        assert user is not None
        hall = request.query_params.get("hall", "")
        if hall:
            require(request, APPEAL_READERS, hall)
        halls = [hall] if hall else user.halls(APPEAL_READERS)
        found = self.store.appeals_in_halls(None if halls is None else sorted(halls))[:_MAX_ROWS]
        now = utc_text(self.console.clock())
        rows = [{"a": a, "hall": h, "late": a.decided_at is None and a.review_due is not None and now >= a.review_due}
                for a, h in found]
        profile = self.store.profile
        exclusions = self.store.exclusions_in_halls(None if halls is None else sorted(halls), _MAX_ROWS)
        return self.render(request, "appeals.html", status, title="申诉与剔除", rows=rows, hall=hall,
                           exclusions=exclusions,
                           halls=sorted(user.halls(APPEAL_READERS) or self.console.halls()),
                           appeals_on=profile.appeals, window=_period(profile.appeal_window),
                           review=_period(profile.appeal_review), can_file=user.can("manager"), flash=flash,
                           rating_id=form_value(request, "rating_id"), evidence=form_value(request, "evidence"))

    @_locked
    def file_appeal(self, request: Request) -> Response:
        require(request, "manager")
        rating_id = form_value(request, "rating_id").strip()
        view = self.store.rating_views([rating_id]).get(rating_id) if rating_id else None
        if view is None:
            return self._appeals_page(request, {"kind": "error", "text": "没有这条评价，请核对评价编号。"},
                                            404)
        require(request, "manager", view.hall_id)
        user = current_user(request)
        assert user is not None
        try:
            with self.store.unit():
                appeal = self.lifecycle.file_appeal(rating_id, filed_by=user.name,
                                                    evidence=form_value(request, "evidence")[:4000],
                                                    at=self.console.clock())
                self._record(request, "appeal-file", f"appeal:{appeal.id}", view.hall_id, f"评价 {rating_id}")
        except Refused as refused:
            return self._appeals_page(request, _refusal(refused), 409)
        return RedirectResponse(f"/appeals/{appeal.id}?done=appeal", 303)

    def _appeal_or_404(self, request: Request):
        require(request, APPEAL_READERS)
        try:
            appeal = self.lifecycle.appeal(request.path_params["appeal_id"])
        except NotFound:
            raise HTTPException(404, "没有这条申诉。") from None
        view = self.store.rating_views([appeal.rating_id])[appeal.rating_id]
        return appeal, view

    @_locked
    def appeal(self, request: Request) -> Response:
        appeal, view = self._appeal_or_404(request)
        require(request, APPEAL_READERS, view.hall_id)
        return self._appeal_page(request, appeal, view)

    def _appeal_page(self, request: Request, appeal, view, flash: dict | None = None, status: int = 200) -> Response:
        user = current_user(request)
        assert user is not None
        now = utc_text(self.console.clock())
        late = appeal.decided_at is None and appeal.review_due is not None and now >= appeal.review_due
        return self.render(request, "appeal.html", status, title=f"申诉 #{appeal.id}", a=appeal, r=view, late=late,
                           can_decide=user.can("reviewer", view.hall_id) and appeal.decided_at is None, flash=flash)

    @_locked
    def decide(self, request: Request) -> Response:
        appeal, view = self._appeal_or_404(request)
        require(request, "reviewer", view.hall_id)
        user = current_user(request)
        assert user is not None
        upheld = form_value(request, "upheld") == "1"
        kind = form_value(request, "kind") or None
        try:
            with self.store.unit():
                self.lifecycle.decide_appeal(appeal.id, upheld=upheld, kind=kind if upheld else None,
                                             reviewer=user.name, reason=form_value(request, "reason")[:2000],
                                             at=self.console.clock())
                self._record(request, "appeal-decide", f"appeal:{appeal.id}", view.hall_id,
                             f"申诉成立：{EXCLUSION_NAMES.get(kind or '', kind)}" if upheld else "申诉不成立")
        except Refused as refused:
            return self._appeal_page(request, self.lifecycle.appeal(appeal.id), view, _refusal(refused), 409)
        return RedirectResponse(f"/appeals/{appeal.id}?done=decided", 303)

    @_locked
    def rating(self, request: Request) -> Response:
        view = self._rating_or_404(request)
        require(request, LOOKUP_READERS, view.hall_id)
        return self._rating_page(request, view)

    def _rating_or_404(self, request: Request):
        require(request, LOOKUP_READERS)
        rating_id = request.path_params["rating_id"]
        view = self.store.rating_views([rating_id]).get(rating_id)
        if view is None:
            raise HTTPException(404, "没有这条评价。")
        return view

    def _rating_page(self, request: Request, view, flash: dict | None = None, status: int = 200) -> Response:
        user = current_user(request)
        assert user is not None
        profile = self.store.profile
        exclusion = self.store.exclusion_view(view.rating_id)
        bad = profile.is_bad(view.score) and view.channel != "system-default" and view.outcome == "accepted"
        reviewer = user.can("reviewer", view.hall_id)
        excludable = exclusion is None and view.channel != "system-default" and view.outcome == "accepted"
        return self.render(request, "rating.html", status, title="评价详情", r=view, exclusion=exclusion,
                           followup_id=self.store.followup_of_rating(view.rating_id),
                           appeals=self.store.appeals_of_rating(view.rating_id), bad=bad,
                           can_exclude=reviewer and excludable,
                           can_reverse=reviewer and exclusion is not None and exclusion.in_force,
                           can_file=user.can("manager", view.hall_id) and bad and profile.appeals and exclusion is None,
                           flash=flash)

    @_locked
    def exclude(self, request: Request) -> Response:
        view = self._rating_or_404(request)
        require(request, "reviewer", view.hall_id)
        user = current_user(request)
        assert user is not None
        kind = form_value(request, "kind")
        try:
            with self.store.unit():
                self.lifecycle.exclude(view.rating_id, kind, decided_by=user.name,
                                       reason=form_value(request, "reason")[:2000], at=self.console.clock(),
                                       raised_by_rater=form_value(request, "raised_by_rater") == "1")
                self._record(request, "exclude", f"rating:{view.rating_id}", view.hall_id,
                             EXCLUSION_NAMES.get(kind, kind))
        except (Refused, NotFound) as refused:
            return self._rating_page(request, view, _refusal(refused), 409)
        return RedirectResponse(f"/ratings/{quote(view.rating_id, safe=':')}?done=excluded", 303)

    @_locked
    def reverse(self, request: Request) -> Response:
        view = self._rating_or_404(request)
        require(request, "reviewer", view.hall_id)
        user = current_user(request)
        assert user is not None
        try:
            with self.store.unit():
                self.lifecycle.reverse_exclusion(view.rating_id, decided_by=user.name,
                                                 reason=form_value(request, "reason")[:2000], at=self.console.clock())
                self._record(request, "exclusion-reverse", f"rating:{view.rating_id}", view.hall_id)
        except (Refused, NotFound) as refused:
            return self._rating_page(request, view, _refusal(refused), 409)
        return RedirectResponse(f"/ratings/{quote(view.rating_id, safe=':')}?done=reversed", 303)

    # -- lookup ------------------------------------------------------------------------

    @_locked
    def lookup(self, request: Request) -> Response:
        require(request, LOOKUP_READERS)
        query = request.query_params.get("q", "").strip()[:128]
        if not query:
            return self.render(request, "lookup.html", title="评价查询", q="")
        if query in self.store.rating_views([query]):
            return RedirectResponse(f"/ratings/{quote(query, safe=':')}", 303)
        case = self.store.case_view(query)
        if case is None:
            return self.render(request, "lookup.html", 404, title="评价查询", q=query,
                               flash={"kind": "error", "text": "未找到该办件编号或评价编号。"})
        require(request, LOOKUP_READERS, case.hall_id)
        views = self.store.rating_views(self.store.ratings_of_case(case.case_id, case.batch_id))
        return self.render(request, "lookup.html", title="评价查询", q=query, case=case, ratings=list(views.values()))

    # -- fleet ---------------------------------------------------------------------------

    @_locked
    def fleet(self, request: Request) -> Response:
        return self._fleet_page(request)

    def _fleet_page(self, request: Request, flash: dict | None = None, status: int = 200) -> Response:
        require(request, FLEET_READERS)
        user = current_user(request)
        assert user is not None
        hall = request.query_params.get("hall", "")
        if hall:
            require(request, FLEET_READERS, hall)
        now = self.console.clock()
        visible = user.halls(FLEET_READERS)
        rows = [_in_chinese(assess(row, now, self.console.settings.fleet)) for row in self.store.fleet()]
        rows = [h for h in rows if (visible is None or h.hall_id in visible) and (not hall or h.hall_id == hall)]
        return self.render(request, "fleet.html", status, title="终端运维", rows=rows, hall=hall,
                           halls=sorted(visible or self.console.halls()), flash=flash,
                           can_push=user.can("operator"), pushing=self.console.settings.broker is not None)

    @_locked
    def push(self, request: Request) -> Response:
        require(request, "operator")
        devices = [d for d in form_values(request, "device") if d]
        known = {row["device_id"]: row for row in self.store.fleet()}
        for device in devices:
            if device not in known:
                return self._fleet_page(request, {"kind": "error", "text": f"终端 {device} 未登记。"}, 404)
            require(request, "operator", known[device]["hall_id"])
        try:
            message = _settings_message(request)
            if not devices:
                raise Refused("请至少选择一台终端。")
            from hcp.collector.push import not_newer_than_running, push_settings

            stale = not_newer_than_running(devices, message.version,
                                           {d: known[d]["settings_version"] for d in devices})
            if stale:
                running = "、".join(f"{d} 为 {v}" for d, v in stale)
                raise Refused(f"设置版本 {message.version} 不高于终端正在使用的版本（{running}），请使用更高的版本号。")
            if self.console.settings.broker is None:
                raise Refused("未配置消息服务器（broker），无法推送。")
            try:
                push_settings(self.console.settings.broker, devices, message)
            except Refused as older:
                raise Refused(f"消息服务器上已保留同等或更新的设置版本（{older}）") from None
        except HcpError as refused:
            return self._fleet_page(request, _refusal(refused), 409)
        with self.store.unit():
            for device in devices:
                self._record(request, "settings-push", f"device:{device}", known[device]["hall_id"],
                             f"设置版本 {message.version}")
        return RedirectResponse("/fleet?done=pushed", 303)

    # -- audit ----------------------------------------------------------------------------

    @_locked
    def audit_log(self, request: Request) -> Response:
        require(request, "supervisor")
        before = request.query_params.get("before", "")
        entries = self.store.audit_log(before_id=int(before) if before.isdigit() else None, limit=100)
        return self.render(request, "audit.html", title="审计日志", entries=entries, actions=ACTION_NAMES,
                           more=entries[-1].id if len(entries) == 100 else None)


_NAMES = {"states": STATE_NAMES, "steps": STEP_NAMES, "channels": CHANNEL_NAMES, "outcomes": OUTCOME_NAMES,
          "exclusions": EXCLUSION_NAMES}


_ALERTS = ((re.compile(r"never seen"), "从未上线"), (re.compile(r"offline for (.+)"), r"已离线 \1"),
           (re.compile(r"outbox holds (\d+) ratings"), r"待传评价积压 \1 条"),
           (re.compile(r"outbox not draining: oldest unsent (.+) old"), r"待传评价未上传：最早一条已等待 \1"),
           (re.compile(r"clock not synchronised"), "时钟未同步"))


def _in_chinese(health: Health) -> Health:
    """The fleet's alerts in Chinese (hcp.collector.fleet words them for the CLI)."""
    alerts = []
    for alert in health.alerts:
        for pattern, text in _ALERTS:
            if pattern.fullmatch(alert):
                alert = pattern.sub(text, alert).replace(" min", " 分钟").replace(" h", " 小时").replace(" d", " 天")
                break
        alerts.append(alert)
    return replace(health, alerts=alerts)


def _refusal(error: Exception) -> dict[str, str]:
    return {"kind": "error", "text": f"未能执行：{error}"}


def _period(deadline) -> str:
    if deadline is None:
        return ""
    units = {"hours": "小时", "natural_days": "个自然日", "working_days": "个工作日"}
    return f"{deadline.count}{units[deadline.unit]}"


def _safe_next(target: str) -> str:
    """Only a path of this site (no scheme, no host, no '//') may be where login leads."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else ""


def _settings_message(request: Request):
    from hcp.protocol import SettingsMessage

    def number(name: str, kind: type = float):
        text = form_value(request, name).strip()
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            raise Refused(f"{name}: 不是数字（{text[:20]}）") from None

    version = number("version", int)
    if version is None or version < 1:
        raise Refused("version: 请填写设置版本号（正整数）。")
    try:
        return SettingsMessage(v=1, version=version, prompt_timeout_s=number("prompt_timeout"),
                               response_interval_s=number("response_interval"), volume=number("volume"))
    except ValueError as err:
        raise Refused(f"设置无效：{str(err).splitlines()[0]}") from None

