"""Request signing for the provincial platform: pluggable, HMAC-SHA256 by default, SM2 where required.

A signer turns a request body into the headers that authenticate it. Each
signs ``timestamp \\n nonce \\n body`` so a captured request cannot be replayed
with another body or, by a platform that checks the timestamp, much later.
gmssl (SM2/SM3) is imported only by the SM2 signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Protocol


class Signer(Protocol):
    """Headers that authenticate one request body."""

    def headers(self, body: bytes) -> dict[str, str]: ...


def signed_text(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What every signer signs."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body


def _stamp() -> tuple[str, str]:
    return str(int(time.time())), secrets.token_hex(8)


@dataclass(frozen=True)
class HmacSigner:
    """HMAC-SHA256 with a shared secret; the signature base64 in ``X-Signature``."""

    secret: bytes = field(repr=False)
    key_id: str = "hcp"

    def headers(self, body: bytes) -> dict[str, str]:
        timestamp, nonce = _stamp()
        mac = hmac.new(self.secret, signed_text(timestamp, nonce, body), hashlib.sha256).digest()
        return {"X-Key-Id": self.key_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Sign-Alg": "HMAC-SHA256",
                "X-Signature": base64.b64encode(mac).decode()}


@dataclass(frozen=True)
class Sm2Signer:
    """SM2 with SM3 (GB/T 32918, GM/T 0003) over the same text; keys as hex, signature as hex."""

    private_key: str = field(repr=False)
    public_key: str = ""
    key_id: str = "hcp"

    def _crypt(self):
        from gmssl import sm2

        public = self.public_key or sm2_public_key(self.private_key)
        return sm2.CryptSM2(private_key=self.private_key, public_key=public)

    def sign(self, text: bytes) -> str:
        """The SM2-SM3 signature of ``text``, hex (for envelopes that sign their own fields)."""
        return self._crypt().sign_with_sm3(text)

    def headers(self, body: bytes) -> dict[str, str]:
        timestamp, nonce = _stamp()
        signature = self.sign(signed_text(timestamp, nonce, body))
        return {"X-Key-Id": self.key_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Sign-Alg": "SM2-SM3",
                "X-Signature": signature}


def sm2_public_key(private_key: str) -> str:
    """The SM2 public key (hex, x||y) of a private key (hex)."""
    from gmssl import sm2

    crypt = sm2.CryptSM2(private_key=private_key, public_key="")
    return crypt._kg(int(private_key, 16), sm2.default_ecc_table["g"])


def sm2_verify(public_key: str, signature: str, text: bytes) -> bool:
    """True when ``signature`` (hex) is ``public_key``'s SM2-SM3 signature of ``text``; for tests and receivers."""
    from gmssl import sm2

    return bool(sm2.CryptSM2(private_key="", public_key=public_key).verify_with_sm3(signature, text))
