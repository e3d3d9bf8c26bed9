"""What flows into the window's state machine and what comes out of it.

Front ends (the simulated panel, GPIO, serial board, touchscreen) turn
hardware into :data:`Event` values and act on :data:`Command` values; the
state machine in :mod:`hcp.agent.machine` only ever sees these dataclasses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hcp.domain import Kind


@dataclass(frozen=True)
class PromptSpec:
    """A clerk's request that the citizen rate: which case(s), which item, which clerk."""

    prompt_id: str
    case_ids: tuple[str, ...]
    item_code: str
    item_name: str
    clerk_id: str
    clerk_name: str | None = None
    expires_at: datetime | None = None


# ---- events: into the machine -------------------------------------------------

@dataclass(frozen=True)
class ClerkTrigger:
    """The clerk asks for a rating (business system, clerk link or clerk button)."""

    prompt: PromptSpec


@dataclass(frozen=True)
class StarPressed:
    """A star key (1-5) was pressed or touched."""

    score: int


@dataclass(frozen=True)
class ReasonToggled:
    """A reason (dimension) was selected or deselected on the reasons screen."""

    reason: str


@dataclass(frozen=True)
class ReasonsDone:
    """The citizen submitted the selected reasons, or skipped (``submit=False``)."""

    submit: bool = True


@dataclass(frozen=True)
class SkipPressed:
    """The citizen declined the current question (hall question, reasons)."""


@dataclass(frozen=True)
class Paused:
    """The clerk paused the window (暂停服务) or resumed it."""

    paused: bool


@dataclass(frozen=True)
class Tick:
    """Time passed; the machine checks its deadlines against ``now``."""


@dataclass(frozen=True)
class RatingStored:
    """The runtime committed a rating to the outbox: it is durable now."""

    rating_id: str
    seq: int
    kind: Kind


@dataclass(frozen=True)
class StoreFailed:
    """The runtime could not commit a rating (outbox full, disk error)."""

    reason: str


Event = (ClerkTrigger | StarPressed | ReasonToggled | ReasonsDone | SkipPressed | Paused | Tick
         | RatingStored | StoreFailed)


# ---- the star keys on the reasons screen ----------------------------------------

#: On the reasons screen star keys 1-4 toggle the reasons of the page shown; key 5
#: turns to the next page, or submits on the last one. A panel of five keys can so
#: choose among any number of reasons.
REASON_KEYS = 4
NEXT_KEY = 5


def reason_page(reasons: tuple[str, ...], page: int) -> tuple[str, ...]:
    """The reasons star keys 1, 2, ... toggle on ``page``."""
    return reasons[page * REASON_KEYS:(page + 1) * REASON_KEYS]


def is_last_page(reasons: tuple[str, ...], page: int) -> bool:
    """Whether key 5 submits on ``page`` (rather than turning to the next one)."""
    return (page + 1) * REASON_KEYS >= len(reasons)




# ---- commands: out of the machine ---------------------------------------------

class Screen(enum.StrEnum):
    """The screens a front end can show."""

    IDLE = "idle"
    PROMPT = "prompt"
    REASONS = "reasons"
    HALL = "hall"
    THANKS = "thanks"
    EXPIRED = "expired"
    PAUSED = "paused"
    FAULT = "fault"


class Sound(enum.StrEnum):
    """Spoken prompts and tones."""

    PLEASE_RATE = "please_rate"          # 请您对本次服务进行评价
    THANKS = "thanks"                    # 感谢您的评价
    ASK_REASON = "ask_reason"            # 请选择不满意的原因
    HALL_QUESTION = "hall_question"      # 请您对大厅整体服务进行评价
    BEEP = "beep"
    ERROR = "error"


@dataclass(frozen=True)
class ShowScreen:
    """Show ``screen``; ``prompt``, ``score`` and ``reasons`` fill it in where it needs them.

    ``page`` is the reasons page the star keys act on (see :func:`reason_page`).
    """

    screen: Screen
    prompt: PromptSpec | None = None
    score: int | None = None
    reasons: tuple[str, ...] = ()
    selected: tuple[str, ...] = ()
    message: str = ""
    page: int = 0


@dataclass(frozen=True)
class Feedback:
    """Acknowledge a press at once: light key ``score`` (None: none) and beep."""

    score: int | None
    beep: bool = True


@dataclass(frozen=True)
class PlaySound:
    """Play a spoken prompt or tone."""

    sound: Sound


@dataclass(frozen=True)
class StoreRating:
    """Commit a finished rating to the outbox; the runtime answers with RatingStored or StoreFailed."""

    kind: Kind
    prompt: PromptSpec
    score: int
    rated_at: datetime
    reasons: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Thanked:
    """The citizen has been thanked for a stored rating (for logs, tests and the demo)."""

    rating_id: str
    kind: Kind
    case_ids: tuple[str, ...]
    score: int
    #: Filled in by the runtime, not the machine: whether the MQTT link was up
    #: when the citizen was thanked (False: the rating waits in the outbox).
    link_up: bool | None = None


Command = ShowScreen | Feedback | PlaySound | StoreRating | Thanked

#: Screens on which every star key answers the question.
INVITING = frozenset({Screen.PROMPT, Screen.HALL})


def lit_keys(command: ShowScreen) -> tuple[int, ...]:
    """The star keys a panel lights for ``command``: those that do something on that screen."""
    if command.screen in INVITING:
        return (1, 2, 3, 4, 5)
    if command.screen is Screen.REASONS:
        return (*range(1, len(reason_page(command.reasons, command.page)) + 1), NEXT_KEY)
    return ()


class StatusLight(enum.StrEnum):
    """Patterns for the status LED, derived by the runtime from link and outbox state."""

    IDLE = "idle"
    PROMPTED = "prompted"
    OFFLINE = "offline"
    FAULT = "fault"


class FrontEnd(Protocol):
    """A window's hardware or screen: posts events, performs commands.

    ``start`` is given a thread-safe ``post`` callable; a front end calls it
    from any thread. ``perform`` is called from the agent's thread only and must
    not block (hand slow work to a thread of the front end's own).
    """

    def start(self, post: PostEvent) -> None:
        """Begin producing events."""

    def perform(self, command: Command) -> None:
        """Act on one command (screens, lights, sounds); ignore what does not apply."""

    def show_status(self, light: StatusLight, detail: str) -> None:
        """Show the terminal's health (status LED, technician line)."""

    def close(self) -> None:
        """Release pins, ports and windows; safe to call twice."""


class PostEvent(Protocol):
    def __call__(self, event: Event) -> None: ...
