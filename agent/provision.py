"""``hcp provision``: one terminal's configuration from a technician's answers or from flags.

The answers become an agent config that is validated by the schema *before*
anything is written; the file is written atomically (temp file, fsync,
rename, fsync of the folder), so a power cut during provisioning leaves the
old config or the new one. Certificates handed over by the operator are
copied next to it (keys mode 0600).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from hcp.config.schema import AgentConfig
from hcp.exc import ConfigError
from hcp.protocol import IDENT_CHARS

KINDS = ("sim", "gpio", "serial", "touch", "clerk-serial")


@dataclass(frozen=True)
class Question:
    """One thing provisioning asks: the key it fills, the prompt, a default, and a check."""

    key: str
    prompt: str
    default: str | None = None
    check: Callable[[str], Any] = str  # returns the value to store, or raises ValueError


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.replace(",", " ").split() if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"expected some of {', '.join(KINDS)}")
    return kinds


def _broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. mqtt.hall.local:8883")
    return host, int(port)


def _volume(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError("expected a number from 0 to 1")
    return value


def _pins(text: str) -> list[int]:
    pins = [int(p) for p in text.replace(",", " ").split()]
    if len(pins) != 5:
        raise ValueError("expected five BCM pin numbers, 1 star first")
    return pins


def _existing(text: str) -> str:
    if not Path(text).is_file():
        raise ValueError(f"no such file: {text}")
    return text


def _optional_file(text: str) -> str:
    return _existing(text) if text else ""


def _receipt_url(text: str) -> str:
    for name in ("{case_id}", "{token}"):
        if name not in text:
            raise ValueError(f"expected a URL containing {name}, e.g. https://hcp.example.gov.cn/r/{{case_id}}?t={{token}}")
    return text


def _ident(text: str) -> str:
    if not re.fullmatch(f"[{IDENT_CHARS}]{{1,64}}", text):
        raise ValueError("expected 1-64 of A-Z a-z 0-9 . _ : -")
    return text


QUESTIONS = [
    Question("device_id", "Device id (as on its certificate)", None, _ident),
    Question("hall_id", "Hall id", None, _ident),
    Question("window_id", "Window id", None, _ident),
    Question("hall_name", "Hall name shown on screen", "政务服务大厅"),
    Question("window_name", "Window name shown on screen", ""),
    Question("frontends", "Front ends (sim gpio serial touch clerk-serial)", "touch", _kinds),
    Question("star_pins", "GPIO star key pins, 1 star first", "5 6 13 19 26", _pins),
    Question("serial_port", "Serial port of the button board", "/dev/ttyACM0"),
    Question("clerk_port", "Serial port of the clerk link", "/dev/ttyUSB0"),
    Question("broker", "Broker HOST:PORT", "mqtt.hall.local:8883", _broker),
    Question("ca_file", "Device CA certificate (ca.crt)", None, _existing),
    Question("cert_file", "This terminal's certificate", None, _existing),
    Question("key_file", "This terminal's private key", None, _existing),
    Question("policy", "Policy preset (henan ordos qingdao-xihaian siping ulanqab)", "henan", _ident),
    Question("display_size", "Display size (800x480 or 1024x600)", "800x480"),
    Question("orientation", "Orientation (landscape or portrait)", "landscape"),
    Question("receipt_key_file", "Receipt QR key file, shared with the rating page (empty: no QR)", "",
             _optional_file),
    Question("receipt_url", "Receipt QR URL of the rating page", "https://hcp.example.gov.cn/r/{case_id}?t={token}",
             _receipt_url),
    Question("volume", "Voice volume 0-1", "0.8", _volume),
    Question("data_dir", "Data directory (a writable partition)", "/var/lib/hcp"),
]
#: Questions only asked when their front end is chosen.
_ONLY_FOR = {"star_pins": "gpio", "serial_port": "serial", "clerk_port": "clerk-serial",
             "display_size": "touch", "orientation": "touch", "receipt_key_file": "touch", "receipt_url": "touch"}
#: Questions only asked when another answer is not empty.
_ONLY_WITH = {"receipt_url": "receipt_key_file"}


def relevant(question: Question, answers: dict[str, Any]) -> bool:
    kind = _ONLY_FOR.get(question.key)
    needed = _ONLY_WITH.get(question.key)
    return (kind is None or kind in answers.get("frontends", [])) and (needed is None or bool(answers.get(needed)))


def interview(given: dict[str, Any], ask: Callable[[str], str], say: Callable[[str], None]) -> dict[str, Any]:
    """Ask for every value not ``given``; an empty answer takes the default; a bad one is asked again."""
    answers = {k: v for k, v in given.items() if v is not None}
    for q in QUESTIONS:
        if q.key in answers or not relevant(q, answers):
            continue
        while True:
            shown = f" [{q.default}]" if q.default is not None else ""
            text = ask(f"{q.prompt}{shown}: ").strip()
            if not text and q.default is not None:
                text = q.default
            try:
                answers[q.key] = q.check(text)
                break
            except ValueError as err:
                say(f"  {err}")
    return answers


def complete(given: dict[str, Any]) -> dict[str, Any]:
    """Flags only: defaults for the rest, ConfigError naming the first required flag missing or invalid."""
    answers = {k: v for k, v in given.items() if v is not None}
    for q in QUESTIONS:
        if q.key in answers or not relevant(q, answers):
            continue
        if q.default is None:
            raise ConfigError(f"--{q.key.replace('_', '-')} is required with --non-interactive")
        try:
            answers[q.key] = q.check(q.default)
        except ValueError as err:
            raise ConfigError(f"--{q.key.replace('_', '-')}: {err}") from None
    return answers


def config_data(a: dict[str, Any], pki_dir: Path) -> dict[str, Any]:
    """The agent config (as TOML data) the answers describe; certificates as installed in ``pki_dir``."""
    host, port = a["broker"] if isinstance(a["broker"], tuple) else _broker(a["broker"])
    device = a["device_id"]
    data: dict[str, Any] = {
        "device": {"id": device, "hall_id": a["hall_id"], "window_id": a["window_id"],
                   "hall_name": a["hall_name"], "window_name": a["window_name"]},
        "broker": {"host": host, "port": port, "ca_file": str(pki_dir / "ca.crt"),
                   "cert_file": str(pki_dir / f"{device}.crt"), "key_file": str(pki_dir / f"{device}.key")},
        "data": {"dir": str(a["data_dir"])},
        "frontend": {"kinds": a["frontends"]},
        "policy": {"preset": a["policy"]},
        "voice": {"volume": a["volume"]},
    }
    if "star_pins" in a:
        data["gpio"] = {"star_pins": a["star_pins"]}
    if "serial_port" in a:
        data["serial_board"] = {"port": a["serial_port"]}
    if "clerk_port" in a:
        data["clerk_link"] = {"port": a["clerk_port"]}
    if "display_size" in a:
        data["display"] = {"size": a["display_size"], "orientation": a["orientation"]}
    if a.get("receipt_key_file"):
        data["receipt"] = {"key_file": str(pki_dir / "receipt.key"), "url_template": a["receipt_url"]}
    elif "touch" in a["frontends"]:
        data["receipt"] = {"enabled": False}  # said, not silent: no key, so no QR on the screen
    return data


def validate(data: dict[str, Any]) -> AgentConfig:
    from pydantic import ValidationError

    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise ConfigError(f"key {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    config.policy.load()  # a preset that does not exist fails here, before anything is written
    return config


def install_certificates(answers: dict[str, Any], pki_dir: Path) -> None:
    """Copy CA, certificate and key into ``pki_dir``; the key ends mode 0600."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    device = answers["device_id"]
    for source, name in ((answers["ca_file"], "ca.crt"), (answers["cert_file"], f"{device}.crt")):
        if Path(source).resolve() != (pki_dir / name).resolve():
            shutil.copyfile(source, pki_dir / name)
    key = pki_dir / f"{device}.key"
    if Path(answers["key_file"]).resolve() != key.resolve():
        write_atomic(key, Path(answers["key_file"]).read_bytes(), mode=0o600)
    os.chmod(key, 0o600)
    if answers.get("receipt_key_file"):
        receipt = pki_dir / "receipt.key"
        if Path(answers["receipt_key_file"]).resolve() != receipt.resolve():
            write_atomic(receipt, Path(answers["receipt_key_file"]).read_bytes(), mode=0o600)
        os.chmod(receipt, 0o600)


def write_atomic(path: Path, content: bytes, mode: int = 0o644) -> None:
    """Temp file in the same folder, fsync, rename over ``path``, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_config(path: Path, data: dict[str, Any]) -> None:
    header = "# Written by hcp provision; every key is described in docs/configuration.md.\n"
    write_atomic(path, (header + tomli_w.dumps(data)).encode("utf-8"))
