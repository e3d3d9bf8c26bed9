"""Opening the collector's store from its config: the one path every command takes.

Only ``hcp collector`` and ``hcp migrate`` create a database and its key
(``create=True``); every other command opens what is there and refuses a
missing file with one line naming it, so a typo in ``--data-dir`` is not
answered with an empty database. The database records the policy it was made
under (:mod:`hcp.collector.store.schema_meta`); a command given no policy uses that
one, and a command given another region's policy is refused.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hcp.collector.exc import DatabaseError, DatabaseUnavailable, NoStore, PolicyMismatch, StoreError
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.collector.store.engine import is_url
from hcp.collector.store.schema_meta import RecordedPolicy
from hcp.config.policy import Profile
from hcp.config.schema import CollectorConfig, PolicySection


def open_store(config: CollectorConfig, *, create: bool = False, check_same_thread: bool = True,
               change_policy: bool = False) -> Store:
    """The store ``config`` names, under the policy the database records.

    ``create``: make the database (mode 0600) and key when missing, record the
    policy, and check that the database is writable (the collector's start).
    ``change_policy`` (with ``create``): record the config's policy even when it names another region.
    """
    database, key_path = config.database_path, Path(config.key_path)
    server = is_url(database)
    path = database if server else Path(database)
    if not create:
        files = ([] if server else [("collector database", path)]) + [("collector key", key_path)]
        for what, file in files:
            if not file.is_file():
                raise NoStore(f"{file}: no {what} here (check --data-dir / -c; 'hcp collector' or 'hcp migrate' "
                              "creates one)")
    try:
        if create and not server:
            _create_private(path)
        key = load_or_create_key(key_path)
        # Any profile will do until settle_policy reads the recorded one.
        store = Store.open(path, PolicySection().load(), key, check_same_thread=check_same_thread,
                           heads_file=config.chain.heads_file, create=create)
    except NoStore as err:
        raise NoStore(f"{_shown(path)}: {err} ('hcp collector' or 'hcp migrate' makes one)") from None
    except (OSError, DatabaseError) as err:
        raise StoreError(f"{_shown(path)}: cannot open the collector database ({_reason(err)})") from None

    try:
        store.profile = settle_policy(store, config, path, record=create, change=change_policy)
    except BaseException:
        store.close()
        raise
    return store


def settle_policy(store: Store, config: CollectorConfig, path: Path | str, *, record: bool,
                  change: bool = False) -> Profile:
    """The profile to run under: the recorded one, or the config's when it names the same region.

    ``record`` (the collector's start): a database without a recorded policy
    adopts the config's, and a matching config's section replaces the recorded
    one (its overrides may have changed); the write proves the file writable.
    """
    given = config.policy if config.policy.model_fields_set else None
    recorded = store.recorded_policy()
    section = given or (PolicySection.model_validate(recorded.section) if recorded else config.policy)
    profile = section.load()
    if recorded is not None and given is not None and not (change and record) \
            and (profile.name, profile.code) != (recorded.region, recorded.code):
        mine = RecordedPolicy(section.model_dump(mode="json"), profile.name, profile.code)
        raise PolicyMismatch(f"{path}: the database was made for policy {recorded.label}, not {mine.label}; "
                             "drop --policy or use the collector's config ('hcp migrate --change-policy' "
                             "records another)")
    if record:
        _record(store, RecordedPolicy(section.model_dump(mode="json"), profile.name, profile.code), path)
    return profile


def _record(store: Store, policy: RecordedPolicy, path: Path | str) -> None:
    try:
        store.record_policy(policy)
    except DatabaseUnavailable as err:
        raise StoreError(f"{path}: the collector database is not writable ({_reason(err)})") from None


def _shown(database: Path | str) -> str:
    """A database as an error names it: a path, or a URL without its user name and parameters."""
    if not is_url(database):
        return str(database)
    scheme, rest = str(database).split("://", 1)
    return f"{scheme}://{rest.split('@')[-1].split('?')[0]}"


def _create_private(path: Path) -> None:
    """An empty file, mode 0600, when ``path`` is missing: SQLite gives its -wal and -shm the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _reason(err: BaseException) -> str:
    """The OS's or SQLite's words, with the file when it is another (the key, the folder)."""
    filename = getattr(err, "filename", None)
    text = getattr(err, "strerror", None) or str(err)
    return f"{filename}: {text}" if filename else text
