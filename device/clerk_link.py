"""The clerk link: the clerk's PC or business system drives the terminal over a serial line.

Requests (PC → terminal) and the terminal's answers::

    PROMPT         → ClerkTrigger event          → ACK {ok, prompt_id}
    SIGN_IN        → clerk shown on idle screen  → ACK
    SIGN_OUT       → no clerk                    → ACK
    PAUSE / RESUME → Paused(True/False) event    → ACK
    QUERY_STATE                                  → STATE
    QUERY_OUTCOME  {prompt_id}                   → OUTCOME

Every request may carry ``"req"`` (a number or string), echoed in the answer
so the PC can match answers to requests. The outcome of a prompt is learnt
from the commands the terminal performs (PROMPT shown, EXPIRED, ``Thanked``)
and from the collector's ack, which the runtime passes to
:meth:`ClerkLink.note_outcome`. ``docs/serial-protocol.md`` has the frames.

Prompts raised by a clerk *button* (GPIO panel) carry no case id; see
:func:`button_prompt` for that convention.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from uuid6 import uuid7

from hcp.agent.events import (
    ClerkTrigger,
    Command,
    Paused,
    PostEvent,
    PromptSpec,
    Screen,
    ShowScreen,
    StatusLight,
    Thanked,
)
from hcp.device.exc import FrameError
from hcp.device.frames import Frame, FrameType
from hcp.device.serial_port import FrameLink, SerialLike, open_serial
from hcp.domain import Kind, Outcome
from hcp.protocol import Ident, Text

if TYPE_CHECKING:
    from hcp.config.schema import AgentConfig

log = logging.getLogger(__name__)

#: Screens during which a prompt is being answered.
ANSWERING = frozenset({Screen.PROMPT, Screen.REASONS, Screen.HALL})


@dataclass(frozen=True)
class Clerk:
    """The clerk signed in at this window, as the idle screen shows them."""

    name: str
    employee_no: str
    photo: Path | None = None

    def as_fields(self) -> dict[str, Any]:
        """The clerk as a JSON object for STATE answers."""
        return {"name": self.name, "employee_no": self.employee_no,
                "photo": str(self.photo) if self.photo else None}


def button_prompt(item_code: str, item_name: str, clerk_id: str, clerk_name: str | None = None) -> PromptSpec:
    """A prompt raised by a clerk's button: a fresh prompt id and **no case ids**.

    A button knows no case. The rating it produces carries ``case_ids == []``,
    the window, the clerk and the time; the collector links it to the case
    completed at that window closest in time. Prompt ids are ``btn-`` and a
    UUIDv7 (time-ordered), so they sort by when the button was pressed.
    """
    return PromptSpec(prompt_id=f"btn-{uuid7().hex}", case_ids=(), item_code=item_code, item_name=item_name,
                      clerk_id=clerk_id, clerk_name=clerk_name)


@dataclass
class PromptRecord:
    """What the terminal knows of one prompt, answered to QUERY_OUTCOME."""

    prompt_id: str
    case_ids: tuple[str, ...] = ()
    state: str = "sent"             # sent, shown, replaced, expired, rated
    score: int | None = None
    rating_id: str | None = None
    outcome: str | None = None      # the collector's: accepted, pending, duplicate, rejected
    reason: str = ""

    def as_fields(self) -> dict[str, Any]:
        return {"prompt_id": self.prompt_id, "state": self.state, "score": self.score,
                "rating_id": self.rating_id, "outcome": self.outcome, "reason": self.reason}


# ---- request payloads ---------------------------------------------------------

class _Request(BaseModel):
    # Unknown fields are ignored so that later protocol versions can add some.
    model_config = ConfigDict(extra="ignore", frozen=True)

    req: int | Annotated[str, StringConstraints(max_length=64)] | None = None


class PromptRequest(_Request):
    prompt_id: Ident | None = None
    case_ids: list[Ident] = Field(min_length=1, max_length=50)
    item_code: Ident
    item_name: Text
    clerk_id: Ident | None = None
    clerk_name: Text | None = None
    expires_at: AwareDatetime | None = None


class SignInRequest(_Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    employee_no: Ident
    photo: Annotated[str, StringConstraints(max_length=255)] | None = None


class OutcomeQuery(_Request):
    prompt_id: Ident


R = TypeVar("R", bound=_Request)


class ClerkLink:
    """Front end for the clerk's serial line; see the module docstring.

    ``when_clerk_changed(clerk)`` is called (reader thread) on sign-in and
    sign-out (``None``); :attr:`clerk` is the clerk signed in now.
    ``when_fault(detail)`` as for the serial board.
    """

    def __init__(self, port: str, baudrate: int = 115200, *, heartbeat_s: float = 1.0,
                 heartbeat_timeout_s: float = 0.0, reconnect_max_s: float = 5.0, remember_prompts: int = 256,
                 opener: Callable[[str, int], SerialLike] = open_serial) -> None:
        self.when_clerk_changed: Callable[[Clerk | None], None] | None = None
        self.when_fault: Callable[[str | None], None] | None = None
        self._clerk: Clerk | None = None
        self._post: PostEvent | None = None
        self._lock = threading.Lock()   # records: reader thread, agent thread and note_outcome's caller
        self._records: OrderedDict[str, PromptRecord] = OrderedDict()
        self._remember = remember_prompts
        self._current: str | None = None
        self._screen = Screen.IDLE
        self._pause_requested = False
        self._light, self._detail = StatusLight.IDLE, ""
        self._link = FrameLink("clerk-link", port, baudrate, on_frame=self._on_frame, on_health=self._on_health,
                               heartbeat_s=heartbeat_s, heartbeat_timeout_s=heartbeat_timeout_s,
                               reconnect_max_s=reconnect_max_s, opener=opener)

    @classmethod
    def from_config(cls, config: AgentConfig) -> ClerkLink:
        """The link as ``config.clerk_link`` describes it."""
        section = config.clerk_link
        return cls(section.port, section.baudrate, heartbeat_s=section.heartbeat_s,
                   heartbeat_timeout_s=section.heartbeat_timeout_s, reconnect_max_s=section.reconnect_max_s,
                   remember_prompts=section.remember_prompts)

    # ---- FrontEnd ----------------------------------------------------------

    def start(self, post: PostEvent) -> None:
        """Open the port in the background and turn the PC's requests into events."""
        self._post = post
        self._link.start()

    def perform(self, command: Command) -> None:
        """Follow the flow so that state and outcome queries can be answered."""
        if isinstance(command, ShowScreen):
            self._on_screen(command)
        elif isinstance(command, Thanked) and command.kind is Kind.SERVICE:
            self._on_thanked(command)

    def show_status(self, light: StatusLight, detail: str) -> None:
        """Remember the terminal's health for STATE answers."""
        self._light, self._detail = light, detail

    def close(self) -> None:
        """Stop the link and close the port; safe to call twice."""
        link = getattr(self, "_link", None)
        if link is not None:
            link.close()

    def __enter__(self) -> ClerkLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- for the runtime and the idle screen ------------------------------

    @property
    def clerk(self) -> Clerk | None:
        """The clerk signed in now, or None."""
        return self._clerk

    @property
    def fault(self) -> str | None:
        """Why the line is unusable (port gone, PC silent when heartbeats are expected), or None."""
        return self._link.fault

    def note_outcome(self, prompt_id: str, outcome: Outcome | str, reason: str = "") -> None:
        """Record the collector's answer for the rating of ``prompt_id`` (any thread)."""
        with self._lock:
            record = self._record(prompt_id)
            record.outcome, record.reason = str(outcome), reason

    def outcome(self, prompt_id: str) -> PromptRecord | None:
        """A copy of what is known of ``prompt_id``, or None if it is not remembered."""
        with self._lock:
            record = self._records.get(prompt_id)
            return replace(record) if record else None

    # ---- following the flow (agent thread) --------------------------------

    def _on_screen(self, command: ShowScreen) -> None:
        self._screen = command.screen
        prompt = command.prompt
        with self._lock:
            if command.screen is Screen.PROMPT and prompt is not None:
                self._show(prompt)
            elif command.screen is Screen.EXPIRED and prompt is not None:
                self._record(prompt.prompt_id).state = "expired"

    def _show(self, prompt: PromptSpec) -> None:
        previous = self._records.get(self._current or "")
        if previous is not None and previous.state == "shown" and previous.prompt_id != prompt.prompt_id:
            previous.state = "replaced"
        record = self._record(prompt.prompt_id)
        record.case_ids, record.state = prompt.case_ids, "shown"
        self._current = prompt.prompt_id

    def _on_thanked(self, command: Thanked) -> None:
        with self._lock:
            record = self._rated_record(command.case_ids)
            if record is not None:
                record.state, record.score, record.rating_id = "rated", command.score, command.rating_id

    def _rated_record(self, case_ids: tuple[str, ...]) -> PromptRecord | None:
        # Thanked names cases, not prompts: the newest prompt sharing a case is the one
        # rated; a button prompt has no cases, so it is the one on screen.
        wanted = set(case_ids)
        for record in reversed(self._records.values()):
            if wanted & set(record.case_ids):
                return record
        return self._records.get(self._current or "") if not wanted else None

    def _record(self, prompt_id: str) -> PromptRecord:
        record = self._records.get(prompt_id)
        if record is None:
            record = self._records[prompt_id] = PromptRecord(prompt_id)
            while len(self._records) > self._remember:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(prompt_id)
        return record

    # ---- requests (reader thread) -----------------------------------------

    def _on_health(self, fault: str | None) -> None:
        if self.when_fault is not None:
            self.when_fault(fault)

    def _on_frame(self, frame: Frame) -> None:
        handler = self._HANDLERS.get(frame.type)
        if handler is None:
            self._ack(frame, None, f"unknown request type {frame.name}")
            return
        try:
            fields = frame.fields()
        except FrameError as err:
            self._ack(frame, None, err.detail)
            return
        handler(self, frame, fields)

    def _on_prompt(self, frame: Frame, fields: dict[str, Any]) -> None:
        request = self._parse(PromptRequest, frame, fields)
        if request is None:
            return
        clerk = self._clerk
        clerk_id = request.clerk_id or (clerk.employee_no if clerk else None)
        if clerk_id is None:
            self._ack(frame, request.req, "clerk_id: missing and no clerk is signed in")
            return
        clerk_name = request.clerk_name or (clerk.name if clerk and clerk.employee_no == clerk_id else None)
        spec = PromptSpec(prompt_id=request.prompt_id or f"clk-{uuid7().hex}", case_ids=tuple(request.case_ids),
                          item_code=request.item_code, item_name=request.item_name, clerk_id=clerk_id,
                          clerk_name=clerk_name, expires_at=request.expires_at)
        with self._lock:
            self._record(spec.prompt_id).case_ids = spec.case_ids
        self._emit(ClerkTrigger(spec))
        self._ack(frame, request.req, None, prompt_id=spec.prompt_id)

    def _on_sign_in(self, frame: Frame, fields: dict[str, Any]) -> None:
        request = self._parse(SignInRequest, frame, fields)
        if request is not None:
            self._set_clerk(Clerk(request.name, request.employee_no, Path(request.photo) if request.photo else None))
            self._ack(frame, request.req, None)

    def _on_sign_out(self, frame: Frame, fields: dict[str, Any]) -> None:
        self._set_clerk(None)
        self._ack(frame, fields.get("req"), None)

    def _on_pause(self, frame: Frame, fields: dict[str, Any]) -> None:
        self._pause_requested = frame.type == FrameType.PAUSE
        self._emit(Paused(self._pause_requested))
        self._ack(frame, fields.get("req"), None)

    def _on_query_state(self, frame: Frame, fields: dict[str, Any]) -> None:
        current = self._current if self._screen in ANSWERING else None
        self._link.send(FrameType.STATE, {
            "req": fields.get("req"), "screen": self._screen.value, "paused": self._pause_requested,
            "prompt_id": current, "clerk": self._clerk.as_fields() if self._clerk else None,
            "light": self._light.value, "detail": self._detail})

    def _on_query_outcome(self, frame: Frame, fields: dict[str, Any]) -> None:
        request = self._parse(OutcomeQuery, frame, fields)
        if request is None:
            return
        record = self.outcome(request.prompt_id) or PromptRecord(request.prompt_id, state="unknown")
        self._link.send(FrameType.OUTCOME, {"req": request.req, **record.as_fields()})

    _HANDLERS: ClassVar[dict[int, Callable[[ClerkLink, Frame, dict[str, Any]], None]]] = {
        FrameType.PROMPT: _on_prompt, FrameType.SIGN_IN: _on_sign_in, FrameType.SIGN_OUT: _on_sign_out,
        FrameType.PAUSE: _on_pause, FrameType.RESUME: _on_pause, FrameType.QUERY_STATE: _on_query_state,
        FrameType.QUERY_OUTCOME: _on_query_outcome,
    }

    # ---- helpers -----------------------------------------------------------

    def _parse(self, model: type[R], frame: Frame, fields: dict[str, Any]) -> R | None:
        try:
            return model.model_validate(fields)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(payload)"
            req = fields.get("req")
            self._ack(frame, req if isinstance(req, int | str) else None, f"{where}: {first['msg']}")
            return None

    def _set_clerk(self, clerk: Clerk | None) -> None:
        self._clerk = clerk
        log.info("clerk link: %s", f"clerk {clerk.employee_no} signed in" if clerk else "clerk signed out")
        if self.when_clerk_changed is not None:
            self.when_clerk_changed(clerk)

    def _emit(self, event: ClerkTrigger | Paused) -> None:
        if self._post is not None:
            self._post(event)

    def _ack(self, frame: Frame, req: object, error: str | None, **extra: Any) -> None:
        if error is not None:
            log.warning("clerk link: %s request refused: %s", frame.name, error)
        self._link.send(FrameType.ACK, {"req": req, "type": frame.type, "ok": error is None,
                                        "error": error, **extra})
