"""Every screen drawn under SDL_VIDEODRIVER=dummy: texts, stars, touch targets, the receipt QR, fonts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pygame
import pytest
import zxingcpp

from hcp.agent.events import ReasonsDone, ReasonToggled, Screen, SkipPressed, StarPressed
from hcp.domain import Level
from hcp.ui.exc import FontNotFoundError
from hcp.ui.fonts import Fonts, find_cjk_faces
from hcp.ui.layout import Layout
from hcp.ui.receipt import verify
from hcp.ui.samples import DEMO_KEY, DEMO_NOW, DEMO_TEMPLATE, DIMENSIONS, PROMPT, sample_states
from hcp.ui.screens import STAR, TECHNICIAN, Frame, Renderer
from hcp.ui.settings import DisplaySection

VARIANTS = [DisplaySection(size="800x480"), DisplaySection(size="1024x600"),
            DisplaySection(size="800x480", orientation="portrait"),
            DisplaySection(size="1024x600", orientation="portrait", large_text=True),
            DisplaySection(size="800x480", large_text=True)]
LABELS = [Level(score).label for score in (5, 4, 3, 2, 1)]


@pytest.fixture(scope="module")
def fonts() -> Iterator[Fonts]:
    pygame.display.init()
    yield Fonts.find()
    pygame.display.quit()


def draw(fonts: Fonts, display: DisplaySection, screen: str) -> tuple[pygame.Surface, Frame, Layout]:
    surface = pygame.Surface(display.logical_size)
    layout = Layout(display.logical_size, display.min_touch_px, display.large_text)
    frame = Renderer(surface, fonts, layout).draw(sample_states()[screen])
    return surface, frame, layout


def decode_qr(surface: pygame.Surface) -> list[str]:
    width, height = surface.get_size()
    green = pygame.image.tobytes(surface, "RGB")[1::3]  # black and white: one channel is enough
    return [code.text for code in zxingcpp.read_barcodes(memoryview(green).cast("B", (height, width)))]


# ---- fonts ------------------------------------------------------------------------

def test_cjk_glyph_is_not_tofu(fonts: Fonts) -> None:
    face = fonts.face()
    ping, _ = face.render("评", (0, 0, 0), (255, 255, 255), size=48)
    tofu, _ = face.render("\U000e0fff", (0, 0, 0), (255, 255, 255), size=48)  # an unassigned code point
    assert face.get_metrics("评")[0] is not None, "评 has no glyph of its own: install fonts-noto-cjk"
    assert face.get_metrics("\U000e0fff")[0] is None
    assert pygame.image.tobytes(ping, "RGB") != pygame.image.tobytes(tofu, "RGB") or ping.get_size() != tofu.get_size()


def test_no_cjk_font_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no fc-match on the path: as on a bare image
    with pytest.raises(FontNotFoundError, match="install fonts-noto-cjk"):
        find_cjk_faces()


def test_font_file_without_chinese_fails_clearly() -> None:
    latin = Path(pygame.font.get_default_font())
    path = Path(pygame.__file__).parent / latin.name
    with pytest.raises(FontNotFoundError, match="install fonts-noto-cjk"):
        find_cjk_faces(path)


# ---- every screen, every variant ------------------------------------------------------

SCREENS = list(sample_states())


@pytest.mark.parametrize("display", VARIANTS, ids=lambda d: f"{d.size}-{d.orientation}-{d.large_text}")
@pytest.mark.parametrize("screen", SCREENS)
def test_screen_fits(fonts: Fonts, display: DisplaySection, screen: str) -> None:
    surface, frame, layout = draw(fonts, display, screen)
    bounds = surface.get_rect()
    assert frame.texts, "nothing drawn"
    for item in frame.texts:
        assert bounds.contains(item.rect), f"{item.text!r} at {item.rect} leaves the screen"
    for a, b in itertools.combinations(frame.texts, 2):
        assert not a.rect.colliderect(b.rect), f"{a.text!r} {a.rect} overlaps {b.text!r} {b.rect}"
    for rect, target in frame.hits:
        assert bounds.contains(rect)
        assert min(rect.size) >= layout.min_touch, f"{target} target {rect} smaller than {layout.min_touch}px"
    for (a, _), (b, _) in itertools.combinations(frame.hits, 2):
        assert not a.colliderect(b)
    assert all(item.text.strip() for item in frame.texts)


@pytest.mark.parametrize("display", VARIANTS, ids=lambda d: f"{d.size}-{d.orientation}-{d.large_text}")
def test_prompt_shows_item_labels_and_stars(fonts: Fonts, display: DisplaySection) -> None:
    surface, frame, _ = draw(fonts, display, Screen.PROMPT)
    drawn = [item.text for item in frame.texts]
    assert PROMPT.item_name in "".join(drawn)  # a long name may wrap onto two lines
    assert "请您对本次服务进行评价" in drawn
    assert [text for text in drawn if text in LABELS] == LABELS
    keys = {target.score: rect for rect, target in frame.hits if isinstance(target, StarPressed)}
    assert sorted(keys) == [1, 2, 3, 4, 5]
    for score, center in frame.stars.items():
        assert keys[score].collidepoint(center)
        assert tuple(surface.get_at(center))[:3] == STAR
        assert keys[score].contains(frame.text_rect(Level(score).label))


def test_landscape_star_sits_at_key_centre(fonts: Fonts) -> None:
    surface, frame, _ = draw(fonts, DisplaySection(), Screen.PROMPT)
    for rect, target in frame.hits:
        if isinstance(target, StarPressed):
            x, y = rect.center
            assert tuple(surface.get_at((x, y - rect.height // 8)))[:3] == STAR


def test_stars_are_large(fonts: Fonts) -> None:
    _, frame, layout = draw(fonts, DisplaySection(), Screen.PROMPT)
    assert layout.min_touch >= 78  # 15 mm on a 7-inch 800×480 panel
    for rect, target in frame.hits:
        if isinstance(target, StarPressed):
            assert rect.width >= 120 and rect.height >= 200


def test_reasons_screen(fonts: Fonts) -> None:
    _, frame, _ = draw(fonts, DisplaySection(), Screen.REASONS)
    toggles = [target.reason for _, target in frame.hits if isinstance(target, ReasonToggled)]
    assert sorted(toggles) == sorted(DIMENSIONS)
    drawn = [item.text for item in frame.texts]
    assert "✓ 服务态度" in drawn and "承诺履行" in drawn
    assert {"提交", "跳过"} <= set(drawn)
    assert ReasonsDone(True) in [t for _, t in frame.hits] and ReasonsDone(False) in [t for _, t in frame.hits]


def test_hall_screen(fonts: Fonts) -> None:
    _, frame, _ = draw(fonts, DisplaySection(), Screen.HALL)
    drawn = [item.text for item in frame.texts]
    assert "请您对大厅整体服务进行评价" in drawn and "跳过" in drawn
    assert SkipPressed() in [t for _, t in frame.hits]


@pytest.mark.parametrize("display", VARIANTS[:3], ids=["800x480", "1024x600", "portrait"])
@pytest.mark.parametrize("screen", [Screen.THANKS, Screen.EXPIRED])
def test_receipt_qr_decodes_and_verifies(fonts: Fonts, display: DisplaySection, screen: str) -> None:
    surface, frame, _ = draw(fonts, display, screen)
    expected = sample_states()[screen].receipt_url
    assert expected and expected.startswith(DEMO_TEMPLATE.split("{")[0])
    assert decode_qr(surface) == [expected]
    assert frame.qr is not None and surface.get_rect().contains(frame.qr)
    token = expected.split("?t=")[1]
    assert verify(token, PROMPT.case_ids[0], DEMO_KEY, DEMO_NOW) == DEMO_NOW + 7 * 86400


def test_thanks_without_receipt(fonts: Fonts) -> None:
    surface = pygame.Surface((800, 480))
    state = replace(sample_states()[Screen.THANKS], receipt_url=None)
    frame = Renderer(surface, fonts, Layout((800, 480), 79)).draw(state)
    assert "感谢您的评价" in [item.text for item in frame.texts]
    assert frame.qr is None and decode_qr(surface) == []


def test_idle_and_paused_texts(fonts: Fonts) -> None:
    _, idle, _ = draw(fonts, DisplaySection(), Screen.IDLE)
    assert {"郑州市政务服务大厅", "3号窗口", "李明", "工号 0427"} <= {item.text for item in idle.texts}
    _, paused, _ = draw(fonts, DisplaySection(), Screen.PAUSED)
    assert "暂停服务" in {item.text for item in paused.texts}


def test_technician_lists_health(fonts: Fonts) -> None:
    _, frame, _ = draw(fonts, DisplaySection(), TECHNICIAN)
    text = " ".join(item.text for item in frame.texts)
    for part in ("hall01-w03", "0.1.0", "connected", "12", "offline"):
        assert part in text


# ---- redrawing only what changed -----------------------------------------------------

def test_toggling_a_reason_redraws_only_that_toggle(fonts: Fonts) -> None:
    surface = pygame.Surface((800, 480))
    renderer = Renderer(surface, fonts, Layout((800, 480), 79))
    state = sample_states()[Screen.REASONS]
    first = renderer.draw(state)
    assert first.dirty == [surface.get_rect()]
    second = renderer.draw(replace(state, selected=(*state.selected, "勤政廉洁")))
    toggle = next(rect for rect, t in second.hits if t == ReasonToggled("勤政廉洁"))
    assert second.dirty == [toggle]
    assert "✓ 勤政廉洁" in [item.text for item in second.texts]
    assert len(second.texts) == len(first.texts)
    assert renderer.draw(replace(state, selected=(*state.selected, "勤政廉洁"))).dirty == []


def test_lighting_a_star_redraws_only_that_key(fonts: Fonts) -> None:
    surface = pygame.Surface((800, 480))
    renderer = Renderer(surface, fonts, Layout((800, 480), 79))
    state = sample_states()[Screen.PROMPT]
    renderer.draw(state)
    frame = renderer.draw(replace(state, lit=4))
    key = next(rect for rect, t in frame.hits if t == StarPressed(4))
    assert frame.dirty == [key]
    assert sorted(frame.stars) == [1, 2, 3, 4, 5]


def test_new_screen_redraws_everything(fonts: Fonts) -> None:
    surface = pygame.Surface((800, 480))
    renderer = Renderer(surface, fonts, Layout((800, 480), 79))
    renderer.draw(sample_states()[Screen.PROMPT])
    frame = renderer.draw(sample_states()[Screen.THANKS])
    assert frame.dirty == [surface.get_rect()] and frame.stars == {}


def test_long_item_name_wraps_inside_the_header(fonts: Fonts) -> None:
    surface = pygame.Surface((480, 800))
    layout = Layout((480, 800), 79)
    long_prompt = replace(PROMPT, item_name="建设工程消防验收备案及抽查（含特殊建设工程消防验收）办理")
    frame = Renderer(surface, fonts, layout).draw(replace(sample_states()[Screen.PROMPT], prompt=long_prompt))
    header = layout.header()
    for item in frame.texts:
        if item.rect.top < header.bottom:
            assert header.contains(item.rect)
