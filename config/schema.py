"""The configuration schema for terminals (agent) and the collector.

One pydantic model per file type; every key carries a description and an
example, so ``docs/configuration.md`` can be generated from here. Unknown keys
are errors. Loading errors name the file, the key and what was expected.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hcp.config.channels import NotifySection, UpstreamSection, WebSection
from hcp.config.policy import PolicyError, Profile, load_profile, preset_names
from hcp.config.secrets import merge_secrets, protect
from hcp.device.settings import ClerkLinkSection, GpioSection, SerialBoardSection
from hcp.exc import ConfigError
from hcp.protocol import DEFAULT_PREFIX, IDENT_CHARS
from hcp.ui.settings import DisplaySection, ReceiptKeySection, ReceiptSection, VoiceSection

#: ``scheme://…``: a database URL, not a file path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_database_url(url: str) -> None:
    """Refuse a ``postgresql://`` URL libpq cannot read, or one with a password in it, naming what is wrong."""
    from psycopg.conninfo import conninfo_to_dict  # libpq's own parser: several hosts, every parameter

    try:
        params = conninfo_to_dict(url)
    except Exception as err:  # psycopg.ProgrammingError; its words name the problem
        raise ValueError(f"not a valid postgresql:// URL ({str(err).strip()})") from None
    if params.get("password"):
        raise ValueError("a password in the database URL would be in the config file and in process lists: "
                         "put it in ~/.pgpass (mode 0600) or PGPASSWORD")
    if not params.get("dbname"):
        raise ValueError(f"{url}: the URL names no database (postgresql://user@host/dbname)")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerSection(_Section):
    host: str = Field("127.0.0.1", description="MQTT broker host name or address.", examples=["mqtt.hall.local"])
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port.", examples=[8883])
    prefix: str = Field(DEFAULT_PREFIX, description="Topic prefix of protocol v1.", examples=["hcp/v1"])
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keepalive in seconds.", examples=[30])
    session_expiry_s: int = Field(
        7 * 86400, ge=0, description="How long the broker keeps this client's session while it is away.",
        examples=[604800])
    reconnect_max_s: float = Field(
        30.0, ge=0.1, le=3600, description="Longest wait between reconnect attempts (they back off with "
        "jitter up to this).", examples=[30])
    ca_file: Path | None = Field(
        None, description="The device CA certificate; set it to connect over TLS (production, port 8883).",
        examples=["/etc/hcp/pki/ca.crt"])
    cert_file: Path | None = Field(
        None, description="This client's certificate (CN = device id, or collector / operator / business); "
        "its CN is also the MQTT client id (the broker enforces it: use_username_as_clientid).",
        examples=["/etc/hcp/pki/hall01-w03.crt"])
    key_file: Path | None = Field(
        None, description="This client's private key; a secret: mode 0600, owned by the service user.",
        examples=["/etc/hcp/pki/hall01-w03.key"])

    @model_validator(mode="after")
    def _tls_complete(self) -> BrokerSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("cert_file needs ca_file (TLS)")
        return self


class PolicySection(_Section):
    preset: str | None = Field("henan", description="A shipped policy preset.", examples=["ulanqab"])
    file: Path | None = Field(None, description="A policy TOML file of your own (instead of preset).",
                              examples=["/etc/hcp/policy.toml"])
    overrides: dict[str, Any] = Field(default_factory=dict,
                                      description="Keys that override the preset or file.",
                                      examples=[{"hall_rating": True}])

    @field_validator("preset")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in preset_names():
            raise ValueError(f"unknown preset {value!r}; expected one of {', '.join(preset_names())}")
        return value

    @model_validator(mode="after")
    def _loads(self) -> PolicySection:
        # Checked with the rest of the config, so --print-config refuses what the start would, and the
        # error names the config file (an unknown preset, a bad override, an unreadable policy file).
        try:
            self.load()
        except PolicyError as err:
            raise ValueError(str(err)) from None
        return self

    def load(self) -> Profile:
        """The profile this section names."""
        preset = None if self.file is not None else self.preset
        return load_profile(preset=preset, path=self.file, overrides=self.overrides)


class DeviceSection(_Section):
    id: str = Field(description="This terminal's device id (its MQTT identity).", examples=["hall01-w03"],
                    pattern=f"^[{IDENT_CHARS}]{{1,64}}$")
    hall_id: str = Field(description="The hall this terminal stands in.", examples=["hall01"])
    window_id: str = Field(description="The window this terminal serves.", examples=["w03"])
    hall_name: str = Field("政务服务大厅", description="The hall's name shown on the idle screen.",
                           examples=["鄂尔多斯市政务服务大厅"])
    window_name: str = Field("", description="The window's name shown on the idle screen.", examples=["3号窗口"])


class CollectorDataSection(_Section):
    dir: Path = Field(Path("/var/lib/hcp"), description="Directory for the outbox or database.",
                      examples=["/var/lib/hcp"])


class DataSection(CollectorDataSection):
    """A terminal's ``[data]``: the collector's, and the outbox's bound."""

    outbox_max_rows: int = Field(200_000, ge=100, description="Outbox size bound: past it new ratings are "
                                 "refused visibly, never dropped.", examples=[200000])


class TimingSection(_Section):
    prompt_timeout_s: float = Field(60, gt=0, description="A prompt expires unrated after this long.",
                                    examples=[60])
    response_interval_s: float = Field(1.0, ge=0, description="A star key bouncing into the next question: "
                                       "a star this soon after an accepted press, and any press this soon "
                                       "after the star that changed the screen, is ignored.", examples=[1.0])
    key_bounce_s: float = Field(0.15, ge=0, description="Reason, submit and skip keys are each debounced on "
                                "their own over this (key-bounce scale: ticking reasons quickly counts).",
                                examples=[0.15])
    reasons_timeout_s: float = Field(20, gt=0, description="The reasons screen gives up after this long.",
                                     examples=[20])
    hall_timeout_s: float = Field(20, gt=0, description="The hall question gives up after this long.",
                                  examples=[20])
    thanks_s: float = Field(3, gt=0, description="How long the thanks screen stays.", examples=[3])


class SyncSection(_Section):
    batch_size: int = Field(500, ge=1, le=1000, description="Ratings per MQTT message when draining.",
                            examples=[500])
    max_in_flight: int = Field(4, ge=1, le=64, description="Rating messages awaiting the collector's ack.",
                               examples=[4])
    resend_after_s: float = Field(30, gt=0, description="Resend a message not acked after this long.",
                                  examples=[30])
    status_interval_s: float = Field(30, gt=0, description="How often the retained status is refreshed.",
                                     examples=[30])


class FrontendSection(_Section):
    kinds: list[Literal["sim", "gpio", "serial", "touch", "clerk-serial"]] = Field(
        default_factory=lambda: ["sim"], description="Front ends to run together.",
        examples=[["touch", "clerk-serial"]])


class ClockSection(_Section):
    synced: Literal["auto", "yes", "no"] = Field(
        "auto", description="Whether the system clock is trusted: auto asks systemd-timesyncd.",
        examples=["auto"])


class AgentConfig(_Section):
    """A terminal's configuration (``/etc/hcp/agent.toml``)."""

    secrets_file: Path | None = Field(
        None, description="TOML file (mode 0600) with this config's secrets, same sections, merged over it; "
        "secrets are refused in the main file.", examples=["/etc/hcp/secrets.toml"])
    device: DeviceSection
    broker: BrokerSection = Field(default_factory=BrokerSection)
    data: DataSection = Field(default_factory=DataSection)
    timing: TimingSection = Field(default_factory=TimingSection)
    sync: SyncSection = Field(default_factory=SyncSection)
    frontend: FrontendSection = Field(default_factory=FrontendSection)
    clock: ClockSection = Field(default_factory=ClockSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    gpio: GpioSection = Field(default_factory=GpioSection)
    serial_board: SerialBoardSection = Field(default_factory=SerialBoardSection)
    clerk_link: ClerkLinkSection = Field(default_factory=ClerkLinkSection)
    display: DisplaySection = Field(default_factory=DisplaySection)
    receipt: ReceiptSection = Field(default_factory=ReceiptSection)
    voice: VoiceSection = Field(default_factory=VoiceSection)


class CollectorSection(_Section):
    id: str = Field("collector", description="The collector's name in logs, and its MQTT client id without a "
                    "client certificate (with one, the certificate's CN is the client id).",
                    examples=["collector-1"])
    database: Path | str | None = Field(
        None, description="SQLite file (default <data.dir>/collector.sqlite), or a PostgreSQL server as "
        "postgresql://user@host[:port][,host2[:port]]/dbname?target_session_attrs=read-write (docs/install.md); "
        "the password belongs in ~/.pgpass or PGPASSWORD, not here.",
        examples=["/var/lib/hcp/collector.sqlite", "postgresql://hcp@db1,db2/hcp?target_session_attrs=read-write"])

    @field_validator("database", mode="before")
    @classmethod
    def _a_file_or_server(cls, value: Any) -> Any:
        # Any other URL would otherwise become an SQLite file under a folder named "mysql:".
        if isinstance(value, str) and _URL.match(value):
            scheme = value.split("://")[0]
            if scheme not in ("postgresql", "postgres"):
                raise ValueError(f"{scheme}:// is not a supported database: give an SQLite file path or a "
                                 "postgresql:// URL")
            check_database_url(value)
            return value
        return Path(value) if isinstance(value, str) else value

    secret_file: Path | None = Field(
        None, description="File (mode 0600) with the key for rater pseudonyms; default "
        "<data.dir>/collector.key, created on first start. Several collectors on one PostgreSQL database "
        "share one key: copy the file to each.", examples=["/etc/hcp/collector.key"])

    group_commit: int = Field(256, ge=1, le=10000, description="Messages committed together at most.",
                              examples=[256])
    lifecycle_interval_s: float = Field(
        300, gt=0, description="How often the worker runs the default job.", examples=[300])
    share_group: str = Field(
        "", pattern=r"^[A-Za-z0-9_-]{0,64}$",
        description="Several collectors sharing the terminals' stream (docs/scaling.md): each subscribes to the "
        "ratings and case records as `$share/<group>/...` (MQTT 5 shared subscriptions, each message handled by one "
        "member) with a clean session and a client id of its own (its own certificate: `hcp pki service "
        "collector-2`), and to the terminals' status unshared. Empty: the single collector with a persistent "
        "session.", examples=["hall-collectors"])


class ChainSection(_Section):
    sign_interval_s: float = Field(
        60, gt=0, description="The collector signs the hash chain's head at least this often while records "
        "arrive, and at every clean shutdown (docs/reliability.md).", examples=[60])
    heads_file: Path | None = Field(
        None, description="File the collector appends every signed chain head to (JSON lines), kept outside "
        "the database; `hcp verify` checks it by default. Put it on another disk or a synced folder.",
        examples=["/var/lib/hcp/heads/chain-heads.jsonl"])


class FleetSection(_Section):
    offline_alert_s: float = Field(900, gt=0, description="Alert when a terminal has been offline this long.",
                                   examples=[900])
    stale_after_s: float = Field(120, gt=0, description="A terminal whose retained status is older than this "
                                 "counts as offline even if it last said online (keep above sync.status_interval_s).",
                                 examples=[120])
    outbox_alert_depth: int = Field(100, ge=1, description="Alert when a terminal's outbox holds this many ratings.",
                                    examples=[100])
    outbox_alert_age_s: float = Field(3600, gt=0, description="Alert when a terminal is online but its oldest "
                                      "unsent rating is older than this (the outbox is not draining).",
                                      examples=[3600])
    crl_file: Path | None = Field(None, description="The broker's CRL (Mosquitto crlfile) whose expiry hcp "
                                  "devices watches; empty: crl.pem beside broker.ca_file, when there is one.",
                                  examples=["/etc/hcp/pki/crl.pem"])
    crl_alert_days: int = Field(30, ge=1, description="Warn in hcp devices when the CRL expires within this "
                                "many days (past it Mosquitto refuses every client).", examples=[30])


class ConsoleSection(_Section):
    listen: str = Field("127.0.0.1:8090", description="HOST:PORT the console (hcp console) listens on; put a TLS "
                        "reverse proxy in front of it beyond the collector's own machine.",
                        examples=["127.0.0.1:8090"], pattern=r"^[^:\s]+:\d{1,5}$")
    secure_cookie: bool = Field(False, description="Mark the session cookie Secure (sent over HTTPS only): set "
                                "true whenever the console is reached through a TLS proxy.", examples=[True])
    session_hours: float = Field(8, gt=0, le=168, description="A login lasts this long; then the user logs in "
                                 "again.", examples=[8])
    login_limit_per_address: str = Field(
        "20/minute", description="Failed logins one client address may make, in the limits package's notation; "
        "over it the login page answers 429 until the window frees.", examples=["20/minute;100/hour"])
    login_failures_per_account: str = Field(
        "5/15 minutes", description="Failed logins of one account before it is locked until the window frees "
        "(whatever the password): the brute-force lock-out.", examples=["5/15 minutes"])
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Reverse proxies whose X-Forwarded-For names the client (for the audit "
        "log's address and the login limit); empty: trust none.", examples=[["127.0.0.1"]])

    @field_validator("login_limit_per_address", "login_failures_per_account")
    @classmethod
    def _limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            rates = parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as \"5/15 minutes\"") from None
        if any(rate.amount < 1 for rate in rates):
            raise ValueError(f"{value!r} allows no attempt at all; give at least 1 per period")
        return value


class CollectorConfig(_Section):
    """The collector's configuration (``/etc/hcp/collector.toml``)."""

    secrets_file: Path | None = Field(
        None, description="TOML file (mode 0600) with this config's secrets, same sections, merged over it; "
        "secrets are refused in the main file.", examples=["/etc/hcp/secrets.toml"])
    collector: CollectorSection = Field(default_factory=CollectorSection)
    broker: BrokerSection = Field(default_factory=BrokerSection)
    data: CollectorDataSection = Field(default_factory=CollectorDataSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    fleet: FleetSection = Field(default_factory=FleetSection)
    chain: ChainSection = Field(default_factory=ChainSection)
    receipt: ReceiptKeySection = Field(default_factory=ReceiptKeySection)
    web: WebSection = Field(default_factory=WebSection)
    console: ConsoleSection = Field(default_factory=ConsoleSection)
    notify: NotifySection = Field(default_factory=NotifySection)
    upstream: UpstreamSection = Field(default_factory=UpstreamSection)

    @property
    def database_path(self) -> Path | str:
        """The collector's database: its SQLite file (collector.database, else <data.dir>/collector.sqlite)
        or its ``postgresql://`` URL."""
        return self.collector.database or self.data.dir / "collector.sqlite"

    @property
    def key_path(self) -> Path:
        """The pseudonym key file: collector.secret_file, else <data.dir>/collector.key."""
        return self.collector.secret_file or self.data.dir / "collector.key"


C = TypeVar("C", bound=BaseModel)


def load_config(model: type[C], path: Path | None, overrides: dict[str, Any] | None = None) -> C:
    """Read ``path`` (may be None for flags only), merge ``overrides`` (nested dicts), validate."""
    data: dict[str, Any] = {}
    source = str(path) if path else "command-line flags"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text("utf-8"))
        except OSError as err:
            raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text") from None
    _merge(data, overrides or {})
    merge_secrets(model, data, source)
    try:
        config = model.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: key {key}: {problem}") from None
    protect(config)
    return config


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
