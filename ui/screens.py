"""What each screen shows, as a list of widgets, and drawing them onto a surface.

A screen is built as plain frozen widgets from a :class:`ViewState`; drawing
them returns a :class:`Frame` that says which texts went where and which rects
answer touches. Comparing the widget lists of two states tells which regions
changed: a toggled reason or a lit star redraws just that key.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import pygame
import pygame.gfxdraw

from hcp.agent.events import (
    Event,
    PromptSpec,
    ReasonsDone,
    ReasonToggled,
    Screen,
    SkipPressed,
    StarPressed,
    StatusLight,
    is_last_page,
    reason_page,
)
from hcp.domain import Level
from hcp.ui.fonts import Fonts
from hcp.ui.layout import Layout
from hcp.ui.receipt import qr_matrix

log = logging.getLogger(__name__)

#: The technician's screen is the front end's own, not one the state machine asks for.
TECHNICIAN = "technician"

Color = tuple[int, int, int]
BACKGROUND: Color = (244, 246, 250)
HEADER: Color = (23, 78, 150)        # 政务蓝
ON_HEADER: Color = (255, 255, 255)
INK: Color = (33, 37, 41)
MUTED: Color = (96, 104, 112)
KEY: Color = (255, 255, 255)
KEY_EDGE: Color = (190, 198, 208)
LIT: Color = (255, 236, 179)
STAR: Color = (255, 179, 0)
STAR_EMPTY: Color = (214, 219, 225)
SELECTED: Color = (23, 78, 150)
PRIMARY: Color = (23, 78, 150)
GOOD: Color = (27, 128, 62)
ALERT: Color = (198, 40, 40)
#: How a star key is named on the reasons screen: the numbers on a panel's keys, circled.
KEY_MARKS = {1: "①", 2: "②", 3: "③", 4: "④", 5: "⑤"}
LIGHTS: dict[str, Color] = {StatusLight.IDLE: (46, 160, 67), StatusLight.PROMPTED: (23, 78, 150),
                            StatusLight.OFFLINE: (245, 159, 0), StatusLight.FAULT: (198, 40, 40)}


@dataclass(frozen=True)
class LocalAction:
    """A touch the front end handles itself (technician screen), never posted to the agent."""

    name: str


@dataclass(frozen=True)
class Clerk:
    """The clerk at the window, from the clerk link."""

    name: str
    employee_no: str = ""
    photo: Path | None = None


@dataclass(frozen=True)
class TechInfo:
    """What the technician screen lists."""

    device_id: str = ""
    version: str = ""
    link: str = "unknown"
    outbox_depth: int | None = None


@dataclass(frozen=True)
class ViewState:
    """Everything one screen depends on; equal states draw identical pictures."""

    screen: str = Screen.IDLE
    prompt: PromptSpec | None = None
    score: int | None = None
    reasons: tuple[str, ...] = ()
    selected: tuple[str, ...] = ()
    page: int = 0
    star_keys: bool = False
    message: str = ""
    lit: int | None = None
    receipt_url: str | None = None
    hall_name: str = ""
    window_name: str = ""
    clerk: Clerk | None = None
    light: str = StatusLight.IDLE
    detail: str = ""
    tech: TechInfo = field(default_factory=TechInfo)


@dataclass(frozen=True)
class TextItem:
    """A run of text as drawn: what and where."""

    text: str
    rect: pygame.Rect


@dataclass
class Frame:
    """The outcome of a draw: texts drawn, touch targets, star centres, the QR's rect, changed regions."""

    texts: list[TextItem] = field(default_factory=list)
    hits: list[tuple[pygame.Rect, Event | LocalAction]] = field(default_factory=list)
    stars: dict[int, tuple[int, int]] = field(default_factory=dict)
    qr: pygame.Rect | None = None
    dirty: list[pygame.Rect] = field(default_factory=list)

    def hit(self, pos: tuple[int, int]) -> Event | LocalAction | None:
        """What a touch at ``pos`` means, if anything."""
        for rect, target in self.hits:
            if rect.collidepoint(pos):
                return target
        return None

    def text_rect(self, text: str) -> pygame.Rect | None:
        """Where ``text`` was drawn (the first run equal to it)."""
        return next((item.rect for item in self.texts if item.text == text), None)


# ---- drawing primitives -----------------------------------------------------------

class Canvas:
    """A surface with fonts and caches for photos and QR codes."""

    def __init__(self, surface: pygame.Surface, fonts: Fonts, layout: Layout) -> None:
        self.surface = surface
        self.fonts = fonts
        self.layout = layout
        self._photos: dict[tuple[Path, tuple[int, int]], pygame.Surface | None] = {}
        self._qr: dict[str, list[list[bool]]] = {}

    def text(self, text: str, rect: pygame.Rect, size: int, color: Color, *, bold: bool = False,
             align: str = "center", max_lines: int = 2) -> list[TextItem]:
        """Draw ``text`` inside ``rect``: shrunk a little, then wrapped, then cut with … to fit."""
        size, lines = self._fit(text, rect, size, bold, max_lines)
        font = self.fonts.face(bold)
        line_h = round(size * 1.25)
        top = rect.centery - (line_h * len(lines)) // 2
        items = []
        for i, line in enumerate(lines):
            glyphs, bounds = font.render(line, color, size=size)
            slot = pygame.Rect(rect.x, top + i * line_h, rect.width, line_h)
            bounds.center = slot.center
            if align == "left":
                bounds.left = rect.left
            self.surface.blit(glyphs, bounds)
            items.append(TextItem(line, bounds.copy()))
        return items

    def _fit(self, text: str, rect: pygame.Rect, size: int, bold: bool, max_lines: int) -> tuple[int, list[str]]:
        floor = max(12, round(size * 0.72))
        for trial in range(size, floor - 1, -2):
            if self.fonts.width(text, trial, bold) <= rect.width and trial * 1.25 <= rect.height:
                return trial, [text]
        lines_fit = max(1, min(max_lines, int(rect.height // (floor * 1.25))))
        return floor, self._wrap(text, rect.width, floor, bold, lines_fit)

    def _wrap(self, text: str, width: int, size: int, bold: bool, max_lines: int) -> list[str]:
        # Chinese breaks between any two characters, so wrap by character.
        lines, line = [], ""
        for char in text:
            if self.fonts.width(line + char, size, bold) > width and line:
                lines.append(line)
                line = char.lstrip()
            else:
                line += char
        lines.append(line)
        if len(lines) > max_lines:
            last = lines[max_lines - 1]
            while last and self.fonts.width(last + "…", size, bold) > width:
                last = last[:-1]
            lines = [*lines[:max_lines - 1], last + "…"]
        return lines

    def rounded(self, rect: pygame.Rect, fill: Color, edge: Color | None = None, width: int = 2) -> None:
        radius = round(12 * self.layout.unit)
        pygame.draw.rect(self.surface, fill, rect, border_radius=radius)
        if edge is not None:
            pygame.draw.rect(self.surface, edge, rect, width=width, border_radius=radius)

    def star(self, center: tuple[int, int], radius: float, color: Color) -> None:
        """A filled five-pointed star, point up, anti-aliased."""
        cx, cy = center
        points = []
        for i in range(10):
            r = radius if i % 2 == 0 else radius * 0.42
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((round(cx + r * math.cos(angle)), round(cy + r * math.sin(angle))))
        pygame.gfxdraw.aapolygon(self.surface, points, color)
        pygame.gfxdraw.filled_polygon(self.surface, points, color)

    def photo(self, path: Path, box: pygame.Rect) -> pygame.Surface | None:
        """The clerk's photo scaled to fit ``box``, cached; None (logged once) when it cannot be read."""
        key = (path, box.size)
        if key not in self._photos:
            try:
                image = pygame.image.load(str(path))
                scale = min(box.width / image.get_width(), box.height / image.get_height())
                size = (round(image.get_width() * scale), round(image.get_height() * scale))
                self._photos[key] = pygame.transform.smoothscale(image.convert_alpha(), size) \
                    if pygame.display.get_surface() else pygame.transform.smoothscale(image, size)
            except (OSError, pygame.error) as err:
                log.warning("clerk photo %s unreadable: %s", path, err)
                self._photos[key] = None
        return self._photos[key]

    def qr_modules(self, url: str) -> list[list[bool]]:
        if url not in self._qr:
            self._qr = {url: qr_matrix(url)}  # one receipt at a time: keep only the latest
        return self._qr[url]


# ---- widgets ----------------------------------------------------------------------

@dataclass(frozen=True)
class Widget:
    """Something drawn in ``rect``; ``opaque`` widgets repaint all of it, so they can be redrawn alone."""

    rect: pygame.Rect
    opaque: ClassVar[bool] = False

    @property
    def hit(self) -> Event | LocalAction | None:
        return None

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Fill(Widget):
    color: Color = BACKGROUND
    opaque: ClassVar[bool] = True

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        canvas.surface.fill(self.color, self.rect)


@dataclass(frozen=True)
class Text(Widget):
    text: str = ""
    size: int = 24
    color: Color = INK
    bold: bool = False
    align: str = "center"
    max_lines: int = 2

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        frame.texts.extend(canvas.text(self.text, self.rect, self.size, self.color, bold=self.bold,
                                       align=self.align, max_lines=self.max_lines))


@dataclass(frozen=True)
class StarKey(Widget):
    """A star key: one big star, the level as a row of small stars, and its label."""

    score: int = 5
    size: int = 26
    lit: bool = False
    opaque: ClassVar[bool] = True

    @property
    def hit(self) -> Event:
        return StarPressed(self.score)

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        canvas.rounded(self.rect, LIT if self.lit else KEY, STAR if self.lit else KEY_EDGE, 4 if self.lit else 2)
        wide = self.rect.width > self.rect.height * 1.6
        if wide:
            self._draw_wide(canvas, frame)
        else:
            self._draw_tall(canvas, frame)

    def _draw_tall(self, canvas: Canvas, frame: Frame) -> None:
        # Bottom up: label, the row of small stars, then the big star in what is left.
        r, pad = self.rect, round(6 * canvas.layout.unit)
        label = pygame.Rect(r.x + 4, r.bottom - pad - round(self.size * 1.4), r.width - 8, round(self.size * 1.4))
        small = min(r.width * 0.055, r.height * 0.04)
        row_y = round(label.top - pad - small)
        top, bottom = r.y + pad, row_y - small - pad
        radius = min(r.width * 0.36, (bottom - top) / 1.9)
        center = (r.centerx, round(top + (bottom - top) / 2 + radius * 0.08))
        canvas.star(center, radius, STAR)
        frame.stars[self.score] = center
        self._small_stars(canvas, r.centerx, row_y, small)
        frame.texts.extend(canvas.text(Level(self.score).label, label, self.size, INK, bold=True, max_lines=1))

    def _draw_wide(self, canvas: Canvas, frame: Frame) -> None:
        # Left to right: big star, label, the row of small stars against the right edge.
        r = self.rect
        radius = r.height * 0.36
        center = (round(r.x + r.height * 0.6), r.centery)
        canvas.star(center, radius, STAR)
        frame.stars[self.score] = center
        small = r.height * 0.08
        row_x = round(r.right - r.height * 0.2 - 5.6 * small)
        left = round(r.x + r.height * 1.15)
        label = pygame.Rect(left, r.y, round(row_x - 5.8 * small - left), r.height)
        frame.texts.extend(canvas.text(Level(self.score).label, label, self.size, INK, bold=True,
                                       align="left", max_lines=1))
        self._small_stars(canvas, row_x, r.centery, small)

    def _small_stars(self, canvas: Canvas, cx: int, cy: int, radius: float) -> None:
        step = radius * 2.3
        for i in range(5):
            x = round(cx + (i - 2) * step)
            canvas.star((x, cy), radius, STAR if i < self.score else STAR_EMPTY)


@dataclass(frozen=True)
class Toggle(Widget):
    """A reason that can be selected or not; selected ones are filled and ticked."""

    reason: str = ""
    size: int = 26
    selected: bool = False
    key: int | None = None
    opaque: ClassVar[bool] = True

    @property
    def hit(self) -> Event:
        return ReasonToggled(self.reason)

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        canvas.surface.fill(BACKGROUND, self.rect)
        canvas.rounded(self.rect, SELECTED if self.selected else KEY, SELECTED if self.selected else KEY_EDGE)
        box = self.rect.inflate(-round(self.rect.height * 0.5), -8)
        text = (KEY_MARKS[self.key] if self.key else "") + ("✓ " if self.selected else "") + self.reason
        frame.texts.extend(canvas.text(text, box, self.size, ON_HEADER if self.selected else INK, bold=True))


@dataclass(frozen=True)
class Button(Widget):
    text: str = ""
    size: int = 26
    primary: bool = False
    target: Event | LocalAction | None = None
    opaque: ClassVar[bool] = True

    @property
    def hit(self) -> Event | LocalAction | None:
        return self.target

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        canvas.surface.fill(BACKGROUND, self.rect)
        canvas.rounded(self.rect, PRIMARY if self.primary else KEY, None if self.primary else KEY_EDGE)
        frame.texts.extend(canvas.text(self.text, self.rect.inflate(-16, -8), self.size,
                                       ON_HEADER if self.primary else INK, bold=True, max_lines=1))


@dataclass(frozen=True)
class HotSpot(Widget):
    """An invisible touch target (the technician's corner)."""

    target: LocalAction | None = None

    @property
    def hit(self) -> LocalAction | None:
        return self.target

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        pass


@dataclass(frozen=True)
class Qr(Widget):
    """The receipt QR in a white square with a quiet zone; modules are whole pixels so it scans crisp."""

    url: str = ""
    opaque: ClassVar[bool] = True

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        modules = canvas.qr_modules(self.url)
        count = len(modules) + 8  # four modules of quiet zone each side
        pixel = max(1, self.rect.width // count)
        side = pixel * count
        square = pygame.Rect(0, 0, side, side)
        square.center = self.rect.center
        canvas.surface.fill(BACKGROUND, self.rect)
        canvas.surface.fill((255, 255, 255), square)
        for y, row in enumerate(modules):
            for x, dark in enumerate(row):
                if dark:
                    canvas.surface.fill((0, 0, 0), (square.x + (x + 4) * pixel, square.y + (y + 4) * pixel,
                                                    pixel, pixel))
        frame.qr = square


@dataclass(frozen=True)
class Photo(Widget):
    path: Path | None = None
    opaque: ClassVar[bool] = True

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        canvas.surface.fill(BACKGROUND, self.rect)
        image = canvas.photo(self.path, self.rect) if self.path else None
        if image is None:
            self._silhouette(canvas)
            return
        canvas.surface.blit(image, image.get_rect(center=self.rect.center))

    def _silhouette(self, canvas: Canvas) -> None:
        r = self.rect
        canvas.rounded(r, (225, 230, 236))
        head = round(r.width * 0.2)
        pygame.draw.circle(canvas.surface, (180, 188, 198), (r.centerx, r.y + round(r.height * 0.38)), head)
        body = pygame.Rect(0, 0, round(r.width * 0.7), round(r.height * 0.3))
        body.midbottom = (r.centerx, r.bottom - round(r.height * 0.06))
        pygame.draw.ellipse(canvas.surface, (180, 188, 198), body)


@dataclass(frozen=True)
class StatusDot(Widget):
    """The terminal's health as a small coloured dot (green, blue, amber, red)."""

    light: str = StatusLight.IDLE
    opaque: ClassVar[bool] = True

    def draw(self, canvas: Canvas, frame: Frame) -> None:
        canvas.surface.fill(HEADER, self.rect)
        color = LIGHTS.get(self.light, MUTED)
        pygame.draw.circle(canvas.surface, color, self.rect.center, self.rect.width // 2 - 2)
        pygame.draw.circle(canvas.surface, ON_HEADER, self.rect.center, self.rect.width // 2 - 2, width=2)


# ---- screens ----------------------------------------------------------------------

class Screens:
    """Builds the widget list of each screen for one layout."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def build(self, state: ViewState) -> list[Widget]:
        """The widgets of ``state``'s screen, back to front."""
        builder = getattr(self, f"_{state.screen}", self._idle)
        return [Fill(self.layout.screen), *builder(state)]

    # -- pieces shared by several screens

    def _header(self, title: str, state: ViewState, right: str = "") -> list[Widget]:
        lay, band = self.layout, self.layout.header()
        dot = round(lay.text.small * 1.1)
        title_w = band.width - 2 * lay.margin - dot - lay.gap
        widgets: list[Widget] = [Fill(band, HEADER)]
        if right:
            side_w = round(band.width * (0.36 if lay.portrait else 0.3))
            title_w -= side_w + lay.gap
            side = pygame.Rect(band.right - lay.margin - dot - lay.gap - side_w, band.y, side_w, band.height)
            widgets.append(Text(side, right, lay.text.small, ON_HEADER, align="left"))
        widgets.append(Text(pygame.Rect(lay.margin, band.y, title_w, band.height), title, lay.text.title,
                            ON_HEADER, bold=True, align="left"))
        widgets.append(StatusDot(pygame.Rect(band.right - lay.margin - dot, band.centery - dot // 2, dot, dot),
                                 light=state.light))
        return widgets

    def _stars(self, area: pygame.Rect, lit: int | None) -> list[Widget]:
        keys = self.layout.star_keys(area)
        return [StarKey(rect, score=score, size=self.layout.text.label, lit=lit == score)
                for rect, score in zip(keys, (5, 4, 3, 2, 1), strict=True)]

    def _tech_corner(self) -> Widget:
        side = self.layout.min_touch
        return HotSpot(pygame.Rect(0, 0, side, side), target=LocalAction("technician-tap"))

    # -- the screens

    def _idle(self, state: ViewState) -> list[Widget]:
        lay = self.layout
        _, body = lay.below_header(subtitle=False)
        main, foot = body.copy(), pygame.Rect(body.x, body.bottom - lay.text.small * 2, body.width, lay.text.small * 2)
        main.height -= foot.height + lay.gap
        widgets = [*self._header(state.hall_name or "政务服务大厅", state), self._tech_corner()]
        widgets += self._clerk(main, state) if state.clerk else self._welcome(main, state)
        widgets.append(Text(foot, "办理完成后，请您对本次服务进行评价", lay.text.small, MUTED))
        return widgets

    def _welcome(self, area: pygame.Rect, state: ViewState) -> list[Widget]:
        lay = self.layout
        top, bottom = lay.column(area, 2)
        return [Text(top, state.window_name or "欢迎您", lay.text.huge, HEADER, bold=True),
                Text(bottom, "欢迎您" if state.window_name else "", lay.text.body, INK)]

    def _clerk(self, area: pygame.Rect, state: ViewState) -> list[Widget]:
        lay, clerk = self.layout, state.clerk
        assert clerk is not None
        if lay.portrait:
            photo_h = round(area.height * 0.55)
            photo = pygame.Rect(0, area.y, round(photo_h * 0.75), photo_h)
            photo.centerx = area.centerx
            info = pygame.Rect(area.x, photo.bottom + lay.gap, area.width, area.bottom - photo.bottom - lay.gap)
        else:
            photo = pygame.Rect(area.x + lay.margin, area.y, round(area.height * 0.75), area.height)
            info = pygame.Rect(photo.right + 2 * lay.gap, area.y, area.right - photo.right - 2 * lay.gap,
                               area.height)
        lines = lay.column(info, 3)
        return [Photo(photo, path=clerk.photo),
                Text(lines[0], state.window_name, lay.text.body, MUTED),
                Text(lines[1], clerk.name, lay.text.huge, HEADER, bold=True, max_lines=1),
                Text(lines[2], f"工号 {clerk.employee_no}" if clerk.employee_no else "", lay.text.body, INK)]

    def _paused(self, state: ViewState) -> list[Widget]:
        lay = self.layout
        _, body = lay.below_header(subtitle=False)
        top, bottom = lay.column(body, 2)
        who = " ".join(x for x in (state.window_name, state.clerk.name if state.clerk else "") if x)
        return [*self._header(state.hall_name or "政务服务大厅", state), self._tech_corner(),
                Text(top, "暂停服务", round(lay.text.huge * 1.3), ALERT, bold=True, max_lines=1),
                Text(bottom, who or "请到其他窗口办理", lay.text.body, INK)]

    def _prompt(self, state: ViewState) -> list[Widget]:
        lay, prompt = self.layout, state.prompt
        item = prompt.item_name if prompt else "政务服务"
        clerk = f"工作人员：{prompt.clerk_name}" if prompt and prompt.clerk_name else ""
        sub, body = lay.below_header()
        return [*self._header(item, state, right=clerk),
                Text(sub, "请您对本次服务进行评价", lay.text.body, INK, bold=True),
                *self._stars(body, state.lit)]

    def _hall(self, state: ViewState) -> list[Widget]:
        lay = self.layout
        sub, body = lay.below_header()
        keys, row = lay.footer(body)
        (skip,) = lay.buttons(row, 1)
        return [*self._header(state.hall_name or "大厅整体服务", state),
                Text(sub, "请您对大厅整体服务进行评价", lay.text.body, INK, bold=True),
                *self._stars(keys, state.lit),
                Button(skip, "跳过", lay.text.body, target=SkipPressed())]

    def _reasons(self, state: ViewState) -> list[Widget]:
        # No subtitle line here: seven or more touch-sized toggles need the height.
        lay = self.layout
        _, body = lay.below_header(subtitle=False)
        cells, row = lay.footer(body)
        submit, skip = lay.buttons(row, 2)
        given = f"您的评价：{Level(state.score).label}" if state.score in (1, 2, 3, 4, 5) else ""
        keys = self._reason_keys(state)
        toggles = [Toggle(rect, reason=reason, size=lay.text.label, selected=reason in state.selected,
                          key=keys.get(reason))
                   for rect, reason in zip(lay.grid(cells, len(state.reasons)), state.reasons, strict=True)]
        if keys:
            then = "提交" if is_last_page(state.reasons, state.page) else "下一页"
            given = f"按键①–{KEY_MARKS[len(keys)]}选择，⑤{then}"
        return [*self._header("请选择不满意的原因（可多选）", state, right=given),
                *toggles,
                Button(submit, "提交", lay.text.body, primary=True, target=ReasonsDone(submit=True)),
                Button(skip, "跳过", lay.text.body, target=ReasonsDone(submit=False))]

    @staticmethod
    def _reason_keys(state: ViewState) -> dict[str, int]:
        """Reason -> the star key that toggles it now, when the terminal has star keys."""
        if not state.star_keys:
            return {}
        return {reason: key for key, reason in enumerate(reason_page(state.reasons, state.page), 1)}

    def _thanks(self, state: ViewState) -> list[Widget]:
        given = f"您的评价：{Level(state.score).label}" if state.score in (1, 2, 3, 4, 5) else ""
        lines = ["感谢您的评价", given]
        return [*self._header(state.hall_name or "感谢您的评价", state),
                *self._with_receipt(state, lines, GOOD, "扫码可在手机上查看或补充评价")]

    def _expired(self, state: ViewState) -> list[Widget]:
        where = "下方" if self.layout.portrait else "右侧"
        lines = ["评价已超时", f"您可扫描{where}二维码，在手机上评价" if state.receipt_url else "欢迎下次评价"]
        return [*self._header(state.hall_name or "评价已超时", state),
                *self._with_receipt(state, lines, HEADER, "手机扫码评价")]

    def _with_receipt(self, state: ViewState, lines: list[str], color: Color, caption: str) -> list[Widget]:
        lay = self.layout
        _, body = lay.below_header(subtitle=False)
        if not state.receipt_url:
            top, bottom = lay.column(body, 2)
            return [Text(top, lines[0], lay.text.huge, color, bold=True), Text(bottom, lines[1], lay.text.body, INK)]
        words, square = lay.receipt(body)
        cap_h = round(lay.text.small * 1.8)
        qr = pygame.Rect(square.x, square.y, square.width, square.height - cap_h)
        qr.width = qr.height
        qr.centerx = square.centerx
        cap = pygame.Rect(square.x, qr.bottom, square.width, cap_h)
        top, bottom = lay.column(words, 2)
        return [Text(top, lines[0], lay.text.huge, color, bold=True, max_lines=2),
                Text(bottom, lines[1], lay.text.body, INK, max_lines=3),
                Qr(qr, url=state.receipt_url), Text(cap, caption, lay.text.small, MUTED, max_lines=1)]

    def _fault(self, state: ViewState) -> list[Widget]:
        lay = self.layout
        _, body = lay.below_header(subtitle=False)
        rows = lay.column(body, 3)
        return [*self._header(state.hall_name or "政务服务大厅", state), self._tech_corner(),
                Text(rows[0], "设备故障，暂停评价", lay.text.huge, ALERT, bold=True),
                Text(rows[1], state.message or state.detail, lay.text.body, INK, max_lines=2),
                Text(rows[2], "请联系工作人员", lay.text.body, MUTED)]

    def _technician(self, state: ViewState) -> list[Widget]:
        lay, tech = self.layout, state.tech
        _, body = lay.below_header(subtitle=False)
        info, row = lay.footer(body)
        (back,) = lay.buttons(row, 1)
        depth = "未知" if tech.outbox_depth is None else str(tech.outbox_depth)
        lines = [f"设备号  {tech.device_id}", f"版本  {tech.version}", f"状态灯  {state.light}",
                 f"连接  {tech.link}", f"待上传评价  {depth}", f"详情  {state.detail or '—'}"]
        return [*self._header("维护信息", state),
                *[Text(rect, line, lay.text.label, INK, align="left", max_lines=1)
                  for rect, line in zip(lay.column(info, len(lines)), lines, strict=True)],
                Button(back, "返回", lay.text.body, target=LocalAction("technician-exit"))]


# ---- drawing with change tracking ---------------------------------------------------

class Renderer:
    """Draws view states onto one surface, redrawing only changed opaque widgets when it can."""

    def __init__(self, surface: pygame.Surface, fonts: Fonts, layout: Layout) -> None:
        self.canvas = Canvas(surface, fonts, layout)
        self.screens = Screens(layout)
        self._widgets: list[Widget] = []
        self._texts: list[list[TextItem]] = []
        self.frame = Frame()

    def draw(self, state: ViewState) -> Frame:
        """Draw ``state``; the frame's ``dirty`` lists the regions that changed."""
        widgets = self.screens.build(state)
        changed = self._changed(widgets)
        if changed is None:
            changed = list(range(len(widgets)))
            frame = Frame(dirty=[self.canvas.surface.get_rect()])
            self._texts = [[] for _ in widgets]
        else:
            frame = replace(self.frame, stars=dict(self.frame.stars), dirty=[widgets[i].rect for i in changed])
        for i in changed:
            part = Frame(stars=frame.stars)
            widgets[i].draw(self.canvas, part)
            self._texts[i] = part.texts
            frame.qr = part.qr if part.qr is not None else frame.qr
        frame.texts = [item for texts in self._texts for item in texts]
        frame.hits = [(w.rect, w.hit) for w in reversed(widgets) if w.hit is not None]
        self._widgets, self.frame = widgets, frame
        return frame

    def _changed(self, widgets: list[Widget]) -> list[int] | None:
        """Indexes of widgets to redraw alone, or None when the whole screen must be redrawn."""
        old = self._widgets
        if len(old) != len(widgets):
            return None
        changed = [i for i, (a, b) in enumerate(zip(old, widgets, strict=True)) if a != b]
        if any(type(old[i]) is not type(widgets[i]) or old[i].rect != widgets[i].rect or not widgets[i].opaque
               for i in changed):
            return None
        return changed

    def invalidate(self) -> None:
        """Forget what is on screen, so the next draw is a full one."""
        self._widgets = []
