"""Secrets: kept out of the main config, in a file of mode 0600, and out of every log line.

A config names its secrets file with the top-level key ``secrets_file``; that
file is TOML with the same sections (``[receipt] key = "…"``) and is merged
over the main file. A secret written into the main file is an error, and so
is a secrets or key file that the group or others may read. Every secret value
loaded is registered with :func:`hcp.logs.register_secret`, so no log line and
no ``--print-config`` output shows it.
"""

from __future__ import annotations

import stat
import tomllib
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, SecretStr

from hcp.exc import ConfigError
from hcp.logs import redact, register_secret

SECRETS_KEY = "secrets_file"


def check_private(path: Path, what: str) -> None:
    """ConfigError unless ``path`` is readable by its owner only (mode 0600 or 0400)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError as err:
        raise ConfigError(f"{what}: cannot read {path} ({err.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what}: {path} is readable by others (mode {mode & 0o777:o}); run chmod 600 {path}")


def secret_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The key paths of every SecretStr field in ``model``'s tree."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
        if SecretStr in args:
            yield (*prefix, name)
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from secret_fields(arg, (*prefix, name))


def merge_secrets(model: type[BaseModel], data: dict[str, Any], source: str) -> None:
    """Refuse secrets in the main file, then merge the secrets file (if named) into ``data``."""
    for path in secret_fields(model):
        if _get(data, path) is not None:
            raise ConfigError(f"{source}: key {'.'.join(path)}: a secret; put it in the file named by "
                              f"{SECRETS_KEY} (mode 0600), not in the main config")
    secrets_path = data.get(SECRETS_KEY)
    if not secrets_path:
        return
    secrets_path = Path(secrets_path)
    check_private(secrets_path, SECRETS_KEY)
    try:
        secrets = tomllib.loads(secrets_path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{secrets_path}: not a readable TOML secrets file ({err})") from None
    allowed = set(secret_fields(model))
    for path in _leaves(secrets):
        if path not in allowed:
            raise ConfigError(f"{secrets_path}: key {'.'.join(path)}: not a secret key; expected one of "
                              f"{', '.join('.'.join(p) for p in sorted(allowed))}")
        _set(data, path, _get(secrets, path))


def protect(config: BaseModel) -> None:
    """Register every secret of a validated config for redaction, and check key files' modes."""
    for path in secret_fields(type(config)):
        value = _get_attr(config, path)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
    for path in _key_files(config):
        file = _get_attr(config, path)
        if file is not None and Path(file).exists():
            check_private(Path(file), ".".join(path))
            if path[0] in ("receipt", "collector"):  # keys used as text; a PEM key never reaches a log
                register_secret(Path(file).read_bytes())


def _key_files(config: BaseModel) -> list[tuple[str, ...]]:
    candidates = [("receipt", "key_file"), ("broker", "key_file"), ("collector", "secret_file")]
    return [p for p in candidates if _get_attr(config, p, missing=True) is not True]


def printable(config: BaseModel) -> str:
    """The effective config as TOML, secrets shown as ``**********`` and any stray secret text redacted."""
    data = config.model_dump(mode="json", exclude_none=True)
    return redact(tomli_w.dumps(data))


def _leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


def _get_attr(obj: Any, path: tuple[str, ...], missing: Any = None) -> Any:
    for key in path:
        if not hasattr(obj, key):
            return missing
        obj = getattr(obj, key)
    return obj
