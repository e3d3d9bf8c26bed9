"""The dynamic receipt: a signed, expiring URL for rating a case later on a phone.

Token format (see ``docs/receipt-token.md``)::

    token = f"{expiry}.{sig}"
    expiry = Unix seconds (UTC) after which the token is refused, decimal digits
    sig = base64url(HMAC-SHA256(key, f"hcp-receipt-v1|{case_id}|{expiry}")), unpadded, first 22 chars

22 base64url characters keep 132 bits of the MAC: far beyond guessing, while the
QR stays small enough (version 5-6) to scan from a phone at arm's length. The
label ``hcp-receipt-v1`` keeps these MACs apart from anything else the same key
might ever sign. The key never leaves this module's callers: nothing here logs it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from urllib.parse import quote

from hcp.ui.exc import TokenError, TokenProblem

LABEL = "hcp-receipt-v1"
SIG_CHARS = 22
_TOKEN = re.compile(rf"(\d{{1,12}})\.([A-Za-z0-9_-]{{{SIG_CHARS}}})")


def signature(key: bytes, case_id: str, expiry: int) -> str:
    """The token's signature part for ``case_id`` valid until ``expiry``."""
    message = f"{LABEL}|{case_id}|{expiry}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")[:SIG_CHARS]


def make_token(key: bytes, case_id: str, expiry: int) -> str:
    """A token for ``case_id`` that expires at Unix time ``expiry``."""
    if not case_id:
        raise ValueError("a receipt needs a case id")
    return f"{int(expiry)}.{signature(key, case_id, int(expiry))}"


def verify(token: str, case_id: str, key: bytes, now: float) -> int:
    """Check ``token`` for ``case_id`` at Unix time ``now``; return its expiry or raise :class:`TokenError`.

    The signature is checked before the expiry, so a forged token is never
    reported as merely expired.
    """
    match = _TOKEN.fullmatch(token or "")
    if match is None:
        raise TokenError(TokenProblem.MALFORMED, "expected <expiry digits>.<22 base64url characters>")
    expiry = int(match.group(1))
    if not hmac.compare_digest(match.group(2), signature(key, case_id, expiry)):
        raise TokenError(TokenProblem.BAD_SIGNATURE, "not signed by this scheme's key for this case")
    if now >= expiry:
        raise TokenError(TokenProblem.EXPIRED, f"expired at Unix time {expiry}")
    return expiry


@dataclass(frozen=True)
class ReceiptMaker:
    """Builds receipt URLs from the configured template, key and validity."""

    url_template: str
    key: bytes = field(repr=False)  # a secret: keep it out of logs and tracebacks
    valid_s: int = 7 * 86400

    def url(self, case_id: str, now: float) -> str:
        """The receipt URL for ``case_id``, valid for ``valid_s`` from ``now``."""
        token = make_token(self.key, case_id, int(now) + self.valid_s)
        return self.url_template.format(case_id=quote(case_id, safe=""), token=token)


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code modules for ``text`` (True: dark), without the quiet zone.

    Medium error correction survives a scratched or smudged panel; qrcode is
    imported here so modules that never draw a receipt don't pay for it.
    """
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(text)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]
