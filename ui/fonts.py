"""Finding and loading a font that can draw Chinese: never tofu boxes.

fontconfig's ``fc-match`` always answers with *some* font, even on a system
with no Chinese font at all, so every candidate is checked for real glyphs
before it is used.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hcp.ui.exc import FontNotFoundError

if TYPE_CHECKING:
    import pygame.freetype

log = logging.getLogger(__name__)

INSTALL_HINT = "install fonts-noto-cjk (apt-get install fonts-noto-cjk) or set display.font_file"
#: Characters every screen needs; a font missing any of them would show boxes.
PROBE = "评价满意谢"


@dataclass(frozen=True)
class FontFace:
    """A font file and the face index inside it (collections hold several faces)."""

    path: Path
    index: int = 0


def fc_match(pattern: str) -> FontFace | None:
    """The face fontconfig picks for ``pattern``, or None when fc-match is missing or fails."""
    try:
        out = subprocess.run(["fc-match", "--format", "%{file}\n%{index}", pattern],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.splitlines()
    if len(lines) < 2 or not lines[0]:
        return None
    return FontFace(Path(lines[0]), int(lines[1] or 0))


def covers(face: FontFace, text: str = PROBE) -> bool:
    """True when ``face`` has a glyph of its own for every character of ``text``."""
    import pygame.freetype

    pygame.freetype.init()
    try:
        font = pygame.freetype.Font(str(face.path), 24, font_index=face.index)
    except (OSError, pygame.error):
        return False
    # get_metrics answers None for a character the font lacks (it would draw .notdef).
    return all(metric is not None for metric in font.get_metrics(text))


def find_cjk_faces(font_file: Path | None = None, font_index: int = 0) -> tuple[FontFace, FontFace]:
    """The regular and bold faces to draw Chinese with; raise :class:`FontNotFoundError` if none can."""
    if font_file is not None:
        face = FontFace(Path(font_file), font_index)
        if not covers(face):
            raise FontNotFoundError(f"display.font_file {font_file} has no Chinese glyphs; {INSTALL_HINT}")
        return face, face
    regular = fc_match("sans-serif:lang=zh-cn")
    if regular is None or not covers(regular):
        raise FontNotFoundError(f"no font with Chinese glyphs found by fc-match; {INSTALL_HINT}")
    bold = fc_match("sans-serif:lang=zh-cn:weight=bold")
    if bold is None or not covers(bold):
        bold = regular
    log.info("CJK font %s (face %d), bold %s (face %d)", regular.path, regular.index, bold.path, bold.index)
    return regular, bold


class Fonts:
    """The two faces, opened once; text is rendered at any pixel size from them."""

    def __init__(self, regular: FontFace, bold: FontFace, scale: float = 1.0) -> None:
        import pygame.freetype

        pygame.freetype.init()
        self.scale = scale
        self._regular = pygame.freetype.Font(str(regular.path), 24, font_index=regular.index)
        self._bold = pygame.freetype.Font(str(bold.path), 24, font_index=bold.index)
        for font in (self._regular, self._bold):
            font.antialiased = True
            font.pad = False

    @classmethod
    def find(cls, font_file: Path | None = None, font_index: int = 0, scale: float = 1.0) -> Fonts:
        """Fonts from ``font_file`` or fontconfig's best Chinese sans-serif."""
        return cls(*find_cjk_faces(font_file, font_index), scale=scale)

    def face(self, bold: bool = False) -> pygame.freetype.Font:
        """The bold or regular face."""
        return self._bold if bold else self._regular

    def width(self, text: str, size: int, bold: bool = False) -> int:
        """The drawn width of ``text`` at ``size`` pixels."""
        return self.face(bold).get_rect(text, size=size).width
