"""Delivering outbox records in a preset's format: map, check the platform's rules, envelope, sign, POST.

:class:`PresetAdapter` is an :class:`hcp.collector.upstream.Adapter`. A record
the preset's rules refuse (a 差评 without reason codes or text, a required
field missing) is answered ``rejected`` with the field at fault before any
request, so it is reported by ``hcp upstream`` and never retried. The rater's
identity, in real-name presets, is opened from :class:`Identities` only here,
while the request is built, and goes only into the signed request.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from hcp.collector.upstream import Delivery
from hcp.collector.upstream_identity import Identities, Identity
from hcp.collector.upstream_preset import Preset
from hcp.collector.upstream_sign import Signer, Sm2Signer
from hcp.domain import CST

#: hcp scores the platforms call 差评 (不满意, 非常不满意).
BAD_SCORES = (1, 2)
SATISFACTION_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


class Refused(ValueError):
    """The preset's rules refuse a record before it is sent; the message names the field."""


@dataclass(frozen=True)
class PresetSettings:
    """What the deployment adds to a preset: where, who (the envelope's app id), and its own codes."""

    url: str
    app_id: str = ""
    data_source: str = ""
    area_code: str = ""
    timeout_s: float = 10.0


class PresetAdapter:
    """POSTs each record in ``preset``'s format; one request per case of a rating."""

    def __init__(self, preset: Preset, settings: PresetSettings, signer: Signer | None = None,
                 identities: Identities | None = None) -> None:
        self.preset = preset
        self.settings = settings
        self.signer = signer
        self.identities = identities

    # -- the Adapter protocol ----------------------------------------------------

    def deliver(self, record: dict) -> Delivery:
        try:
            bodies = [(key, self.request_body(fields)) for key, fields in self.requests(record)]
        except Refused as err:
            return Delivery("rejected", f"not sent: {err}")
        for key, body in bodies:
            delivery = self._post(key, body)
            if delivery.status != "sent":
                return Delivery(delivery.status, self._masked(delivery.detail, record))
        return Delivery("sent")

    def _masked(self, detail: str, record: dict) -> str:
        """The platform's reason without the rater's identity, should it quote it (the reason is logged)."""
        if self.identities is None:
            return detail
        for case_id in _case_ids(record):
            identity = self.identities.get(case_id)
            for secret in (identity.cert, identity.name) if identity else ():
                detail = detail.replace(secret, "***")
        return detail

    def done(self, record: dict, now: datetime) -> None:
        """The platform's answer on ``record`` is final: its cases' identities are erased after retention."""
        if self.identities is not None and record.get("record_type") == "rating":
            self.identities.finished(_case_ids(record), now, timedelta(days=self.preset.retention_days))

    def erase_due(self, now: datetime) -> int:
        """Erase the identities whose retention has passed."""
        if self.identities is None:
            return 0
        return self.identities.erase_due(now, timedelta(days=self.preset.identity_max_days))

    # -- building ------------------------------------------------------------------

    def requests(self, record: dict) -> list[tuple[str, dict]]:
        """The platform's fields of each request ``record`` becomes, with its idempotency key; Refused."""
        kind = record.get("record_type")
        if kind not in self.preset.records:
            raise Refused(f"record_type: the {self.preset.name} interface carries no {kind} records")
        if record.get("kind") not in self.preset.kinds:
            raise Refused(f"kind: the {self.preset.name} interface carries no {record.get('kind')} ratings")
        cases = record.get("case_details") or [{}]
        keyed = [(record["id"] if len(cases) == 1 else f"{record['id']}/{case.get('case_id')}", case)
                 for case in cases]
        return [(key, self.check(record, self.fields(record, case))) for key, case in keyed]

    def fields(self, record: dict, case: dict) -> dict:
        """The platform's fields for ``record`` about ``case``; absent values are left out."""
        values = self._values(record, case)
        mapped = {key: source[1:] if source.startswith("=") else values.get(source)
                  for key, source in self.preset.fields.items()}
        return {key: value for key, value in mapped.items() if value not in (None, "")}

    def check(self, record: dict, fields: dict) -> dict:
        """``fields`` if the preset's rules take them; Refused naming the field at fault."""
        for key in self.preset.required:
            if key not in fields:
                raise Refused(f"{key}: missing (from {self.preset.fields[key]})")
        needs = self.preset.bad_needs_one_of
        if needs and record.get("score") in BAD_SCORES and not any(k in fields for k in needs):
            raise Refused(f"{'/'.join(needs)}: a 差评 needs a reason or a text")
        return fields

    def request_body(self, fields: dict) -> bytes:
        """The bytes POSTed: the fields in the preset's envelope."""
        envelope = self.preset.envelope
        data = json.dumps(fields, ensure_ascii=False, separators=(",", ":")) if envelope.data_as_text else fields
        if envelope.style == "plain":
            outer = fields
        elif envelope.style == "wrap":
            outer = {envelope.data_key: data}
        else:
            stamp = str(int(time.time() * 1000))
            outer = {envelope.app_key: self.settings.app_id, envelope.time_key: stamp,
                     envelope.sign_key: self._credential_signature(stamp), envelope.data_key: data}
        return json.dumps(outer, ensure_ascii=False, separators=(",", ":")).encode()

    def _credential_signature(self, stamp: str) -> str:
        if not isinstance(self.signer, Sm2Signer):
            raise Refused(f"signing: the {self.preset.name} envelope is signed with SM2 (upstream.signing = sm2)")
        return self.signer.sign(credential_text(self.settings.app_id, stamp))

    def _values(self, record: dict, case: dict) -> dict:
        table, score = self.preset.table, record.get("score")
        codes = [self.preset.reason_codes[r] for r in record.get("reasons", ()) if r in self.preset.reason_codes]
        words = [r for r in record.get("reasons", ()) if r not in self.preset.reason_codes]
        values = {
            "record_id": record.get("id"), "channel": _code(table.channels, record.get("channel")),
            "satisfaction": _code(table.satisfaction, score), "satisfaction_name": SATISFACTION_NAMES.get(score),
            "kind": _code(table.kinds, record.get("kind")), "reason_codes": ",".join(codes),
            "text": "；".join([*words, record.get("text") or ""]).strip("；"),
            "rated_at": self._time(record.get("rated_at")), "assess_number": "1",
            "hall_id": record.get("hall_id"), "window_id": record.get("window_id"),
            "clerk_id": case.get("clerk_id") or record.get("clerk_id"),
            "item_code": case.get("item_code") or record.get("item_code"),
            "area_code": case.get("area_code") or self.settings.area_code or None,
            "data_source": self.settings.data_source or None,
        }
        values.update({k: case.get(k) for k in ("case_id", "item_name", "handle_item_code", "dept_code",
                                                "clerk_name")})
        values.update(accepted_at=self._time(case.get("accepted_at")),
                      completed_at=self._time(case.get("completed_at")),
                      promise=self._promise(case.get("promised_days")),
                      applicant_type=self.preset.applicant_types.get(case.get("applicant_type") or ""))
        if self.preset.identity:
            values.update(self._identity(case.get("case_id")))
        return values

    def _identity(self, case_id: str | None) -> dict:
        identity: Identity | None = self.identities.get(case_id) if self.identities and case_id else None
        return {"cert": identity.cert, "name": identity.name} if identity else {}

    def _promise(self, days: int | None) -> str | None:
        if days is None:
            return None
        if self.preset.promise.get("style") == "days":
            return str(days)
        return self.preset.promise.get("on_the_spot" if days == 0 else "promised")

    def _time(self, text: str | None) -> str | None:
        if not text:
            return None
        return datetime.fromisoformat(text).astimezone(CST).strftime(self.preset.time_format)

    # -- sending -------------------------------------------------------------------

    def _post(self, key: str, body: bytes) -> Delivery:
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": key}
        if self.signer is not None and self.preset.signing == "body":
            headers.update(self.signer.headers(body))
        request = urllib.request.Request(self.settings.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as answer:
                return self._answered(answer.read())
        except urllib.error.HTTPError as err:
            return _refused(err.code, _text(err.read(), self.preset.answer.text_field))
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            return Delivery("retry", f"platform unreachable ({type(err).__name__}: {err})"[:200])

    def _answered(self, body: bytes) -> Delivery:
        answer = self.preset.answer
        if not answer.code_field:
            return Delivery("sent")
        try:
            code = _dotted(json.loads(body), answer.code_field)
        except (ValueError, KeyError, TypeError):
            return Delivery("retry", f"the platform's answer has no {answer.code_field}")
        if str(code) in answer.ok:
            return Delivery("sent")
        return Delivery("rejected", f"{answer.code_field} {code}: {_text(body, answer.text_field)}")


def credential_text(app_id: str, stamp: str) -> bytes:
    """What the signed envelope's signature covers: the app id and the time (docs/upstream.md)."""
    return f"{app_id}{stamp}".encode()


def _case_ids(record: dict) -> list[str]:
    return [c["case_id"] for c in record.get("case_details") or () if c.get("case_id")]


def _code(table: dict, key) -> str | None:
    return table.get(key) if key is not None else None


def _dotted(data, path: str):
    for part in path.split("."):
        data = data[part]
    return data


def _text(body: bytes, field: str) -> str:
    text = body.decode("utf-8", "replace")
    try:
        return str(_dotted(json.loads(text), field))[:200]
    except (ValueError, KeyError, TypeError):
        return text[:200] or "no reason given"


def _refused(code: int, reason: str) -> Delivery:
    if code == 409:
        return Delivery("sent", "the platform already had it")
    if 400 <= code < 500 and code not in (408, 425, 429):
        return Delivery("rejected", f"HTTP {code}: {reason}")
    return Delivery("retry", f"HTTP {code}")
