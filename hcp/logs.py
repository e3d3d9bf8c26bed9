"""Logging set-up: structured lines, journald priorities, secrets redacted.

Under systemd (``$JOURNAL_STREAM`` set) each line starts with the syslog
priority in angle brackets, which journald turns into the entry's level, and
carries no timestamp (journald adds one). Elsewhere a line is
``time level logger: message``. ``--log-format json`` gives one JSON object a
line for log shippers. Every record passes :class:`RedactFilter`, which
replaces any registered secret (keys, passwords) with ``***``.

Raters' identities never reach a log: the collector logs rating ids, topics
and reasons only, and case records' applicant ids are pseudonymised before
anything is stored (tests grep the logs of an end-to-end run for them).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
REDACTED = "***"


def register_secret(value: str | bytes | None) -> None:
    """Never log ``value`` (or its text) from now on; short values are ignored (they would mask words)."""
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    if len(text) >= 6:
        with _LOCK:
            _SECRETS.add(text)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced."""
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class RedactFilter(logging.Filter):
    """Formats the message once, with secrets replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class JournalFormatter(logging.Formatter):
    """``<6>hcp.agent: message``: the priority prefix journald reads (SyslogLevelPrefix)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"<{_PRIORITY.get(record.levelno, 6)}>{record.name}: {super().format(record)}"
        return text.replace("\n", "\n ")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname.lower(),
                 "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure the root logger once for a command: level, format (auto|text|journal|json), redaction."""
    if fmt == "auto":
        fmt = "journal" if os.environ.get("JOURNAL_STREAM") else "text"
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "journal":
        handler.setFormatter(JournalFormatter("%(message)s"))
    elif fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter())
    handler.hcp_handler = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "hcp_handler", False) or type(old) is logging.StreamHandler:
            root.removeHandler(old)  # ours from an earlier call, or a basicConfig one: never twice per line
    root.addHandler(handler)
    root.setLevel(level)
