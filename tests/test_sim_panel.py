"""The simulated panel: its input lines, its output lines, and its streams."""

from __future__ import annotations

import io
import os
import queue
import shlex
import threading
from datetime import datetime

import pytest

from hcp.agent.events import (
    ClerkTrigger,
    Feedback,
    Paused,
    PlaySound,
    PromptSpec,
    ReasonsDone,
    ReasonToggled,
    Screen,
    ShowScreen,
    SkipPressed,
    Sound,
    StarPressed,
    StatusLight,
    StoreRating,
    Thanked,
)
from hcp.device.sim_panel import LineError, SimPanel, format_command, parse_line
from hcp.domain import CST, Kind

SPEC = PromptSpec("P1", ("C1", "C2"), "I100", "营业执照 变更", "K7")


@pytest.mark.parametrize(("line", "event"), [
    ("press 5", StarPressed(5)),
    ("  press 1  ", StarPressed(1)),
    ("reason 服务态度", ReasonToggled("服务态度")),
    ("reason two words", ReasonToggled("two words")),
    ("submit", ReasonsDone(True)),
    ("skip", SkipPressed()),
    ("pause", Paused(True)),
    ("resume", Paused(False)),
    ("", None),
    ("# press 5", None),
])
def test_parse_simple_lines(line: str, event: object) -> None:
    assert parse_line(line) == event


def test_parse_prompt_with_and_without_id() -> None:
    event = parse_line("prompt C1,C2 I100 '营业执照 变更' K7 P1")
    assert event == ClerkTrigger(SPEC)
    generated = parse_line("prompt C9 I100 营业执照 K7")
    assert isinstance(generated, ClerkTrigger) and generated.prompt.prompt_id.startswith("sim-")


@pytest.mark.parametrize(("line", "problem"), [
    ("press 6", "usage: press <1-5>"),
    ("press", "usage: press <1-5>"),
    ("jump", "unknown command 'jump'"),
    ("submit now", "no arguments"),
    ("prompt C1 I100", "usage: prompt"),
    ("prompt C1,bad/id I100 name K7", "case_ids.1"),
    ("prompt 'C1 I100 name K7", "cannot split"),
    ("reason", "usage: reason"),
])
def test_bad_lines_name_the_problem(line: str, problem: str) -> None:
    with pytest.raises(LineError, match=problem.replace("(", r"\(")):
        parse_line(line)


def test_output_lines_parse_back_with_shlex() -> None:
    screen = format_command(ShowScreen(Screen.PROMPT, prompt=SPEC))
    assert screen == "screen prompt prompt=P1 cases=C1,C2 item=I100 item_name='营业执照 变更' clerk=K7"
    words = dict(w.split("=", 1) for w in shlex.split(screen)[2:])
    assert words["item_name"] == "营业执照 变更"
    assert format_command(Feedback(5)) == "feedback 5 beep=yes"
    assert format_command(Feedback(None, beep=False)) == "feedback none beep=no"
    assert format_command(PlaySound(Sound.THANKS)) == "sound thanks"
    assert format_command(Thanked("0190-ab", Kind.SERVICE, ("C1",), 5, link_up=False)) == (
        "thanked 0190-ab kind=service cases=C1 score=5 link=down")
    reasons = format_command(ShowScreen(Screen.REASONS, prompt=SPEC, score=1, reasons=("a", "b"), selected=("b",)))
    assert reasons.endswith("score=1 reasons=a,b selected=b")
    store = format_command(StoreRating(Kind.HALL, SPEC, 4, datetime(2024, 5, 6, 9, tzinfo=CST)))
    assert store.startswith("store hall prompt=P1") and "rated_at=2024-05-06T09:00:00+08:00" in store
    assert format_command(ShowScreen(Screen.FAULT, message="outbox full")) == "screen fault message='outbox full'"


class Lines:
    """An output stream that hands each written line to a queue (and can be made to break)."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            raise BrokenPipeError(32, "Broken pipe")
        for line in text.splitlines():
            self.lines.put(line)
        return len(text)

    def flush(self) -> None:
        pass

    def next(self) -> str:
        return self.lines.get(timeout=5)


def test_panel_over_a_pipe_posts_events_reports_errors_and_stops_at_eof() -> None:
    read_fd, write_fd = os.pipe()
    out = Lines()
    posted: queue.Queue[object] = queue.Queue()
    with os.fdopen(read_fd, encoding="utf-8") as stream, SimPanel(stream, out) as panel:  # type: ignore[arg-type]
        panel.start(posted.put)
        assert out.next() == "ready"
        with os.fdopen(write_fd, "w", encoding="utf-8") as feed:
            feed.write("# a comment\nprompt C1,C2 I100 '营业执照 变更' K7 P1\npress 9\npress 4\n")
        assert posted.get(timeout=5) == ClerkTrigger(SPEC)
        assert out.next() == "error 3: usage: press <1-5>"
        assert posted.get(timeout=5) == StarPressed(4)
        panel._reader.join(5)  # EOF ends the reader, nothing else
        assert not panel._reader.is_alive()
        panel.perform(PlaySound(Sound.BEEP))
        assert out.next() == "sound beep"


def test_status_lines_and_a_broken_output() -> None:
    out = Lines()
    panel = SimPanel(io.StringIO(""), out)  # type: ignore[arg-type]
    panel.show_status(StatusLight.OFFLINE, "link down; 3 ratings waiting")
    assert out.next() == "status offline detail='link down; 3 ratings waiting'"
    out.broken = True
    panel.perform(Feedback(3))  # logged, not raised: the window must go on without a reader
    out.broken = False
    panel.perform(Feedback(3))
    assert out.lines.empty()  # output stays off once the pipe broke
    panel.close()
    panel.close()


def test_writes_from_threads_stay_whole_lines() -> None:
    buffer = io.StringIO()
    panel = SimPanel(io.StringIO(""), buffer)

    def spam(n: int) -> None:
        for _ in range(200):
            panel.perform(Feedback(n))

    threads = [threading.Thread(target=spam, args=(n,)) for n in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 600 and set(lines) == {"feedback 1 beep=yes", "feedback 2 beep=yes", "feedback 3 beep=yes"}
