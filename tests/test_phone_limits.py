"""The phone page's request budgets, over real HTTP to the real uvicorn server."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import timedelta
from email.message import Message
from pathlib import Path

import pytest

from hcp.collector.web import PageSettings, RatingPage, WebServer, create_app
from hcp.config.channels import DEFAULT_TRUSTED_PROXIES
from hcp.config.schema import CollectorConfig, load_config
from hcp.exc import ConfigError
from hcp.ui.receipt import make_token
from tests.channel_support import NOW, RECEIPT_KEY, case, open_store

CONFIG = Path(__file__).parent.parent / "config"


def serve(tmp_path: Path, *, per_address: str = "1000/minute", per_case: str = "1000/minute",
          trusted_proxies: Sequence[str] = DEFAULT_TRUSTED_PROXIES) -> tuple[WebServer, object]:
    store = open_store(tmp_path)
    store.add_cases([case("C1"), case("C2")], NOW)
    settings = PageSettings(RECEIPT_KEY, limit_per_address=per_address, limit_per_case=per_case)
    server = WebServer(create_app(RatingPage(store, settings, clock=lambda: NOW)), "127.0.0.1", 0, trusted_proxies)
    server.start()
    return server, store


def get(server: WebServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, Message, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers, answer.read().decode()


def page(case_id: str, *, valid: bool = True) -> str:
    token = make_token(RECEIPT_KEY if valid else b"not-the-receipt-key-0123456789ab", case_id,
                       int((NOW + timedelta(days=7)).timestamp()))
    return f"/r/{case_id}?t={token}"


@pytest.fixture
def running(tmp_path, request):
    server, store = serve(tmp_path, **request.param)
    yield server
    server.close()
    store.close()


@pytest.mark.parametrize("running", [{"per_address": "5/minute"}], indirect=True)
def test_one_address_over_its_budget_is_told_in_chinese_when_to_come_back(running, caplog):
    with caplog.at_level(logging.WARNING, logger="hcp.collector.web"):
        assert [get(running, page("C1", valid=False))[0] for _ in range(5)] == [403] * 5
        status, headers, body = get(running, page("C1"))
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert "请求过于频繁" in body and f"请{headers['Retry-After']}秒后再试" in body
    assert get(running, "/healthz")[0] == 200  # the health check is never budgeted
    assert "per address" in caplog.text and "127.0.0.1" not in caplog.text  # counted, never logged


@pytest.mark.parametrize("running", [{"per_case": "3/minute"}], indirect=True)
def test_only_a_genuine_receipt_counts_against_its_case(running):
    """Made-up links for C1 are refused as invalid, never throttled, and do not use up C1's budget."""
    assert {get(running, page("C1", valid=False))[0] for _ in range(10)} == {403}
    assert [get(running, page("C1"))[0] for _ in range(4)] == [200, 200, 200, 429]
    assert get(running, page("C2"))[0] == 200  # another case has its own budget


@pytest.mark.parametrize("running", [{"per_address": "2/minute", "trusted_proxies": ["127.0.0.1"]}], indirect=True)
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(running):
    first, second = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.9"}
    assert [get(running, page("C1"), first)[0] for _ in range(3)] == [200, 200, 429]
    assert get(running, page("C1"), second)[0] == 200


@pytest.mark.parametrize("running", [{"per_address": "2/minute", "trusted_proxies": []}], indirect=True)
def test_a_client_cannot_dodge_its_budget_by_writing_x_forwarded_for(running):
    statuses = [get(running, page("C1"), {"X-Forwarded-For": f"203.0.113.{n}"})[0] for n in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize(("line", "key", "words"), [
    ('limit_per_address = "lots"', "web.limit_per_address", "not a rate"),
    ('limit_per_case = "0/minute"', "web.limit_per_case", "allows no request"),
    ('trusted_proxies = ["10.20.0.5/24"]', "web.trusted_proxies", "not an IP address or network"),
])
def test_budget_mistakes_name_the_key(tmp_path, line, key, words):
    path = tmp_path / "collector.toml"
    path.write_text((CONFIG / "collector.example.toml").read_text() + f'\n[web]\nlisten = "0.0.0.0:8080"\n{line}\n')
    with pytest.raises(ConfigError) as err:
        load_config(CollectorConfig, path)
    assert f"key {key}" in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("running", [{"per_address": "2/minute", "trusted_proxies": ["127.0.0.1"]}], indirect=True)
def test_an_ipv6_client_is_counted_by_its_64_so_rotating_addresses_does_not_help(running):
    statuses = [get(running, page("C1"), {"X-Forwarded-For": f"2001:db8:1:2::{n:x}"})[0] for n in range(1, 4)]
    assert statuses == [200, 200, 429]
    assert get(running, page("C1"), {"X-Forwarded-For": "2001:db8:1:3::1"})[0] == 200  # another /64
