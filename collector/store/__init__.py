"""The collector's storage layer: the only collector code that speaks SQL.

``core`` holds :class:`Store`, the facade the service, lifecycle, channels,
notifier, forwarder, statistics, fleet view, phone page and CLI call by named
methods; the ``schema*`` modules are the SQLite migrations and
``pg_schema`` their PostgreSQL twins. ``chain`` and ``chain_rows`` are the
hash chain over the records; ``chain_api`` gives the Store its chain methods.
The other modules are mixins of the Store with one concern's queries each
(``lifecycle``, ``outboxes``, ``identities``, ``stats``, ``fleet``,
``channels``); ``errors`` translates the engine's errors into
:mod:`hcp.collector.exc`'s at this boundary.
"""

from hcp.collector.store.core import DEFAULT_PREFIX, Answer, Device, Store, WindowCount
from hcp.collector.store.engine import database_location, is_url
from hcp.collector.store.errors import database_errors

__all__ = ["DEFAULT_PREFIX", "Answer", "Device", "Store", "WindowCount", "database_errors", "database_location",
           "is_url"]
