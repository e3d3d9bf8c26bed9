"""Wire protocol v1: topics and the JSON messages that travel on them.

Every message is UTF-8 JSON with ``"v": 1``. Decoding validates the whole
message and raises :class:`hcp.exc.ProtocolError` naming the first field that
is wrong (``ratings[0].score: ...``). ``docs/protocol.md`` is the reference a
third party builds from; keep the two in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from hcp.domain import Intake, Kind, Outcome
from hcp.exc import ProtocolError

PROTOCOL_VERSION = 1
DEFAULT_PREFIX = "hcp/v1"
#: A message larger than this is refused before it is parsed.
MAX_PAYLOAD_BYTES = 256 * 1024
#: At most this many ratings travel in one rating message.
MAX_RATINGS_PER_MESSAGE = 1000

#: The bounds of every number and time on the wire (docs/protocol.md, "Bounds"): what the collector
#: stores fits a 64-bit integer, and every time can be converted to any offset without overflow.
MAX_SEQ = 2**63 - 1
MAX_UPTIME_S = 1e9  # about 31 years
MAX_COUNT = 2**31 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

#: The characters of an id (device, hall, window, case, …), and of a rating id: regex character-class bodies.
IDENT_CHARS = "A-Za-z0-9._:-"
RATING_ID_CHARS = "0-9a-fA-F-"

Ident = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=f"^[{IDENT_CHARS}]+$")]
Text = Annotated[str, StringConstraints(max_length=200)]
#: A value sealed to the collector (hcp.collector.sealing): base64 of HPKE enc || ciphertext.
Sealed = Annotated[str, StringConstraints(min_length=64, max_length=1024, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]


def _exact_version(value: object) -> object:
    # JSON true and 1.0 equal 1 in Python, and Literal[1] would take them: a version is the integer 1.
    if type(value) is not int:
        raise ValueError(f"protocol version must be the integer {PROTOCOL_VERSION}")
    return value


def _in_range(moment: datetime) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"must lie from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)")
    return moment


#: The protocol version field of every message.
Version = Annotated[Literal[1], BeforeValidator(_exact_version)]
#: An RFC 3339 time with an offset, within EARLIEST..LATEST.
Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rating(_Message):
    """One rating as the terminal sends it."""

    rating_id: Annotated[str, StringConstraints(min_length=16, max_length=64, pattern=f"^[{RATING_ID_CHARS}]+$")]
    seq: int = Field(ge=1, le=MAX_SEQ)
    kind: Kind
    case_ids: list[Ident] = Field(max_length=50)
    score: int = Field(ge=1, le=5)
    rated_at: Moment
    clock_synced: bool
    prompt_id: Ident | None = None
    hall_id: Ident | None = None
    window_id: Ident | None = None
    clerk_id: Ident | None = None
    item_code: Ident | None = None
    reasons: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=20)
    boot_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    uptime_s: float | None = Field(default=None, ge=0, le=MAX_UPTIME_S, allow_inf_nan=False)


class RatingMessage(_Message):
    """``{prefix}/dev/{device_id}/rating``: terminal to collector, QoS 1."""

    v: Version
    device_id: Ident
    ratings: list[Rating] = Field(min_length=1, max_length=MAX_RATINGS_PER_MESSAGE)


class AckResult(_Message):
    """The collector's answer for one rating id."""

    rating_id: str
    outcome: Outcome
    reason: str = ""


class AckMessage(_Message):
    """``{prefix}/dev/{device_id}/ack``: collector to terminal, QoS 1."""

    v: Version
    results: list[AckResult] = Field(default_factory=list)
    #: A message-level error: the message could not be taken, and nothing in it was stored or answered.
    error: str | None = None
    #: With ``error``: the first rating id the collector could read in that message, so that a terminal
    #: with several messages in flight knows which one it was.
    first_rating_id: str | None = None


class PromptMessage(_Message):
    """``{prefix}/dev/{device_id}/prompt``: the clerk's trigger, from the business system."""

    v: Version
    prompt_id: Ident
    case_ids: list[Ident] = Field(min_length=1, max_length=50)
    item_code: Ident
    item_name: Text
    clerk_id: Ident
    clerk_name: Text | None = None
    expires_at: Moment | None = None


class StatusMessage(_Message):
    """``{prefix}/dev/{device_id}/status``: retained; the last will says offline."""

    v: Version
    device_id: Ident
    state: Literal["online", "offline"]
    version: str = ""
    outbox_depth: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    oldest_unsent_at: Moment | None = None
    clock_synced: bool | None = None
    at: Moment | None = None
    boot_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    uptime_s: float | None = Field(default=None, ge=0, le=MAX_UPTIME_S, allow_inf_nan=False)
    settings_version: int | None = Field(default=None, ge=0, le=MAX_COUNT)


class SettingsMessage(_Message):
    """``{prefix}/dev/{device_id}/config``: retained, operator to terminal; absent fields stay as they are."""

    v: Version
    version: int = Field(ge=1, le=MAX_COUNT)
    prompt_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    response_interval_s: float | None = Field(default=None, ge=0, le=60)
    volume: float | None = Field(default=None, ge=0, le=1)
    policy_preset: Ident | None = None


class CaseRecord(_Message):
    """One case (办件) as the business system reports it on completion."""

    case_id: Ident
    hall_id: Ident
    window_id: Ident
    item_code: Ident
    item_name: Text
    clerk_id: Ident
    intake: Intake
    batch_id: Ident | None = None
    applicant_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    #: The applicant's mobile number, only for the reminder SMS; the collector keeps it encrypted.
    applicant_phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{6,15}$")] | None = None
    #: The same two, sealed to the collector's public key (HPKE, docs/protocol.md); give a field plain or sealed.
    applicant_id_sealed: Sealed | None = None
    applicant_phone_sealed: Sealed | None = None
    completed_at: Moment
    # What the provincial platform's formats need (docs/upstream.md); all optional.
    #: The applicant's name, kept sealed and sent only where the upstream preset is real-name.
    applicant_name: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    applicant_type: Literal["person", "legal"] | None = None
    dept_code: Ident | None = None
    handle_item_code: Ident | None = None
    clerk_name: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    accepted_at: Moment | None = None
    #: Working days promised (承诺时限); 0 for an on-the-spot case (即办件).
    promised_days: int | None = Field(default=None, ge=0, le=999)
    #: 行政区划代码: six digits (county) or twelve (township and below).
    area_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}([0-9]{6})?$")] | None = None

    @model_validator(mode="after")
    def _accepted_before_completed(self) -> CaseRecord:
        if self.accepted_at is not None and self.accepted_at > self.completed_at:
            raise ValueError("accepted_at: after completed_at")
        return self


class CasesMessage(_Message):
    """``{prefix}/cases``: business system to collector."""

    v: Version
    cases: list[CaseRecord] = Field(min_length=1, max_length=MAX_RATINGS_PER_MESSAGE)


class CaseResult(_Message):
    """The collector's answer for one case record."""

    case_id: str
    outcome: Literal["stored", "unchanged", "rejected"]
    reason: str = ""


class CasesAckMessage(_Message):
    """``{prefix}/cases/ack``: collector to business system."""

    v: Version
    results: list[CaseResult] = Field(default_factory=list)
    error: str | None = None


M = TypeVar("M", bound=BaseModel)


def decode(model: type[M], payload: bytes | str) -> M:
    """Parse and validate ``payload`` as ``model``; raise ProtocolError naming the field."""
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > MAX_PAYLOAD_BYTES:
        raise ProtocolError("payload", f"{size} bytes is over the limit of {MAX_PAYLOAD_BYTES}")
    try:
        # strict on the wire: "5" is not a score and 1 is not a boolean (JSON strings
        # still parse as datetimes and enums); code building messages stays lax.
        return model.model_validate_json(payload, strict=True)
    except ValidationError as err:
        raise _protocol_error(err) from None


def encode(message: BaseModel) -> bytes:
    """Serialise a message as compact UTF-8 JSON."""
    return message.model_dump_json(exclude_none=True).encode()


def _protocol_error(err: ValidationError) -> ProtocolError:
    first = err.errors(include_url=False)[0]
    field = _field_path(first["loc"])
    if first["type"] == "json_invalid":
        return ProtocolError("payload", f"not valid JSON ({first.get('ctx', {}).get('error', first['msg'])})")
    if first["type"] == "model_type" and not first["loc"]:
        return ProtocolError("payload", "must be a JSON object")
    if first["type"] == "extra_forbidden":
        return ProtocolError(field, "unknown field")
    if first["type"] in ("literal_error", "value_error") and field == "v":
        return ProtocolError("v", f"protocol version must be the integer {PROTOCOL_VERSION}")
    if first["type"] == "value_error":  # our own validators: their message without pydantic's "Value error, "
        error = str(first.get("ctx", {}).get("error", first["msg"]))
        name, sep, rest = error.partition(": ")  # a check across fields names its field first: "accepted_at: ..."
        if sep and name.isidentifier():
            return ProtocolError(f"{field}.{name}" if field else name, rest)
        return ProtocolError(field, error)
    return ProtocolError(field, first["msg"])


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        name = str(part) or '""'  # an empty JSON key must still be named in the error
        path += f"[{part}]" if isinstance(part, int) else (f".{name}" if path else name)
    return path


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix; the one place topic strings are built."""

    prefix: str = DEFAULT_PREFIX

    def device(self, device_id: str, leaf: str) -> str:
        """``{prefix}/dev/{device_id}/{leaf}``."""
        return f"{self.prefix}/dev/{device_id}/{leaf}"

    def rating(self, device_id: str) -> str:
        return self.device(device_id, "rating")

    def ack(self, device_id: str) -> str:
        return self.device(device_id, "ack")

    def prompt(self, device_id: str) -> str:
        return self.device(device_id, "prompt")

    def status(self, device_id: str) -> str:
        return self.device(device_id, "status")

    def config(self, device_id: str) -> str:
        return self.device(device_id, "config")

    @property
    def cases(self) -> str:
        return f"{self.prefix}/cases"

    @property
    def cases_ack(self) -> str:
        return f"{self.prefix}/cases/ack"

    @property
    def chain_head(self) -> str:
        """The collector's last signed chain head, retained (docs/reliability.md)."""
        return f"{self.prefix}/collector/chain-head"

    @property
    def all_ratings(self) -> str:
        """The collector's subscription to every terminal's ratings."""
        return f"{self.prefix}/dev/+/rating"

    @property
    def all_status(self) -> str:
        return f"{self.prefix}/dev/+/status"

    @staticmethod
    def shared(topic: str, group: str) -> str:
        """``$share/{group}/{topic}``: an MQTT 5 shared subscription to ``topic`` (``topic`` itself when no group)."""
        return f"$share/{group}/{topic}" if group else topic

    def device_of(self, topic: str) -> str | None:
        """The device id in a ``{prefix}/dev/{id}/...`` topic, or None."""
        head = f"{self.prefix}/dev/"
        if not topic.startswith(head):
            return None
        device_id, _, _leaf = topic[len(head):].partition("/")
        return device_id or None


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 text with its offset."""
    if moment.tzinfo is None:
        raise ValueError("rated times must be aware")
    return moment.isoformat()


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON for ad-hoc payloads (tests, tools)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
