"""Per-region, versioned code tables for the provincial platform, as data files.

A table maps hcp's words (scores 1-5, channel names, rating kinds) to the codes
one province's interface expects. The shipped tables live in
``config/upstream/<region>-<version>.toml``; a deployment may point at a file
of its own. Nothing in the code knows a province by its codes.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hcp.domain import Channel, Kind
from hcp.exc import ConfigError


@dataclass(frozen=True)
class CodeTable:
    """One region's codes at one version."""

    region: str
    version: str
    satisfaction: dict[int, str]
    channels: dict[str, str]
    kinds: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.region}-{self.version}"

    def score(self, score: int) -> str:
        return self.satisfaction[score]

    def channel(self, channel: str) -> str:
        return self.channels[channel]

    def kind(self, kind: str) -> str:
        return self.kinds[kind]


def shipped_tables() -> list[str]:
    """The names (``region-version``) of the shipped code tables."""
    folder = resources.files("hcp.config") / "upstream"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_table(name: str | None = None, path: Path | None = None) -> CodeTable:
    """A code table by shipped name or from a file; ConfigError names what is missing."""
    return table_from(*load_data(name, path))


def load_data(name: str | None = None, path: Path | None = None) -> tuple[dict, str]:
    """The parsed TOML of a shipped table or a file, and how to name it in errors."""
    if path is not None:
        source, text = str(path), _read(path)
    else:
        if name not in shipped_tables():
            raise ConfigError(f"upstream.code_table: unknown table {name!r}; expected one of {shipped_tables()}")
        source = f"code table {name}"
        text = (resources.files("hcp.config") / "upstream" / f"{name}.toml").read_text("utf-8")
    try:
        return tomllib.loads(text), source
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML ({err})") from None


def _read(path: Path) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the code table ({err.strerror})") from None


def table_from(data: dict, source: str) -> CodeTable:
    """The code table part of a parsed table file."""
    for key in ("region", "version", "satisfaction", "channels", "kinds"):
        if key not in data:
            raise ConfigError(f"{source}: key {key}: missing")
    satisfaction = {int(k): str(v) for k, v in data["satisfaction"].items()}
    if sorted(satisfaction) != [1, 2, 3, 4, 5] or len(set(satisfaction.values())) != 5:
        raise ConfigError(f"{source}: key satisfaction: expected five distinct codes for the scores 1-5")
    channels = {str(k): str(v) for k, v in data["channels"].items()}
    missing = [c.value for c in Channel if c.value not in channels]
    if missing:
        raise ConfigError(f"{source}: key channels: no code for {', '.join(missing)}")
    kinds = {str(k): str(v) for k, v in data["kinds"].items()}
    if [k.value for k in Kind if k.value not in kinds]:
        raise ConfigError(f"{source}: key kinds: expected a code for each of service, hall")
    return CodeTable(str(data["region"]), str(data["version"]), satisfaction, channels, kinds)
