"""Upstream presets: a platform's whole format as data (field names, codes, envelope, signing, rules).

A preset is a code table file (``config/upstream/<name>.toml``) with a
``[fields]`` section: each platform field names the hcp value it carries
(``projectNo = "case_id"``) or a literal (``userPageType = "=111"``). The
other sections say how the record travels (``[envelope]``), what is signed
(``[signing]``), how the platform says yes (``[answer]``), what it refuses
(``[rules]``), and whether it is real-name (``[identity]``). A table without
``[fields]`` is a plain code table for :class:`hcp.collector.upstream.HttpJsonAdapter`.
docs/upstream.md documents every shipped preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hcp.collector.upstream_codes import CodeTable, load_data, table_from
from hcp.exc import ConfigError

#: The hcp values a preset's fields may carry (docs/upstream.md explains each).
SOURCES = ("record_id", "case_id", "item_code", "item_name", "handle_item_code", "dept_code", "clerk_id",
           "clerk_name", "hall_id", "window_id", "area_code", "channel", "satisfaction", "satisfaction_name", "kind",
           "reason_codes", "text", "rated_at", "accepted_at", "completed_at", "promise", "applicant_type",
           "assess_number", "cert", "name", "data_source")
#: Sources that are the rater's identity: only in real-name presets.
IDENTITY_SOURCES = ("cert", "name")
ENVELOPES = ("plain", "wrap", "signed")


@dataclass(frozen=True)
class Envelope:
    """How the mapped record travels: as the body, inside ``{data_key: …}``, or in a signed envelope."""

    style: str = "plain"
    data_key: str = "data"
    app_key: str = "appId"
    time_key: str = "timestamp"
    sign_key: str = "sign"
    data_as_text: bool = False


@dataclass(frozen=True)
class Answer:
    """How a 2xx answer says yes: the value at ``code_field`` (dotted) is one of ``ok``; empty: 2xx is yes."""

    code_field: str = ""
    ok: tuple[str, ...] = ()
    text_field: str = "message"


@dataclass(frozen=True)
class Preset:
    """One platform's format at one version."""

    table: CodeTable
    fields: dict[str, str]
    envelope: Envelope = Envelope()
    signing: str = "body"  # body: hcp's signature headers over the body; credentials: inside the envelope
    signing_alg: str = ""  # the algorithm the platform requires ("sm2"), or "" for the configured one
    answer: Answer = Answer()
    required: tuple[str, ...] = ()
    bad_needs_one_of: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ("service", "hall")
    records: tuple[str, ...] = ("rating", "exclusion", "appeal-decision")
    identity: bool = False
    retention_days: int = 0
    identity_max_days: int = 90
    reason_codes: dict[str, str] = field(default_factory=dict)
    promise: dict[str, str] = field(default_factory=dict)
    applicant_types: dict[str, str] = field(default_factory=dict)
    time_format: str = "%Y-%m-%d %H:%M:%S"

    @property
    def name(self) -> str:
        return self.table.name


def load_preset(name: str | None = None, path: Path | None = None) -> Preset | None:
    """The preset of a shipped table or a file, or None when the table has no ``[fields]`` (a code table only)."""
    data, source = load_data(name, path)
    table = table_from(data, source)
    if "fields" not in data:
        return None
    return _preset(data, table, source)


def _preset(data: dict, table: CodeTable, source: str) -> Preset:
    fields = _strings(data, "fields", source)
    for key, value in fields.items():
        if not value.startswith("=") and value not in SOURCES:
            raise ConfigError(f"{source}: key fields.{key}: {value!r} is not one of {', '.join(SOURCES)} "
                              "or a literal \"=…\"")
    identity = dict(data.get("identity", {}))
    needs_identity = bool(identity.get("required", False))
    wants = [k for k, v in fields.items() if v in IDENTITY_SOURCES]
    if wants and not needs_identity:
        raise ConfigError(f"{source}: key fields.{wants[0]}: carries the rater's identity; set [identity] "
                          "required = true")
    rules, answer, envelope, signing = (dict(data.get(k, {})) for k in ("rules", "answer", "envelope", "signing"))
    for key in (*rules.get("required", []), *rules.get("bad_needs_one_of", [])):
        if key not in fields:
            raise ConfigError(f"{source}: key rules: {key!r} is not among [fields]")
    if envelope.get("style", "plain") not in ENVELOPES:
        raise ConfigError(f"{source}: key envelope.style: expected one of {', '.join(ENVELOPES)}")
    return Preset(
        table, fields, Envelope(**envelope), str(signing.get("over", "body")), str(signing.get("alg", "")),
        Answer(str(answer.get("code_field", "")), tuple(str(v) for v in answer.get("ok", ())),
               str(answer.get("text_field", "message"))),
        tuple(rules.get("required", ())), tuple(rules.get("bad_needs_one_of", ())),
        tuple(rules.get("kinds", ("service", "hall"))),
        tuple(rules.get("records", ("rating", "exclusion", "appeal-decision"))),
        needs_identity, int(identity.get("retention_days", 0)), int(identity.get("max_days", 90)),
        _strings(data, "reason_codes", source),
        _strings(data, "promise", source), _strings(data, "applicant_types", source),
        str(data.get("time_format", "%Y-%m-%d %H:%M:%S")))


def _strings(data: dict, key: str, source: str) -> dict[str, str]:
    section = data.get(key, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: key {key}: expected a table")
    return {str(k): str(v) for k, v in section.items()}
