"""Receipt tokens: the documented example, round trips, and each way a token is refused."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import ValidationError

from hcp.exc import ConfigError
from hcp.ui.exc import TokenError, TokenProblem
from hcp.ui.receipt import ReceiptMaker, make_token, verify
from hcp.ui.settings import ReceiptSection

DOC = Path(__file__).resolve().parent.parent / "docs" / "receipt-token.md"
# The worked example of docs/receipt-token.md.
KEY = b"example-key-0123456789abcdef-not-secret"
CASE = "11410100MB1234567X-2026-000123"
EXPIRY = 1767830400


def test_documented_example_recomputes() -> None:
    text = DOC.read_text("utf-8")
    token = make_token(KEY, CASE, EXPIRY)
    assert f"`{token}`" in text
    url = f"https://hcp.example.gov.cn/r/{CASE}?t={token}"
    assert url in text
    assert ReceiptMaker("https://hcp.example.gov.cn/r/{case_id}?t={token}", KEY, 7 * 86400).url(
        CASE, EXPIRY - 7 * 86400) == url
    for name in (KEY.decode(), CASE, str(EXPIRY)):
        assert name in text


def test_token_shape() -> None:
    assert re.fullmatch(r"\d+\.[A-Za-z0-9_-]{22}", make_token(KEY, CASE, EXPIRY))


def test_verify_accepts_until_expiry() -> None:
    token = make_token(KEY, CASE, EXPIRY)
    assert verify(token, CASE, KEY, now=EXPIRY - 1) == EXPIRY


@pytest.mark.parametrize(("token", "case", "key", "now", "problem"), [
    (make_token(KEY, CASE, EXPIRY), CASE, KEY, EXPIRY, TokenProblem.EXPIRED),
    (make_token(KEY, CASE, EXPIRY), "another-case", KEY, 0, TokenProblem.BAD_SIGNATURE),
    (make_token(KEY, CASE, EXPIRY), CASE, b"another-key-0123456789", 0, TokenProblem.BAD_SIGNATURE),
    (f"{EXPIRY + 1}." + make_token(KEY, CASE, EXPIRY).split(".")[1], CASE, KEY, 0, TokenProblem.BAD_SIGNATURE),
    # A forged token past its expiry is reported as forged, not as merely expired.
    (f"{EXPIRY}.AAAAAAAAAAAAAAAAAAAAAA", CASE, KEY, EXPIRY + 10, TokenProblem.BAD_SIGNATURE),
    ("", CASE, KEY, 0, TokenProblem.MALFORMED),
    ("1767830400", CASE, KEY, 0, TokenProblem.MALFORMED),
    ("abc.AAAAAAAAAAAAAAAAAAAAAA", CASE, KEY, 0, TokenProblem.MALFORMED),
    (make_token(KEY, CASE, EXPIRY)[:-1], CASE, KEY, 0, TokenProblem.MALFORMED),
    (make_token(KEY, CASE, EXPIRY) + "=", CASE, KEY, 0, TokenProblem.MALFORMED),
])
def test_verify_refuses(token: str, case: str, key: bytes, now: float, problem: TokenProblem) -> None:
    with pytest.raises(TokenError) as caught:
        verify(token, case, key, now)
    assert caught.value.problem is problem
    assert isinstance(caught.value, ValueError)


def test_url_quotes_the_case_id() -> None:
    maker = ReceiptMaker("https://x.example/r/{case_id}?t={token}", KEY, 60)
    url = maker.url("a/b c", 1000)
    assert url.startswith(f"https://x.example/r/{quote('a/b c', safe='')}?t=")
    verify(url.split("t=")[1], "a/b c", KEY, 1000)


def test_key_never_shown() -> None:
    section = ReceiptSection(key="super-secret-value-1234567890")
    assert "super-secret" not in repr(section) and "super-secret" not in str(section.model_dump())
    assert "super-secret" not in repr(ReceiptMaker("{case_id}{token}", section.load_key() or b"", 60))


def test_key_file_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "receipt.key"
    path.write_text("0123456789abcdef0123456789abcdef\n")
    assert ReceiptSection(key_file=path).load_key() == b"0123456789abcdef0123456789abcdef"
    assert ReceiptSection(key_file=path, enabled=False).load_key() is None
    assert ReceiptSection().load_key() is None
    with pytest.raises(ConfigError, match="too short"):
        ReceiptSection(key="short").load_key()
    with pytest.raises(ConfigError, match="cannot read"):
        ReceiptSection(key_file=tmp_path / "missing").load_key()
    with pytest.raises(ValidationError, match=r"\{token\}"):
        ReceiptSection(url_template="https://x.example/{case_id}")
