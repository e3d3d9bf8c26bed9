"""Configuration sections of the other channels: the phone page, reminders and alerts, upstream forwarding.

Part of the collector's schema (``hcp.config.schema.CollectorConfig``); secrets
(the gateway token, the upstream signing keys) belong in the secrets file.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: Reverse proxies believed by default: one on the same host.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebSection(_Section):
    listen: str | None = Field(
        None, description="HOST:PORT the phone rating page listens on (the receipt QR's URL must reach it at "
        "/r/{case_id}); empty: no page.", examples=["0.0.0.0:8080"], pattern=r"^[^:\s]+:\d{1,5}$")
    hall_names: dict[str, str] = Field(default_factory=dict, description="Hall names the page shows, by hall id.",
                                       examples=[{"hall01": "乌兰察布市政务服务中心"}])
    window_names: dict[str, str] = Field(
        default_factory=dict, description="Window names the page shows, by \"hall/window\".",
        examples=[{"hall01/w03": "3号窗口"}])
    limit_per_address: str = Field(
        "300/minute", description="Requests one client address may make to the page, in the limits "
        "package's notation (\"N/second|minute|hour|day\", several joined by \";\"). Generous: phones on a "
        "mobile network share addresses (carrier NAT). Over it the page answers 429 请求过于频繁.",
        examples=["300/minute;3000/hour"])
    limit_per_case: str = Field(
        "20/minute", description="Requests with a valid receipt QR for one case (opening and sending the "
        "form takes two or three). Counted only after the QR's signature checks out, so nobody can use up "
        "another citizen's case with made-up links.", examples=["20/minute"])
    trusted_proxies: list[str] = Field(
        list(DEFAULT_TRUSTED_PROXIES), description="Addresses or networks of reverse proxies in front of the page "
        "whose X-Forwarded-For names the client; from any other address the header is ignored, so a "
        "client cannot dodge its limit by writing one. Empty: trust no proxy.",
        examples=[["127.0.0.1", "10.20.0.0/24"]])
    max_body_bytes: int = Field(
        16 * 1024, ge=1024, le=1024 * 1024, description="Largest request body the page reads (the rating form "
        "is a few hundred bytes). A larger one is refused 413 by its Content-Length before it is read; one "
        "without a length (chunked) is cut off at this size.", examples=[16384])
    max_connections: int = Field(
        100, ge=1, le=10_000, description="Connections and requests the page serves at once; beyond it uvicorn "
        "answers 503. Each connection holds at most this many bytes of body plus a 64 KiB read buffer, so this "
        "bounds the page's memory.", examples=[100])
    max_header_bytes: int = Field(
        16 * 1024, ge=4096, le=1024 * 1024, description="Largest request line plus headers; a larger header "
        "block is answered 400 before it is buffered further.", examples=[16384])

    @field_validator("limit_per_address", "limit_per_case")
    @classmethod
    def _limit(cls, value: str) -> str:
        from limits import parse_many  # ~0.1 s to import: only when a [web] section sets a limit

        try:
            rates = parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as \"300/minute\" or \"20/minute;200/hour\"") from None
        if any(rate.amount < 1 for rate in rates):
            raise ValueError(f"{value!r} allows no request at all; give at least 1 per period")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry)  # strict, as uvicorn reads it: 10.20.0.5/24 is a mistake
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network such as 10.20.0.0/24 "
                                 "(a network with no host bits set)") from None
        return value


class NotifySection(_Section):
    gateway_url: str | None = Field(
        None, description="The SMS gateway's HTTP endpoint (JSON POST {to, text, id}); empty: no reminders "
        "or alerts.", examples=["https://sms.example.gov.cn/send"])
    gateway_token: SecretStr | None = Field(
        None, description="Bearer token for the gateway; a secret (secrets file).", examples=["change-me"])
    duty_managers: dict[str, str] = Field(
        default_factory=dict, description="Phone number of each hall's duty manager, alerted at once of "
        "every 差评.", examples=[{"hall01": "13900000000"}])
    interval_s: float = Field(15, gt=0, description="How often due reminders and alerts are looked for.",
                              examples=[15])
    max_attempts: int = Field(8, ge=1, description="Attempts per message before it is marked failed.",
                              examples=[8])


class UpstreamSection(_Section):
    url: str | None = Field(
        None, description="The provincial 好差评 platform's endpoint; empty: nothing is forwarded (records "
        "still wait in the outbox).", examples=["https://hcp.province.gov.cn/api/evaluations"])
    code_table: str = Field("national-2020", description="Shipped code table or preset (region-version) mapping "
                            "scores, channels and kinds to the platform's codes; a preset (with [fields]) is the "
                            "platform's whole format (docs/upstream.md).", examples=["province-params-v1"])
    code_table_file: Path | None = Field(None, description="A code table TOML of your own (instead of code_table).",
                                         examples=["/etc/hcp/upstream-codes.toml"])
    fields: dict[str, str] = Field(default_factory=dict, description="Renamed payload fields (hcp name -> "
                                   "the platform's).", examples=[{"id": "evaluateId", "satisfaction": "satisfaction"}])
    reason_field: str = Field("message", description="Field of the platform's error answer that holds the reason.",
                              examples=["msg"])
    signing: Literal["hmac", "sm2", "none"] = Field("hmac", description="How requests are signed.",
                                                    examples=["sm2"])
    key_id: str = Field("hcp", description="Key id sent with each signature.", examples=["collector-1"])
    hmac_secret: SecretStr | None = Field(None, description="Shared HMAC-SHA256 secret; a secret (secrets file).",
                                          examples=["change-me-32-characters-or-longer"])
    sm2_private_key: SecretStr | None = Field(None, description="SM2 private key, hex; a secret (secrets file).",
                                              examples=["3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"])
    app_id: str | None = Field(None, description="The application id the platform issued, sent in a signed "
                               "envelope (presets with [envelope] style = \"signed\").", examples=["hcp-370102"])
    data_source: str | None = Field(None, description="The three-digit platform code the province assigned "
                                    "(dataSource), for presets that send it.", examples=["101"],
                                    pattern=r"^[0-9]{3}$")
    area_code: str | None = Field(None, description="行政区划代码 of this collector's area, sent when a case "
                                  "record carries none.", examples=["370102"], pattern=r"^[0-9]{6}([0-9]{6})?$")
    timeout_s: float = Field(10, gt=0, description="Seconds to wait for the platform's answer.", examples=[10])
    backoff_base_s: float = Field(5, gt=0, description="First retry delay; it doubles, with jitter.", examples=[5])
    backoff_cap_s: float = Field(3600, gt=0, description="Longest retry delay.", examples=[3600])
    max_attempts: int = Field(0, ge=0, description="Give up (status rejected) after this many; 0 never gives up.",
                              examples=[0])
    interval_s: float = Field(5, gt=0, description="How often new records are queued and due ones delivered.",
                              examples=[5])

    @model_validator(mode="after")
    def _signing_key(self) -> UpstreamSection:
        if self.url and self.signing == "hmac" and self.hmac_secret is None:
            raise ValueError("signing = hmac needs hmac_secret (in the secrets file)")
        if self.url and self.signing == "sm2" and self.sm2_private_key is None:
            raise ValueError("signing = sm2 needs sm2_private_key (in the secrets file)")
        return self
