"""Screen geometry: margins, text sizes, and the rects of headers, star keys, toggles and buttons.

Pure arithmetic on :class:`pygame.Rect` (which needs no display), so layouts
can be checked without drawing. Sizes derive from the short side of the
screen, so 800×480 and 1024×600, landscape or portrait, share one design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pygame import Rect


@dataclass(frozen=True)
class TextSizes:
    """Pixel sizes of the text styles."""

    title: int
    body: int
    label: int
    small: int
    huge: int


class Layout:
    """Where things go on a ``size`` screen whose touch targets are at least ``min_touch`` px."""

    def __init__(self, size: tuple[int, int], min_touch: int, large_text: bool = False) -> None:
        self.width, self.height = size
        self.min_touch = min_touch
        self.large_text = large_text
        self.portrait = self.height > self.width
        short = min(size)
        self.unit = short / 480  # 1.0 on the 7-inch 800×480 panel
        self.margin = round(16 * self.unit)
        self.gap = round(12 * self.unit)
        text = 1.25 if large_text else 1.0
        self.text = TextSizes(title=round(34 * self.unit * text), body=round(30 * self.unit * text),
                              label=round(26 * self.unit * text), small=round(19 * self.unit * text),
                              huge=round(64 * self.unit * text))
        self.header_h = max(round(self.text.title * 2.3), round(76 * self.unit))

    @property
    def screen(self) -> Rect:
        return Rect(0, 0, self.width, self.height)

    def header(self) -> Rect:
        """The coloured band at the top that names the screen."""
        return Rect(0, 0, self.width, self.header_h)

    def below_header(self, subtitle: bool = True) -> tuple[Rect | None, Rect]:
        """The subtitle line under the header (if wanted) and the body under that."""
        top = self.header_h + self.gap
        sub = None
        if subtitle:
            sub = Rect(self.margin, top, self.width - 2 * self.margin, round(self.text.body * 1.7))
            top = sub.bottom + self.gap
        return sub, Rect(self.margin, top, self.width - 2 * self.margin, self.height - self.margin - top)

    def footer(self, body: Rect) -> tuple[Rect, Rect]:
        """Split ``body`` into what stays above a row of buttons and that row."""
        row_h = max(self.min_touch, round(self.text.body * 2.4))
        row = Rect(body.x, body.bottom - row_h, body.width, row_h)
        return Rect(body.x, body.y, body.width, body.height - row_h - self.gap), row

    def row(self, area: Rect, count: int) -> list[Rect]:
        """``count`` equal rects side by side filling ``area``."""
        width = (area.width - (count - 1) * self.gap) / count
        return [Rect(round(area.x + i * (width + self.gap)), area.y, math.floor(width), area.height)
                for i in range(count)]

    def column(self, area: Rect, count: int) -> list[Rect]:
        """``count`` equal rects stacked top to bottom filling ``area``."""
        height = (area.height - (count - 1) * self.gap) / count
        return [Rect(area.x, round(area.y + i * (height + self.gap)), area.width, math.floor(height))
                for i in range(count)]

    def star_keys(self, area: Rect) -> list[Rect]:
        """Five star keys, 非常满意 first: a row in landscape, a column in portrait."""
        return self.column(area, 5) if self.portrait else self.row(area, 5)

    def grid(self, area: Rect, count: int) -> list[Rect]:
        """Rects for ``count`` toggles: the fewest columns whose rows still fit touch-sized."""
        if count == 0:
            return []
        for cols in range(1 if self.portrait else 2, 6):
            rows = math.ceil(count / cols)
            height = (area.height - (rows - 1) * self.gap) / rows
            if height >= self.min_touch:
                break
        height = min(height, self.min_touch * 1.4)
        # Centre the block vertically: a few reasons should not hug the header.
        top = area.y + max(0, (area.height - rows * height - (rows - 1) * self.gap) / 2)
        cells = []
        for row in range(rows):
            line = Rect(area.x, round(top + row * (height + self.gap)), area.width, math.floor(height))
            cells.extend(self.row(line, cols))
        return cells[:count]

    def buttons(self, row: Rect, count: int) -> list[Rect]:
        """``count`` action buttons centred in ``row``, no wider than needed for a good target."""
        width = min((row.width - (count - 1) * self.gap) // count, max(self.min_touch * 3, row.width // 3))
        total = count * width + (count - 1) * self.gap
        start = row.centerx - total // 2
        return [Rect(start + i * (width + self.gap), row.y, width, row.height) for i in range(count)]

    def receipt(self, body: Rect) -> tuple[Rect, Rect]:
        """Split ``body`` into a text area and a square for the QR (right in landscape, below in portrait)."""
        if self.portrait:
            side = min(body.width, round(body.height * 0.55))
            qr = Rect(body.centerx - side // 2, body.bottom - side, side, side)
            return Rect(body.x, body.y, body.width, body.height - side - self.gap), qr
        side = min(body.height, round(body.width * 0.45))
        qr = Rect(body.right - side, body.centery - side // 2, side, side)
        return Rect(body.x, body.y, body.width - side - self.gap * 2, body.height), qr


def to_logical(pos: tuple[int, int], rotate: int, logical: tuple[int, int]) -> tuple[int, int]:
    """Map a touch on the window to the logical (unrotated) picture drawn rotated ``rotate``° counter-clockwise."""
    x, y = pos
    width, height = logical
    if rotate == 90:
        return width - 1 - y, x
    if rotate == 180:
        return width - 1 - x, height - 1 - y
    if rotate == 270:
        return y, height - 1 - x
    return x, y
