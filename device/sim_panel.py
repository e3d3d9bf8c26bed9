"""A window terminal made of text lines: for tests, the demo and a laptop without hardware.

Input lines (default stdin) become events; every command performed and every
status change becomes one output line (default stdout), flushed at once. The
line protocol is the reference in ``docs/sim-panel.md``; in short::

    in:  prompt C1,C2 I100 营业执照 K7 [P1]   press 5   reason 服务态度   submit   skip
         pause   resume   # comment
    out: ready | screen <name> k=v... | feedback <1-5|none> beep=yes|no | sound <name>
         store <kind> ... | thanked <rating_id> kind=.. cases=.. score=.. link=up|down
         status <light> detail=.. | error <line no>: <problem>

Output values are shell-quoted where needed, so ``shlex.split`` parses any line.
"""

from __future__ import annotations

import logging
import shlex
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TextIO

from pydantic import ValidationError

from hcp.agent.events import (
    ClerkTrigger,
    Command,
    Event,
    Feedback,
    Paused,
    PlaySound,
    PostEvent,
    PromptSpec,
    ReasonsDone,
    ReasonToggled,
    ShowScreen,
    SkipPressed,
    StarPressed,
    StatusLight,
    StoreRating,
    Thanked,
)
from hcp.agent.machine import prompt_spec
from hcp.protocol import PromptMessage

if TYPE_CHECKING:
    from hcp.config.schema import AgentConfig

log = logging.getLogger("hcp.device.sim_panel")


class LineError(ValueError):
    """An input line the panel cannot turn into an event."""


def parse_line(line: str) -> Event | None:
    """The event an input line stands for; None for blank lines and comments; LineError when wrong."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise LineError(f"cannot split the line ({err})") from None
    verb, args = words[0], words[1:]
    parser = _PARSERS.get(verb)
    if parser is None:
        raise LineError(f"unknown command {verb!r}; expected one of {', '.join(_PARSERS)}")
    return parser(args)


def _prompt(args: list[str]) -> Event:
    if len(args) not in (4, 5):
        raise LineError("usage: prompt <case_id>[,<case_id>...] <item_code> <item_name> <clerk_id> [prompt_id]")
    prompt_id = args[4] if len(args) == 5 else f"sim-{uuid.uuid4().hex[:16]}"
    data = {"v": 1, "prompt_id": prompt_id, "case_ids": args[0].split(","), "item_code": args[1],
            "item_name": args[2], "clerk_id": args[3]}
    try:
        # The wire model validates ids exactly as an MQTT prompt would be validated.
        return ClerkTrigger(prompt_spec(PromptMessage.model_validate(data)))
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LineError(f"{where}: {first['msg']}") from None


def _press(args: list[str]) -> Event:
    if len(args) != 1 or args[0] not in {"1", "2", "3", "4", "5"}:
        raise LineError("usage: press <1-5>")
    return StarPressed(int(args[0]))


def _reason(args: list[str]) -> Event:
    if not args:
        raise LineError("usage: reason <text>")
    return ReasonToggled(" ".join(args))


def _no_args(event: Event, usage: str) -> Callable[[list[str]], Event]:
    def parse(args: list[str]) -> Event:
        if args:
            raise LineError(f"usage: {usage} (no arguments)")
        return event
    return parse


_PARSERS: dict[str, Callable[[list[str]], Event]] = {
    "prompt": _prompt,
    "press": _press,
    "reason": _reason,
    "submit": _no_args(ReasonsDone(True), "submit"),
    "skip": _no_args(SkipPressed(), "skip"),
    "pause": _no_args(Paused(True), "pause"),
    "resume": _no_args(Paused(False), "resume"),
}


# ---- output -----------------------------------------------------------------

def _q(value: object) -> str:
    # Quote only what shlex.split would break apart: Chinese text stays readable.
    text = str(value)
    if text and not any(ch.isspace() or ch in "'\"\\" for ch in text):
        return text
    return shlex.quote(text)


def _kv(pairs: Iterable[tuple[str, object]]) -> str:
    return " ".join(f"{key}={_q(value)}" for key, value in pairs if value is not None and value != "")


def _prompt_fields(prompt: PromptSpec | None) -> list[tuple[str, object]]:
    if prompt is None:
        return []
    return [("prompt", prompt.prompt_id), ("cases", ",".join(prompt.case_ids)), ("item", prompt.item_code),
            ("item_name", prompt.item_name), ("clerk", prompt.clerk_id)]


def format_command(command: Command) -> str | None:
    """The output line for ``command``; None for a command the panel has no line for."""
    if isinstance(command, ShowScreen):
        fields = [*_prompt_fields(command.prompt), ("score", command.score),
                  ("reasons", ",".join(command.reasons) if command.reasons else None),
                  ("page", command.page or None),
                  ("selected", ",".join(command.selected) if command.reasons else None),
                  ("message", command.message)]
        return f"screen {command.screen.value} {_kv(fields)}".rstrip()
    if isinstance(command, Feedback):
        return f"feedback {command.score if command.score is not None else 'none'} beep={_yes(command.beep)}"
    if isinstance(command, PlaySound):
        return f"sound {command.sound.value}"
    if isinstance(command, StoreRating):
        fields = [*_prompt_fields(command.prompt), ("score", command.score),
                  ("reasons", ",".join(command.reasons) or None), ("rated_at", command.rated_at.isoformat())]
        return f"store {command.kind.value} {_kv(fields)}"
    if isinstance(command, Thanked):
        link = "unknown" if command.link_up is None else ("up" if command.link_up else "down")
        fields = [("kind", command.kind.value), ("cases", ",".join(command.case_ids)), ("score", command.score),
                  ("link", link)]
        return f"thanked {_q(command.rating_id)} {_kv(fields)}"
    return None


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


class SimPanel:
    """A front end over two text streams; see the module docstring for the lines."""

    def __init__(self, input: TextIO | None = None, output: TextIO | None = None) -> None:
        self._input = input if input is not None else _utf8(sys.stdin)
        self._output: TextIO | None = output if output is not None else _utf8(sys.stdout)
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._post: PostEvent | None = None
        self._closed = threading.Event()

    @classmethod
    def from_config(cls, config: AgentConfig) -> SimPanel:
        """The panel on stdin and stdout (the configuration has nothing for it)."""
        return cls()

    # ---- FrontEnd ------------------------------------------------------------

    def start(self, post: PostEvent) -> None:
        if self._reader is not None:
            return
        self._post = post
        self._reader = threading.Thread(target=self._read, name="sim-panel-input", daemon=True)
        self._reader.start()
        self.write("ready")

    def perform(self, command: Command) -> None:
        line = format_command(command)
        if line is not None:
            self.write(line)

    def show_status(self, light: StatusLight, detail: str) -> None:
        self.write(f"status {light.value} {_kv([('detail', detail)])}".rstrip())

    def close(self) -> None:
        # The reader thread is a daemon blocked in readline(): it cannot be
        # interrupted portably, and it posts nothing once closed is set.
        self._closed.set()

    def __enter__(self) -> SimPanel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the streams ---------------------------------------------------------

    def write(self, line: str) -> None:
        """Write one line and flush it, from any thread; a dead reader is logged once, not raised."""
        with self._lock:
            if self._output is None:
                return
            try:
                self._output.write(line + "\n")
                self._output.flush()
            except (OSError, ValueError) as err:  # a broken pipe or closed stream: the reader went away
                log.warning("sim panel output closed (%s); further lines are dropped", err)
                self._output = None

    def _read(self) -> None:
        number = 0
        try:
            for line in self._input:
                number += 1
                if self._closed.is_set():
                    return
                self._handle(number, line)
        except (OSError, ValueError) as err:  # the input stream was closed under us
            log.info("sim panel input ended (%s)", err)
        log.info("sim panel input reached its end after %d lines", number)

    def _handle(self, number: int, line: str) -> None:
        try:
            event = parse_line(line)
        except LineError as err:
            self.write(f"error {number}: {err}")
            return
        if event is not None and self._post is not None:
            self._post(event)


def _utf8(stream: TextIO) -> TextIO:
    """The standard stream, made to speak UTF-8 whatever the locale: item names are Chinese."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(encoding="utf-8", errors="replace")
    return stream
