"""Config sections of the touchscreen front end: ``[display]``, ``[receipt]`` and ``[voice]``.

Same style as :mod:`hcp.config.schema`: unknown keys are errors, every key has
a description and an example. The lead adds them to ``AgentConfig`` as
``display``, ``receipt`` and ``voice``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from hcp.exc import ConfigError

#: Panel sizes the layouts are designed and tested for (native landscape pixels).
PANEL_SIZES = {"800x480": (800, 480), "1024x600": (1024, 600)}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DisplaySection(_Section):
    size: Literal["800x480", "1024x600"] = Field(
        "800x480", description="The panel's native resolution (landscape).", examples=["1024x600"])
    orientation: Literal["landscape", "portrait"] = Field(
        "landscape", description="How the panel is mounted; portrait lays out screens tall.",
        examples=["portrait"])
    rotate: Literal[0, 90, 180, 270] = Field(
        0, description="Degrees (counter-clockwise) to rotate the picture in software, for a panel whose "
        "OS output is not already rotated (portrait on a landscape panel: 90 or 270).", examples=[90])
    diagonal_in: float = Field(
        7.0, gt=3, le=32, description="The panel's diagonal in inches, to turn millimetres into pixels.",
        examples=[7.0])
    min_touch_mm: float = Field(
        15.0, ge=9, le=40, description="The smallest side of any touch target in millimetres "
        "(15 mm suits older citizens).", examples=[15.0])
    large_text: bool = Field(
        False, description="适老化 mode: larger text everywhere (and larger touch targets).", examples=[True])
    fullscreen: bool = Field(
        True, description="Open a borderless full-screen window (off for a desktop demo).", examples=[False])
    hide_cursor: bool = Field(
        True, description="Hide the mouse pointer (a touch panel has none).", examples=[True])
    font_file: Path | None = Field(
        None, description="A font file with Chinese glyphs; empty: ask fontconfig (fc-match) for one.",
        examples=["/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"])
    font_index: int = Field(
        0, ge=0, description="Face index inside font_file when it is a collection (.ttc).", examples=[2])

    @property
    def logical_size(self) -> tuple[int, int]:
        """The size screens are laid out at: the panel size, turned tall in portrait."""
        width, height = PANEL_SIZES[self.size]
        return (min(width, height), max(width, height)) if self.orientation == "portrait" else (width, height)

    @property
    def px_per_mm(self) -> float:
        """Pixel density from the resolution and the diagonal (square pixels)."""
        width, height = PANEL_SIZES[self.size]
        return (width ** 2 + height ** 2) ** 0.5 / (self.diagonal_in * 25.4)

    @property
    def min_touch_px(self) -> int:
        """The smallest side of a touch target in pixels (larger in large-text mode)."""
        scale = 1.15 if self.large_text else 1.0
        return round(self.min_touch_mm * self.px_per_mm * scale)


class ReceiptKeySection(_Section):
    """The receipt key and URL: what the collector's rating page and reminders need (``[receipt]``)."""

    url_template: str = Field(
        "https://hcp.example.gov.cn/r/{case_id}?t={token}",
        description="The QR's URL; {case_id} (URL-quoted) and {token} are filled in.",
        examples=["https://hcp.example.gov.cn/r/{case_id}?t={token}"])
    key_file: Path | None = Field(
        None, description="File (mode 0600) holding the HMAC key shared with the rating page; "
        "its text, stripped of surrounding whitespace, is the key.", examples=["/etc/hcp/receipt.key"])
    key: SecretStr | None = Field(
        None, description="The HMAC key inline (prefer key_file); never shown or logged.",
        examples=["change-me-32-characters-or-longer"])
    valid_s: int = Field(
        7 * 86400, ge=60, le=90 * 86400, description="How long a receipt token stays valid, in seconds.",
        examples=[604800])

    @model_validator(mode="after")
    def _template_fields(self) -> ReceiptSection:
        for name in ("{case_id}", "{token}"):
            if name not in self.url_template:
                raise ValueError(f"url_template must contain {name}")
        if self.key_file is not None and self.key is not None:
            raise ValueError("give key_file or key, not both")
        return self

    def load_key(self) -> bytes | None:
        """The HMAC key as bytes, or None when no key is configured."""
        if self.key is not None:
            text = self.key.get_secret_value()
        elif self.key_file is not None:
            try:
                text = self.key_file.read_text("utf-8")
            except OSError as err:
                raise ConfigError(f"receipt.key_file: cannot read {self.key_file} ({err.strerror})") from None
        else:
            return None
        key = text.strip().encode("utf-8")
        if len(key) < 16:
            raise ConfigError("receipt.key: too short; expected at least 16 bytes (32 random characters is good)")
        return key


class ReceiptSection(ReceiptKeySection):
    """A terminal's ``[receipt]``: the key and URL, and whether the screen shows the QR at all."""

    enabled: bool = Field(
        True, description="Show the receipt QR on the thanks and expired screens.", examples=[True])

    def load_key(self) -> bytes | None:
        """The HMAC key as bytes, or None when receipts are off or no key is configured."""
        return super().load_key() if self.enabled else None


class VoiceSection(_Section):
    enabled: bool = Field(True, description="Speak the prompts (请您对本次服务进行评价 …).", examples=[True])
    volume: float = Field(0.8, ge=0, le=1, description="Playback volume, 0 (silent) to 1.", examples=[0.6])
    sounds_dir: Path | None = Field(
        None, description="Folder of prompt recordings named like the shipped ones (please_rate.wav …); "
        "empty: the shipped espeak-ng recordings.", examples=["/etc/hcp/sounds"])
    beep: bool = Field(True, description="Beep when a star or button is touched.", examples=[True])
