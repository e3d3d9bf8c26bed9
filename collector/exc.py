"""Errors the collector raises on purpose.

Each names what was wrong in one line a technician can act on.
"""

from hcp.exc import ConfigError, HcpError


class CollectorError(HcpError):
    """Root of the collector's own errors."""


class StoreError(CollectorError, RuntimeError):
    """The rating store cannot do what was asked (bad state, not a bad message)."""


class UnknownDevice(CollectorError, KeyError):
    """A device id that is not registered with this collector."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "unknown device"


class SecretKeyError(CollectorError, ConfigError):
    """The pseudonym key file is missing, unreadable, too short or too open."""


class SealError(CollectorError, ValueError):
    """A sealed applicant field that cannot be opened or used; names the field, never the value."""


class Refused(CollectorError, ValueError):
    """A lifecycle action that the record's state or the policy does not allow; says why."""


class NotFound(CollectorError, LookupError):
    """A follow-up, appeal or rating id that is not in the store."""


class MessageRefused(CollectorError, ValueError):
    """A message taken as a whole or not at all (unregistered sender, wrong envelope); its sender keeps it."""


class NoStore(CollectorError, FileNotFoundError):
    """A collector database or key that is not there; only ``hcp collector`` and ``hcp migrate`` make one."""


class PolicyMismatch(CollectorError, ConfigError):
    """A policy given to a command that is not the one the database was made for."""


class DatabaseError(StoreError):
    """The collector database failed a statement; the storage layer's translation of the engine's error."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot do it now (disk I/O, locked, busy, read-only, cannot open): try again later."""


class DatabaseFull(DatabaseUnavailable):
    """The disk (or the database's size limit) is full: nothing of the transaction was kept; try again."""


class MessageFailed(DatabaseError, ValueError):
    """One message's writes broke a database rule (a unique key, a bad value): a bug or a race, that message alone."""
