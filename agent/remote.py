"""Remote settings: what the operator pushes on ``{prefix}/dev/{id}/config`` (retained, versioned).

The terminal validates a push completely before it changes anything: the
message must decode (protocol v1, ranges), its version must be newer than the
one running, and its policy preset must load. A good push is saved to
``<data.dir>/settings.json`` (atomically) and applied; a bad one is logged and
the last good settings stay, from memory and, after a restart, from that file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hcp.config.policy import Profile, load_profile
from hcp.config.schema import AgentConfig
from hcp.exc import ConfigError, HcpError, ProtocolError
from hcp.protocol import SettingsMessage, decode, encode

log = logging.getLogger("hcp.agent.remote")
FILE_NAME = "settings.json"


class SettingsRejected(HcpError, ValueError):
    """A pushed settings message the terminal will not run."""


@dataclass(frozen=True)
class Applied:
    """A config with remote settings applied, and the profile they select."""

    config: AgentConfig
    profile: Profile | None  # None: the config's own policy


def check(payload: bytes, running: int) -> SettingsMessage:
    """The settings in ``payload`` if they are newer than ``running`` and valid; else SettingsRejected."""
    try:
        message = decode(SettingsMessage, payload)
    except ProtocolError as err:
        raise SettingsRejected(f"malformed settings: {err}") from None
    if message.version <= running:
        raise SettingsRejected(f"settings version {message.version} is not newer than {running}")
    if message.policy_preset is not None:
        try:
            load_profile(preset=message.policy_preset)
        except ConfigError as err:
            raise SettingsRejected(f"settings version {message.version}: {err}") from None
    return message


def apply(config: AgentConfig, settings: SettingsMessage | None) -> Applied:
    """``config`` with the pushed values in place (absent values keep the file's)."""
    if settings is None:
        return Applied(config, None)
    timing = {k: v for k, v in (("prompt_timeout_s", settings.prompt_timeout_s),
                                ("response_interval_s", settings.response_interval_s)) if v is not None}
    update = {"timing": config.timing.model_copy(update=timing)}
    if settings.volume is not None:
        update["voice"] = config.voice.model_copy(update={"volume": settings.volume})
    profile = load_profile(preset=settings.policy_preset) if settings.policy_preset else None
    return Applied(config.model_copy(update=update), profile)


def load_last_good(data_dir: Path) -> SettingsMessage | None:
    """The settings saved by the last good push, or None (none yet, or the file is damaged)."""
    path = Path(data_dir) / FILE_NAME
    try:
        return check(path.read_bytes(), 0)
    except FileNotFoundError:
        return None
    except (OSError, SettingsRejected) as err:
        log.error("saved settings %s ignored: %s", path, err)
        return None


def save(data_dir: Path, settings: SettingsMessage) -> None:
    """Write the settings atomically: a power cut leaves the old file or the new one."""
    path = Path(data_dir) / FILE_NAME
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        out.write(encode(settings))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def describe(settings: SettingsMessage) -> str:
    return json.dumps(settings.model_dump(exclude_none=True, exclude={"v"}), ensure_ascii=False)
