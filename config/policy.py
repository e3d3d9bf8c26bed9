"""Policy profiles: the regional rules as data.

A profile is a TOML file; the five regions of ``RULES.md`` ship as presets in
``config/profiles/``. A deployment names a preset and may override any key,
or points at a file of its own. Nothing in the code knows a region by name.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hcp.domain import Grade, Level
from hcp.exc import PolicyError


class Grades(BaseModel):
    """Which levels count as 好评, 中评 and 差评."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    good: list[int] = Field([5, 4], description="Scores that count as 好评.", examples=[[5, 4]])
    neutral: list[int] = Field([3], description="Scores that count as 中评.", examples=[[3]])
    bad: list[int] = Field([2, 1], description="Scores that count as 差评.", examples=[[2, 1]])

    @model_validator(mode="after")
    def _partition(self) -> Grades:
        scores = sorted(self.good + self.neutral + self.bad)
        if scores != [1, 2, 3, 4, 5]:
            raise ValueError("good, neutral and bad must split the scores 1-5, each score exactly once")
        return self


class Deadline(BaseModel):
    """A period a policy gives for a step: hours, natural days or working days.

    Days are counted from the day after the start, in China Standard Time,
    and end at midnight closing the last day (the usual 期间 rule).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=1, le=366, description="How many hours or days.", examples=[2])
    unit: Literal["hours", "natural_days", "working_days"] = Field(
        description="hours, natural_days (自然日) or working_days (工作日, from the calendar).",
        examples=["working_days"])

    def describe(self) -> str:
        """The period in words, for reasons and reports."""
        return f"{self.count} {self.unit.replace('_', ' ')}"


class Profile(BaseModel):
    """The rules one region's collector and terminals apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The region's name, shown in reports.", examples=["河南"])
    code: str = Field(description="A short code for the preset.", examples=["002"])
    grades: Grades = Field(default_factory=Grades, description="Which scores are 好评, 中评, 差评.")
    batch_rated_once: bool = Field(
        True, description="Cases sharing a batch_id (2+ of one item submitted at once) are rated once.")
    failed_intake_ratable: bool = Field(
        False, description="Whether a case whose intake failed may be rated at all.")
    hall_rating: bool = Field(
        False, description="Offer the hall-overall question after a service rating (一日一评).")
    hall_once_per_day: bool = Field(
        True, description="At most one hall rating per person per hall per China day.")
    reasons_after_bad: bool = Field(
        True, description="Ask for reasons (the dimensions) after a 差评.")
    dimensions: list[str] = Field(
        default_factory=list, description="Rating dimensions (分项) offered as reasons.",
        examples=[["服务态度", "办事效率"]])
    default_after_days: int | None = Field(
        None, ge=1, description="Natural days after completion before an unrated case is defaulted; "
        "empty when the region states none.")
    default_level: int | None = Field(
        None, ge=1, le=5, description="The level an unrated case defaults to.")
    rated_at_tolerance_days: int = Field(
        1, ge=0, le=30, description="Clock tolerance for a rating's date: a rating dated more than this many days "
        "after the collector's clock, or on a China day more than this many days before its case's completion "
        "day, is rejected (docs/protocol.md, 'Dates').", examples=[1])
    button_link_minutes: int = Field(
        30, ge=1, description="A clerk-button prompt with no case id links to the case completed at "
        "that window closest in time, within this many minutes.")

    followup_contact: Deadline | None = Field(
        None, description="A 差评's first contact (回访) is due within this; empty when the region says only "
        "'promptly'.", examples=[{"count": 48, "unit": "hours"}])
    followup_rectify: Deadline | None = Field(
        None, description="A 差评's rectification or explanation is due within this; empty when none is stated.",
        examples=[{"count": 15, "unit": "working_days"}])
    appeals: bool = Field(
        False, description="Whether the rated unit may appeal a 差评 (申诉复核).", examples=[True])
    appeal_window: Deadline | None = Field(
        None, description="An appeal must be filed within this of the 差评; empty: no stated limit.",
        examples=[{"count": 5, "unit": "working_days"}])
    appeal_review: Deadline | None = Field(
        None, description="The reviewer decides an appeal within this of its filing; empty: no stated limit.",
        examples=[{"count": 5, "unit": "working_days"}])
    spot_check_ratio: float = Field(
        0.0, ge=0, le=1, description="Share of closed follow-ups whose rectification is spot-checked.",
        examples=[0.5])
    reminder_channels: list[Literal["voice", "sms", "message"]] = Field(
        default_factory=list, description="How an unrated citizen is reminded (the collector lists who is due; "
        "sending is the messaging system's job).", examples=[["sms"]])
    reminder_after_hours: int | None = Field(
        None, ge=1, description="Remind a citizen whose case is still unrated this many hours after completion.",
        examples=[24])

    @model_validator(mode="after")
    def _lifecycle(self) -> Profile:
        if not self.appeals and (self.appeal_window or self.appeal_review):
            raise ValueError("appeal_window and appeal_review need appeals = true")
        later = {"sms", "message"} & set(self.reminder_channels)
        if later and self.reminder_after_hours is None:
            raise ValueError(f"reminder_channels {sorted(later)} need reminder_after_hours")
        return self

    @model_validator(mode="after")
    def _default_pair(self) -> Profile:
        if (self.default_after_days is None) != (self.default_level is None):
            raise ValueError("default_after_days and default_level go together: set both or neither")
        return self

    def grade(self, score: int) -> Grade:
        """The grade of a score under this profile."""
        if score in self.grades.good:
            return Grade.GOOD
        if score in self.grades.neutral:
            return Grade.NEUTRAL
        if score in self.grades.bad:
            return Grade.BAD
        raise ValueError(f"score {score} is not 1-5")

    def is_bad(self, score: int) -> bool:
        """True when the score is a 差评 under this profile."""
        return self.grade(score) is Grade.BAD

    def level_label(self, score: int) -> str:
        """The Chinese label of a score."""
        return Level(score).label


def preset_names() -> list[str]:
    """The names of the shipped presets (file stems)."""
    folder = resources.files("hcp.config") / "profiles"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(preset: str | None = None, path: Path | None = None,
                 overrides: dict[str, Any] | None = None) -> Profile:
    """A profile from a preset name or a file, with ``overrides`` applied on top."""
    if (preset is None) == (path is None):
        raise PolicyError("policy: name exactly one of preset or file")
    if preset is not None:
        if preset not in preset_names():
            raise PolicyError(f"policy.preset: unknown preset {preset!r}; expected one of {preset_names()}")
        source = f"preset {preset}"
        text = (resources.files("hcp.config") / "profiles" / f"{preset}.toml").read_text("utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as err:
            raise PolicyError(f"{path}: cannot read policy file ({err.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{source}: not valid TOML ({err})") from None
    data.update(overrides or {})
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise PolicyError(f"{source}: key {key}: {first['msg']}") from None
