"""The collector's storage layer: the only collector code that speaks SQL.

``core`` holds :class:`Store`, the facade the service, lifecycle, channels,
notifier, forwarder, statistics, fleet view, phone page and CLI call by named
methods; the ``schema*`` modules are the SQLite migrations and
``pg_schema`` their PostgreSQL twins.
"""

from hcp.collector.store.core import DEFAULT_PREFIX, Answer, Device, Store, WindowCount

__all__ = ["DEFAULT_PREFIX", "Answer", "Device", "Store", "WindowCount"]
