"""Render every screen at 800×480 and 1024×600 (and 800×480 portrait, and large text) to docs/screens/*.png."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import pygame  # after SDL_VIDEODRIVER: the driver is read at import

from hcp.ui.fonts import Fonts
from hcp.ui.layout import Layout
from hcp.ui.samples import sample_states
from hcp.ui.screens import Renderer
from hcp.ui.settings import DisplaySection

VARIANTS = {
    "800x480": DisplaySection(size="800x480"),
    "1024x600": DisplaySection(size="1024x600"),
    "800x480-portrait": DisplaySection(size="800x480", orientation="portrait"),
    "800x480-large": DisplaySection(size="800x480", large_text=True),
}


def render_all(out: Path) -> list[Path]:
    """Write one PNG per screen and variant into ``out``; return their paths."""
    pygame.display.init()  # not pygame.init(): no mixer, no ALSA noise
    fonts = Fonts.find()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, display in VARIANTS.items():
        surface = pygame.Surface(display.logical_size)
        renderer = Renderer(surface, fonts, Layout(display.logical_size, display.min_touch_px, display.large_text))
        for screen, state in sample_states().items():
            renderer.invalidate()
            renderer.draw(state)
            path = out / f"{name}-{screen}.png"
            pygame.image.save(surface, str(path))
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "screens",
                        help="folder for the PNGs (default: docs/screens)")
    args = parser.parse_args()
    for path in render_all(args.out):
        print(path)


if __name__ == "__main__":
    main()
