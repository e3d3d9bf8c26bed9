"""Touchscreen figures: full-redraw frames per second at 800×480 and 1024×600, idle CPU, resident memory.

Run: ``SDL_VIDEODRIVER=dummy python bench/ui_bench.py`` (on a Pi, with the real driver, for real numbers).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame

from hcp.agent.events import Screen, ShowScreen
from hcp.ui.fonts import Fonts
from hcp.ui.layout import Layout
from hcp.ui.samples import PROMPT, sample_states
from hcp.ui.screens import Renderer
from hcp.ui.settings import DisplaySection, ReceiptSection
from hcp.ui.touch import TouchScreen


def redraw_fps(fonts: Fonts, size: str, seconds: float) -> dict[str, float]:
    """Full redraws per second of each screen (the QR code is cached, as on a terminal)."""
    display = DisplaySection(size=size)  # type: ignore[arg-type]
    surface = pygame.display.set_mode(display.logical_size)
    renderer = Renderer(surface, fonts, Layout(display.logical_size, display.min_touch_px))
    rates = {}
    for name, state in sample_states().items():
        frames, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            renderer.invalidate()
            renderer.draw(state)
            pygame.display.flip()
            frames += 1
        rates[name] = frames / (time.perf_counter() - start)
    return rates


def rss_mib() -> float:
    """Resident memory now, from /proc (the peak from getrusage where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def idle_cpu(seconds: float) -> tuple[float, float]:
    """Process CPU seconds over ``seconds`` with a started TouchScreen on its idle screen, and RSS after."""
    screen = TouchScreen(DisplaySection(fullscreen=False), ReceiptSection(key="bench-key-0123456789abcdef"))
    with screen:
        screen.start(lambda event: None)
        screen.perform(ShowScreen(Screen.THANKS, prompt=PROMPT, score=5))
        screen.wait_for_redraw()
        screen.perform(ShowScreen(Screen.IDLE))
        screen.wait_for_redraw()
        time.sleep(0.5)
        before = time.process_time()
        time.sleep(seconds)
        used = time.process_time() - before
        return used, rss_mib()


def touch_to_feedback(presses: int) -> list[float]:
    """Seconds from a touch on star 5 to the redrawn frame showing its key lit.

    The touch goes in as a pygame event, the screen posts StarPressed, and the
    bench answers with the Feedback command the state machine would send.
    """
    import queue

    from hcp.agent.events import Feedback, StarPressed

    posted: queue.Queue = queue.Queue()
    screen = TouchScreen(DisplaySection(fullscreen=False), ReceiptSection(key="bench-key-0123456789abcdef"))
    samples = []
    with screen:
        screen.start(posted.put)
        for _ in range(presses):
            screen.perform(ShowScreen(Screen.PROMPT, prompt=PROMPT))
            screen.wait_for_redraw()
            assert screen.frame is not None
            rect = next(r for r, target in screen.frame.hits if target == StarPressed(5))
            start = time.perf_counter()
            pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1))
            posted.get(timeout=5)
            screen.perform(Feedback(5))
            screen.wait_for_redraw()
            samples.append(time.perf_counter() - start)
    return sorted(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per screen for the fps figures")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle to measure CPU over")
    args = parser.parse_args()
    rss_start = rss_mib()
    pygame.display.init()
    fonts = Fonts.find()
    for size in ("800x480", "1024x600"):
        rates = redraw_fps(fonts, size, args.seconds)
        worst = min(rates, key=rates.__getitem__)
        print(f"full redraw {size}: {sum(rates.values()) / len(rates):.0f} fps mean, "
              f"slowest {worst} {rates[worst]:.0f} fps")
    pygame.display.quit()
    latency = touch_to_feedback(200)
    print(f"touch → feedback drawn: median {latency[len(latency) // 2] * 1e3:.1f} ms, "
          f"max {latency[-1] * 1e3:.1f} ms over {len(latency)} touches")
    used, rss = idle_cpu(args.idle)
    print(f"idle CPU: {used:.3f} s over {args.idle:.0f} s = {100 * used / args.idle:.2f} % of one core")
    print(f"resident memory: {rss_start:.0f} MiB at start, {rss:.0f} MiB with the UI loaded")


if __name__ == "__main__":
    main()
