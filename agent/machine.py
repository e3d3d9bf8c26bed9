"""The window's rating flow as a pure state machine.

:class:`Machine` consumes :data:`~hcp.agent.events.Event` values and returns
:data:`~hcp.agent.events.Command` values. It does no I/O and never reads a
clock: every event comes with ``now``, so the whole flow can be tested
exhaustively and replayed.

The flow::

    idle -> prompted -> [reasons] -> storing -> [hall -> storing] -> thanked -> idle
            prompted --timeout--> expired -> idle
            storing --StoreFailed--> fault -> idle
            any --Paused(True)--> paused (deferred while a rating is under way)

Rules worth knowing (``docs/sim-panel.md`` shows them from the outside):

* Thanks (``Thanked``, the THANKS sound and screen) are emitted only after the
  runtime answered ``RatingStored``: a citizen is never thanked for a rating
  that is not durable.
* Input the current state has no use for is ignored and yields **no
  commands** at all; ``Feedback`` therefore means exactly "this press was
  accepted".
* Bounces are ignored the same way, on two scales. ``response_interval_s``
  (about a second) guards against a star key bouncing into the next question:
  a star within it of any accepted press, and any press within it of the star
  that changed the screen, is ignored. Every other key (a reason, submit,
  skip, a star key choosing a reason) is debounced on its own over
  ``key_bounce_s`` (a tenth of a second or so), so a citizen may tick three
  reasons and submit as fast as fingers go.
* On the reasons screen the star keys choose reasons: keys 1-4 toggle the
  reasons of the page shown, key 5 turns the page or, on the last one,
  submits (``events.reason_page``). With no front end that shows reasons
  (``shows_reasons=False``: a bare GPIO panel or button board), a 差评 is
  stored at once without reasons instead of waiting on a screen nobody sees.
* A trigger's case ids that were already rated on this terminal are dropped
  from it; a trigger whose ids were all rated, or whose prompt id was already
  rated, is refused (one rating per service).
* A trigger while prompted replaces the prompt. A trigger while a rating is
  under way (reasons, storing, hall, thanks, fault) is queued, the latest one
  winning, and shown when the flow ends; on the reasons screen it first
  completes the rating with the reasons selected so far, so the citizen's
  score is never lost to the clerk's haste.
* ``Paused(True)`` cancels an unanswered prompt at once but lets a rating under
  way finish; prompts are refused until ``Paused(False)``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hcp.agent.events import (
    NEXT_KEY,
    ClerkTrigger,
    Command,
    Event,
    Feedback,
    Paused,
    PlaySound,
    PromptSpec,
    RatingStored,
    ReasonsDone,
    ReasonToggled,
    Screen,
    ShowScreen,
    SkipPressed,
    Sound,
    StarPressed,
    StoreFailed,
    StoreRating,
    Thanked,
    Tick,
    is_last_page,
    reason_page,
)
from hcp.config.policy import Profile
from hcp.config.schema import TimingSection
from hcp.domain import Kind
from hcp.protocol import PromptMessage


def prompt_spec(message: PromptMessage) -> PromptSpec:
    """The machine's view of a validated wire prompt (MQTT or the sim panel)."""
    return PromptSpec(prompt_id=message.prompt_id, case_ids=tuple(message.case_ids), item_code=message.item_code,
                      item_name=message.item_name, clerk_id=message.clerk_id, clerk_name=message.clerk_name,
                      expires_at=message.expires_at)


class State(enum.StrEnum):
    """Where the window's flow stands."""

    IDLE = "idle"
    PROMPTED = "prompted"
    REASONS = "reasons"
    STORING = "storing"
    HALL = "hall"
    THANKED = "thanked"
    EXPIRED = "expired"
    PAUSED = "paused"
    FAULT = "fault"


#: States in which a rating is under way: a pause or a new trigger waits for them.
BUSY = frozenset({State.REASONS, State.STORING, State.HALL, State.THANKED, State.FAULT})

_CITIZEN_INPUT = (StarPressed, ReasonToggled, ReasonsDone, SkipPressed)


@dataclass(frozen=True)
class _Scored:
    """A service score waiting for its reasons."""

    score: int
    selected: tuple[str, ...] = ()
    page: int = 0


class Machine:
    """One window's rating flow; see the module docstring for the rules.

    ``rated_case_ids`` are the cases already rated on this terminal (from the
    outbox); the machine adds to them as ratings are stored. ``expired_s`` and
    ``fault_s`` are how long the EXPIRED and FAULT screens stay; ``shows_reasons``
    says whether any front end can show the reasons screen.
    """

    def __init__(self, profile: Profile, timing: TimingSection, rated_case_ids: Iterable[str] = (),
                 *, expired_s: float = 3.0, fault_s: float = 10.0, shows_reasons: bool = True) -> None:
        self._profile = profile
        self._timing = timing
        self._rated_cases: set[str] = set(rated_case_ids)
        self._rated_prompts: set[str] = set()
        self._expired_s = expired_s
        self._fault_s = fault_s
        self._shows_reasons = shows_reasons
        self._state = State.IDLE
        self._paused = False
        self._prompt: PromptSpec | None = None
        self._queued: PromptSpec | None = None
        self._deadline: datetime | None = None
        self._last_press: datetime | None = None
        self._last_turn: datetime | None = None
        self._key_pressed: dict[object, datetime] = {}
        self._last_now: datetime | None = None
        self._scored: _Scored | None = None
        self._storing: StoreRating | None = None
        self._stored: list[Thanked] = []

    def retune(self, profile: Profile, timing: TimingSection) -> None:
        """New rules and timings (remote settings); deadlines already set keep their time."""
        self._profile = profile
        self._timing = timing

    # ---- what tests and the runtime may look at ------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def prompt(self) -> PromptSpec | None:
        """The prompt being answered, if any."""
        return self._prompt

    @property
    def is_paused(self) -> bool:
        return self._paused

    @property
    def deadline(self) -> datetime | None:
        """When the current state times out (None: it does not)."""
        return self._deadline

    def was_rated(self, case_id: str) -> bool:
        return case_id in self._rated_cases

    # ---- the one entry point -------------------------------------------------

    def handle(self, event: Event, now: datetime) -> list[Command]:
        """Apply ``event`` at ``now``; return the commands to perform, in order."""
        self._follow_clock(now)
        if isinstance(event, _CITIZEN_INPUT):
            return self._on_input(event, now)
        if isinstance(event, ClerkTrigger):
            return self._on_trigger(event.prompt, now)
        if isinstance(event, Paused):
            return self._on_pause(event.paused, now)
        if isinstance(event, Tick):
            return self._on_tick(now)
        if isinstance(event, RatingStored):
            return self._on_stored(event, now)
        if isinstance(event, StoreFailed):
            return self._on_store_failed(event, now)
        return []  # an event type this machine does not know: ignore, never raise

    def _follow_clock(self, now: datetime) -> None:
        """Shift deadlines when the wall clock stepped back (NTP, RTC-less Pi after boot).

        Without this a step back of an hour would leave a prompt open for an hour
        and ignore every press as a bounce. A step forward cannot be told from
        time passing; it merely ends the current step early, losing nothing.
        """
        if self._last_now is not None and now < self._last_now:
            back = self._last_now - now
            self._deadline = self._deadline - back if self._deadline else None
            self._last_press = self._last_press - back if self._last_press else None
            self._last_turn = self._last_turn - back if self._last_turn else None
            self._key_pressed = {key: at - back for key, at in self._key_pressed.items()}
        self._last_now = now

    # ---- citizen input -------------------------------------------------------

    def _on_input(self, event: Event, now: datetime) -> list[Command]:
        if self._state not in (State.PROMPTED, State.REASONS, State.HALL) or self._bounced(event, now):
            return []
        if isinstance(event, StarPressed):
            if self._state is State.REASONS:
                return self._on_reason_key(event.score, now)
            return self._on_star(event.score, now)
        if self._state is State.PROMPTED:
            return []  # the service question cannot be skipped: it stays open until it expires
        if isinstance(event, ReasonToggled):
            return self._on_toggle(event.reason, now)
        if self._state is State.REASONS:
            submit = isinstance(event, ReasonsDone) and event.submit
            return [self._accept(event, now), *self._finish_reasons(submit, now)]
        if isinstance(event, SkipPressed):
            return [self._accept(event, now), *self._thank(now)]  # the hall question declined
        return []  # ReasonsDone on the hall question: there are no reasons to be done with

    def _bounced(self, event: Event, now: datetime) -> bool:
        """Whether ``event`` is a bounce (see the module docstring for the two scales)."""
        interval = timedelta(seconds=self._timing.response_interval_s)
        if isinstance(event, StarPressed) and self._state is not State.REASONS:
            return self._last_press is not None and now - self._last_press < interval
        if self._last_turn is not None and now - self._last_turn < interval:
            return True
        pressed = self._key_pressed.get(event)
        return pressed is not None and now - pressed < timedelta(seconds=self._timing.key_bounce_s)

    def _accept(self, event: Event, now: datetime, score: int | None = None) -> Feedback:
        self._last_press = self._key_pressed[event] = now
        if isinstance(event, StarPressed) and self._state is not State.REASONS:
            self._last_turn = now  # a star answers the question: the screen changes under the finger
        return Feedback(score)

    def _on_star(self, score: int, now: datetime) -> list[Command]:
        if not isinstance(score, int) or not 1 <= score <= 5:
            return []
        feedback = self._accept(StarPressed(score), now, score)
        if self._state is State.HALL:
            return [feedback, self._store(Kind.HALL, score, (), now)]
        if self._wants_reasons(score):
            self._scored = _Scored(score)
            self._enter(State.REASONS, now, self._timing.reasons_timeout_s)
            return [feedback, self._reasons_screen(), PlaySound(Sound.ASK_REASON)]
        return [feedback, self._store(Kind.SERVICE, score, (), now)]

    def _wants_reasons(self, score: int) -> bool:
        return (self._shows_reasons and self._profile.reasons_after_bad and bool(self._profile.dimensions)
                and self._profile.is_bad(score))

    def _on_toggle(self, reason: str, now: datetime, key: Event | None = None) -> list[Command]:
        if self._state is not State.REASONS or self._scored is None or reason not in self._profile.dimensions:
            return []
        selected = self._scored.selected
        # Keep the profile's order, whatever order the citizen touched them in.
        chosen = set(selected) ^ {reason}
        self._scored = replace(self._scored, selected=tuple(d for d in self._profile.dimensions if d in chosen))
        return [self._accept(key or ReasonToggled(reason), now), self._reasons_screen()]

    def _on_reason_key(self, key: int, now: datetime) -> list[Command]:
        """A star key on the reasons screen: 1-4 toggle the page's reasons, 5 turns the page or submits."""
        assert self._scored is not None
        reasons, page, event = tuple(self._profile.dimensions), self._scored.page, StarPressed(key)
        if key == NEXT_KEY:
            if is_last_page(reasons, page):
                return [self._accept(event, now), *self._finish_reasons(True, now)]
            self._scored = replace(self._scored, page=page + 1)
            return [self._accept(event, now), self._reasons_screen()]
        shown = reason_page(reasons, page)
        if not isinstance(key, int) or not 1 <= key <= len(shown):
            return []
        return self._on_toggle(shown[key - 1], now, event)

    def _reasons_screen(self) -> ShowScreen:
        assert self._scored is not None
        return ShowScreen(Screen.REASONS, prompt=self._prompt, score=self._scored.score,
                          reasons=tuple(self._profile.dimensions), selected=self._scored.selected,
                          page=self._scored.page)

    def _finish_reasons(self, keep_selected: bool, now: datetime) -> list[Command]:
        """Complete the service rating from the reasons screen."""
        assert self._scored is not None
        reasons = self._scored.selected if keep_selected else ()
        rated_at = self._last_press or now
        return [self._store(Kind.SERVICE, self._scored.score, reasons, rated_at)]

    # ---- storing and thanks --------------------------------------------------

    def _store(self, kind: Kind, score: int, reasons: tuple[str, ...], rated_at: datetime) -> StoreRating:
        assert self._prompt is not None
        self._scored = None
        self._state, self._deadline = State.STORING, None  # the runtime answers every StoreRating
        self._storing = StoreRating(kind=kind, prompt=self._prompt, score=score, rated_at=rated_at, reasons=reasons)
        return self._storing

    def _on_stored(self, event: RatingStored, now: datetime) -> list[Command]:
        storing = self._storing
        if self._state is not State.STORING or storing is None or event.kind != storing.kind:
            return []  # not an answer to anything we asked: ignore
        self._storing = None
        self._stored.append(Thanked(event.rating_id, storing.kind, storing.prompt.case_ids, storing.score))
        if storing.kind is Kind.SERVICE:
            self._rated_cases.update(storing.prompt.case_ids)
            self._rated_prompts.add(storing.prompt.prompt_id)
            if self._profile.hall_rating and self._queued is None:
                self._enter(State.HALL, now, self._timing.hall_timeout_s)
                return [ShowScreen(Screen.HALL, prompt=storing.prompt), PlaySound(Sound.HALL_QUESTION)]
        return self._thank(now)

    def _thank(self, now: datetime) -> list[Command]:
        thanked, self._stored = self._stored, []
        self._enter(State.THANKED, now, self._timing.thanks_s)
        return [*thanked, PlaySound(Sound.THANKS), ShowScreen(Screen.THANKS, prompt=self._prompt)]

    def _on_store_failed(self, event: StoreFailed, now: datetime) -> list[Command]:
        if self._state is not State.STORING:
            return []
        # Nothing is thanked, not even a service rating stored before a failed hall
        # rating: the screen says FAULT, so "thanked" would not be true.
        self._storing, self._stored = None, []
        self._enter(State.FAULT, now, self._fault_s)
        return [PlaySound(Sound.ERROR), ShowScreen(Screen.FAULT, prompt=self._prompt, message=event.reason)]

    # ---- the clerk -----------------------------------------------------------

    def _on_trigger(self, prompt: PromptSpec, now: datetime) -> list[Command]:
        fresh = self._unrated(prompt)
        if fresh is None:
            return []
        if self._paused:
            return [ShowScreen(Screen.PAUSED, message="window paused: prompt refused")]
        if self._state in BUSY:
            if self._prompt is not None and fresh.prompt_id == self._prompt.prompt_id:
                return []  # a redelivery of the prompt being answered
            return self._queue(fresh, now)
        return self._show_prompt(fresh, now)

    def _unrated(self, prompt: PromptSpec) -> PromptSpec | None:
        """``prompt`` without the cases rated here already, or None when nothing is left to rate."""
        if prompt.prompt_id in self._rated_prompts:
            return None
        if not prompt.case_ids:
            return prompt  # a clerk-button prompt: the collector links it to the window's case
        left = tuple(c for c in prompt.case_ids if c not in self._rated_cases)
        if not left:
            return None
        return prompt if left == prompt.case_ids else replace(prompt, case_ids=left)

    def _queue(self, prompt: PromptSpec, now: datetime) -> list[Command]:
        self._queued = prompt
        if self._state is State.REASONS:
            return self._finish_reasons(True, now)
        if self._state is State.HALL:
            return self._thank(now)  # the next citizen is waiting: the hall question yields
        return []

    def _show_prompt(self, prompt: PromptSpec, now: datetime) -> list[Command]:
        self._prompt = prompt
        timeout = self._timing.prompt_timeout_s
        if prompt.expires_at is not None:
            timeout = min(timeout, (prompt.expires_at - now).total_seconds())
        if timeout <= 0:
            return self._expire(now)
        self._enter(State.PROMPTED, now, timeout)
        return [ShowScreen(Screen.PROMPT, prompt=prompt), PlaySound(Sound.PLEASE_RATE)]

    def _expire(self, now: datetime) -> list[Command]:
        self._enter(State.EXPIRED, now, self._expired_s)
        return [ShowScreen(Screen.EXPIRED, prompt=self._prompt)]

    def _on_pause(self, paused: bool, now: datetime) -> list[Command]:
        if paused == self._paused:
            return []
        self._paused = paused
        if paused:
            self._queued = None  # prompts are refused while paused, queued ones too
            return [] if self._state in BUSY else self._go_paused()
        if self._state is State.PAUSED:
            return self._go_idle()
        return []

    # ---- time ----------------------------------------------------------------

    def _on_tick(self, now: datetime) -> list[Command]:
        if self._deadline is None or now < self._deadline:
            return []
        if self._state is State.PROMPTED:
            return self._expire(now)
        if self._state is State.REASONS:
            return self._finish_reasons(True, now)  # what was selected counts: it was the citizen's choice
        if self._state is State.HALL:
            return self._thank(now)
        return self._end_flow(now)  # thanked, expired, fault

    def _end_flow(self, now: datetime) -> list[Command]:
        queued, self._queued = self._queued, None
        if self._paused:
            return self._go_paused()
        if queued is not None and (fresh := self._unrated(queued)) is not None:
            return self._show_prompt(fresh, now)
        return self._go_idle()

    def _go_idle(self) -> list[Command]:
        self._reset(State.IDLE)
        return [ShowScreen(Screen.IDLE)]

    def _go_paused(self) -> list[Command]:
        self._reset(State.PAUSED)
        return [ShowScreen(Screen.PAUSED)]

    def _reset(self, state: State) -> None:
        self._state, self._deadline = state, None
        self._prompt = self._scored = self._storing = None
        self._stored = []

    def _enter(self, state: State, now: datetime, seconds: float) -> None:
        self._state = state
        self._deadline = now + timedelta(seconds=seconds)
