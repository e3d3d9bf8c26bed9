"""The words of the rating scheme: levels, grades, kinds, outcomes, China time.

Nothing here does I/O. What counts as good, neutral or bad is a policy
decision and lives in the profile (``hcp.config.policy``); the defaults here
are the national scheme that every preset shares.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone

#: China Standard Time. China keeps no daylight saving, so a fixed offset is
#: exact and needs no tz database on a minimal Pi image.
CST = timezone(timedelta(hours=8), "CST")


class Level(enum.IntEnum):
    """The five satisfaction levels, scored 5 (best) down to 1."""

    VERY_SATISFIED = 5
    SATISFIED = 4
    BASICALLY_SATISFIED = 3
    DISSATISFIED = 2
    VERY_DISSATISFIED = 1

    @property
    def label(self) -> str:
        """The Chinese label shown to citizens and in reports."""
        return _LABELS[self]

    @property
    def stars(self) -> str:
        """The level as filled and empty stars, e.g. ``★★★☆☆``."""
        return "★" * self.value + "☆" * (5 - self.value)


_LABELS = {
    Level.VERY_SATISFIED: "非常满意",
    Level.SATISFIED: "满意",
    Level.BASICALLY_SATISFIED: "基本满意",
    Level.DISSATISFIED: "不满意",
    Level.VERY_DISSATISFIED: "非常不满意",
}


class Grade(enum.StrEnum):
    """The three grades statistics are kept in: 好评, 中评, 差评."""

    GOOD = "good"
    NEUTRAL = "neutral"
    BAD = "bad"

    @property
    def label(self) -> str:
        """The Chinese name of the grade."""
        return {"good": "好评", "neutral": "中评", "bad": "差评"}[self.value]


class Kind(enum.StrEnum):
    """What a rating is about: one service (办件), or the hall overall."""

    SERVICE = "service"
    HALL = "hall"


class Outcome(enum.StrEnum):
    """The collector's answer to a rating; every answer ends the terminal's duty."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Intake(enum.StrEnum):
    """Whether the case's application was taken in (受理) or refused."""

    OK = "ok"
    FAILED = "failed"


class Channel(enum.StrEnum):
    """Where a rating came from. All channels feed one store."""

    WINDOW = "window"
    QR = "qr"
    SMS = "sms"
    APP = "app"
    WEB = "web"
    KIOSK = "kiosk"
    HOTLINE = "hotline"
    PAPER = "paper"
    SYSTEM_DEFAULT = "system-default"


def china_date(moment: datetime) -> date:
    """The calendar day of ``moment`` in China Standard Time."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no defined China date")
    return moment.astimezone(CST).date()


def utc_text(moment: datetime) -> str:
    """How hcp stores a moment: UTC, RFC 3339 with microseconds and ``+00:00``, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no defined UTC time")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now_cst() -> datetime:
    """The current time, aware, in China Standard Time."""
    return datetime.now(CST)
