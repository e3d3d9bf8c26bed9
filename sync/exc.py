"""Errors of the terminal's sync: the MQTT link and the durable outbox.

Third-party errors (paho, sqlite3) are translated into these at the
boundary, so the agent never has to know which library failed.
"""

from hcp.exc import HcpError


class SyncError(HcpError):
    """Root of every error hcp.sync raises on purpose."""


class LinkDown(SyncError, ConnectionError):
    """The MQTT link is not connected, so nothing can be published now."""


class OutboxFull(SyncError, OSError):
    """The outbox holds its maximum number of ratings; new ones are refused, never dropped."""


class OutboxError(SyncError, OSError):
    """The outbox database failed (disk full, I/O error...); the message names the cause."""
