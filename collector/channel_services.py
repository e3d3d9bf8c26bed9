"""The channel services beside the MQTT collector: the phone page, reminders and alerts, upstream forwarding.

Each runs on its own store connection to the collector's SQLite file (WAL),
never on the MQTT worker's: the page in uvicorn's thread pool, the notifier
and the forwarder in one background thread. Every write is a short
``BEGIN IMMEDIATE`` transaction, so they queue behind the worker's group
commits for milliseconds (busy timeout 30 s) and the unique keys decide.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from hcp.collector.exc import DatabaseError
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store, database_errors
from hcp.config.schema import CollectorConfig
from hcp.domain import now_cst
from hcp.exc import ConfigError

log = logging.getLogger("hcp.collector.channels")


class ChannelServices:
    """What ``[web]``, ``[notify]`` and ``[upstream]`` turn on; ``close()`` is safe twice."""

    def __init__(self, config: CollectorConfig, database: Path | str, secret_file: Path) -> None:
        self.config = config
        self.database = database
        self.secret_file = secret_file
        self.profile = config.policy.load()
        self._stores: list[Store] = []
        self._web = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def configured(self) -> bool:
        return bool(self.config.web.listen or self.config.notify.gateway_url or self.config.upstream.url)

    def _store(self) -> Store:
        store = Store.open(self.database, self.profile, load_or_create_key(self.secret_file), check_same_thread=False,
                           heads_file=self.config.chain.heads_file)
        self._stores.append(store)
        return store

    def start(self) -> None:
        if self.config.web.listen:
            self._start_web()
        jobs = self._jobs()
        if jobs:
            self._thread = threading.Thread(target=self._loop, args=(jobs,), name="channels", daemon=True)
            self._thread.start()

    def _start_web(self) -> None:
        from hcp.collector.web import PageSettings, RatingPage, ServerLimits, WebServer, create_app

        key = self.config.receipt.load_key()
        if key is None:
            raise ConfigError("web.listen: the rating page needs the receipt key shared with the terminals "
                              "(receipt.key_file, or receipt.key in the secrets file)")
        host, _, port = self.config.web.listen.rpartition(":")
        web = self.config.web
        settings = PageSettings(key, dict(web.hall_names), dict(web.window_names), web.limit_per_address,
                                web.limit_per_case, web.max_body_bytes)
        self._web = WebServer(create_app(RatingPage(self._store(), settings)), host, int(port),
                              list(web.trusted_proxies), ServerLimits(web.max_connections, web.max_header_bytes))
        self._web.start()
        log.info("rating page listening on %s", self.config.web.listen)

    def _jobs(self) -> list[tuple[float, object]]:
        jobs: list[tuple[float, object]] = []
        if self.config.notify.gateway_url:
            jobs.append((self.config.notify.interval_s, self._notify_job()))
        if self.config.upstream.url:
            jobs.append((self.config.upstream.interval_s, self._forwarder()))
        return jobs

    def _notify_job(self):
        from hcp.collector.notify import HttpSmsGateway, NotifyJob, NotifySettings
        from hcp.ui.receipt import ReceiptMaker

        notify, receipt = self.config.notify, self.config.receipt
        token = notify.gateway_token.get_secret_value() if notify.gateway_token else ""
        key = receipt.load_key()
        maker = ReceiptMaker(receipt.url_template, key, receipt.valid_s) if key else None
        settings = NotifySettings(dict(notify.duty_managers), maker, dict(self.config.web.hall_names),
                                  notify.max_attempts)
        return NotifyJob(self._store(), HttpSmsGateway(notify.gateway_url or "", token), settings)

    def _forwarder(self):
        from hcp.collector.upstream import Backoff, Forwarder

        upstream = self.config.upstream
        backoff = Backoff(upstream.backoff_base_s, upstream.backoff_cap_s, upstream.max_attempts)
        store = self._store()
        return Forwarder(store, upstream_adapter(self.config, store), backoff=backoff)

    def _loop(self, jobs: list[tuple[float, object]]) -> None:
        due = [0.0] * len(jobs)
        clock = 0.0
        while not self._stop.wait(1.0 if clock else 0):
            clock += 1.0
            for number, (interval, job) in enumerate(jobs):
                if clock >= due[number]:
                    due[number] = clock + interval
                    self._run(job)

    @staticmethod
    def _run(job) -> None:
        try:
            with database_errors():  # a read outside a transaction too
                job.run(now_cst())  # type: ignore[attr-defined]
        except DatabaseError as err:
            log.error("%s failed: %s; it runs again next time", type(job).__name__, err)

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(30)
        web, self._web = self._web, None
        if web is not None:
            web.close()
        stores, self._stores = self._stores, []
        for store in stores:
            store.close()

    def __enter__(self) -> ChannelServices:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def upstream_adapter(config: CollectorConfig, store: Store | None = None):
    """The adapter the ``[upstream]`` section describes: a preset's format, or hcp's own JSON with a code table.

    ``store`` opens the sealed rater identities for real-name presets; ConfigError names a setting the
    preset needs and lacks.
    """
    from hcp.collector.upstream import HttpJsonAdapter
    from hcp.collector.upstream_codes import load_table
    from hcp.collector.upstream_preset import load_preset

    upstream = config.upstream
    preset = load_preset(upstream.code_table, upstream.code_table_file)
    signer = _signer(upstream)
    if preset is not None:
        return _preset_adapter(upstream, preset, signer, store)
    table = load_table(upstream.code_table, upstream.code_table_file)
    return HttpJsonAdapter(upstream.url or "", table, signer, dict(upstream.fields), upstream.reason_field,
                           upstream.timeout_s)


def _signer(upstream):
    from hcp.collector.upstream_sign import HmacSigner, Sm2Signer

    if upstream.signing == "hmac" and upstream.hmac_secret is not None:
        return HmacSigner(upstream.hmac_secret.get_secret_value().encode(), upstream.key_id)
    if upstream.signing == "sm2" and upstream.sm2_private_key is not None:
        return Sm2Signer(upstream.sm2_private_key.get_secret_value(), key_id=upstream.key_id)
    return None


def _preset_adapter(upstream, preset, signer, store: Store | None):
    from hcp.collector.upstream_format import PresetAdapter, PresetSettings
    from hcp.collector.upstream_identity import Identities

    problem = preset_problem(preset, upstream)
    if problem:
        raise ConfigError(problem)
    settings = PresetSettings(upstream.url or "", upstream.app_id or "", upstream.data_source or "",
                              upstream.area_code or "", upstream.timeout_s)
    identities = Identities(store) if preset.identity and store is not None else None
    return PresetAdapter(preset, settings, signer, identities)


def preset_problem(preset, upstream) -> str:
    """What the ``[upstream]`` section lacks for ``preset``, naming the key; '' when nothing."""
    name = preset.name
    if preset.signing_alg and upstream.signing != preset.signing_alg:
        return f"upstream.signing: preset {name} is signed with {preset.signing_alg}; set signing = " \
            f"\"{preset.signing_alg}\""
    if preset.identity and upstream.signing == "none":
        return f"upstream.signing: preset {name} sends the rater's identity; it goes only over a signed channel"
    if preset.envelope.style == "signed" and not upstream.app_id:
        return f"upstream.app_id: preset {name} sends the app id in its signed envelope"
    if "data_source" in preset.fields.values() and not upstream.data_source:
        return f"upstream.data_source: preset {name} sends the platform's three-digit dataSource code"
    return ""
