"""The collector's storage layer: the only collector code that speaks SQL.

``core`` holds :class:`Store`, the facade the service, lifecycle, channels,
notifier, forwarder, statistics, fleet view, phone page and CLI call by named
methods; the ``schema*`` modules are the SQLite migrations and
``pg_schema`` their PostgreSQL twins. ``chain`` and ``chain_rows`` are the
hash chain over the records; ``chain_api`` gives the Store its chain methods.
"""

from hcp.collector.store.core import DEFAULT_PREFIX, Answer, Device, Store, WindowCount
from hcp.collector.store.errors import database_errors

__all__ = ["DEFAULT_PREFIX", "Answer", "Device", "Store", "WindowCount", "database_errors"]
