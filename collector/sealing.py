"""Sealed applicant fields: a business system encrypts ``applicant_id`` and ``applicant_phone`` to the collector.

Case records wait in the broker (its persistence file, while the collector is
offline) and pass through it; sealed, the person's ID and phone number are
readable only by the collector. The scheme is HPKE (RFC 9180) in base mode,
single-shot, with the suite of the RFC's first test vectors (Appendix A.1):
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, from ``cryptography``.

* ``info`` = UTF-8 of ``hcp-seal-v1:{field}:{case_id}``, ``field`` being
  ``applicant_id`` or ``applicant_phone``: a sealed value opens only in the
  field and the case it was sealed for.
* ``aad`` empty; the plaintext is the UTF-8 of the value as the plain field
  would carry it.
* The wire value (``applicant_id_sealed``, ``applicant_phone_sealed``) is
  standard base64 (RFC 4648 section 4, padded) of ``enc`` (32 bytes, the
  sender's ephemeral X25519 public key) followed by the AEAD ciphertext and tag.

The collector's X25519 key pair lives next to the pseudonym key
(``collector-seal.key``, PKCS#8 PEM, mode 0600); ``hcp seal-key`` prints the
public key for the business systems. docs/protocol.md has a test vector.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from pydantic import ValidationError

from hcp.collector.exc import SealError, SecretKeyError
from hcp.protocol import CaseRecord, CaseResult

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
FIELDS = ("applicant_id", "applicant_phone")
SEAL_KEY_NAME = "collector-seal.key"


def seal_key_path(secret_file: Path) -> Path:
    """Where the seal key pair lives: beside the pseudonym key ``secret_file``."""
    return Path(secret_file).with_name(SEAL_KEY_NAME)


def info(field: str, case_id: str) -> bytes:
    """HPKE ``info`` binding a sealed value to its field and case."""
    return f"hcp-seal-v1:{field}:{case_id}".encode()


def seal(value: str, field: str, case_id: str, public_key: bytes) -> str:
    """What a business system does: ``value`` sealed to the collector's raw 32-byte X25519 ``public_key``."""
    recipient = x25519.X25519PublicKey.from_public_bytes(public_key)
    return base64.b64encode(SUITE.encrypt(value.encode(), recipient, info=info(field, case_id))).decode("ascii")


class SealKey:
    """The collector's X25519 key pair for opening sealed fields."""

    def __init__(self, private_key: x25519.X25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def load_or_create(cls, path: Path) -> SealKey:
        """The key pair in ``path``; a new one (mode 0600) when the file is missing."""
        path = Path(path)
        if not path.exists():
            _create(path)
        try:
            mode = path.stat().st_mode
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as err:
            raise SecretKeyError(f"{path}: cannot read the seal key ({err})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretKeyError(f"{path}: seal key readable by others (mode {mode & 0o777:o}); chmod 600 it")
        if not isinstance(key, x25519.X25519PrivateKey):
            raise SecretKeyError(f"{path}: not an X25519 private key")
        return cls(key)

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key business systems seal to."""
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_pem(self) -> str:
        """The public key as SubjectPublicKeyInfo PEM (Java: X509EncodedKeySpec, algorithm XDH)."""
        return self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def open(self, sealed: str, field: str, case_id: str) -> str:
        """The value sealed in ``sealed``; SealError naming ``{field}_sealed`` when it does not open."""
        try:
            data = base64.b64decode(sealed, validate=True)
            return SUITE.decrypt(data, self._key, info=info(field, case_id)).decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            raise SealError(f"{field}_sealed: does not open with this collector's seal key (sealed to another "
                            "key, for another case or field, or damaged)") from None


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = x25519.X25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption())
    try:  # O_EXCL: two collectors starting together keep the first key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())


def open_case(record: CaseRecord, key: SealKey) -> CaseRecord:
    """``record`` with its sealed fields opened into the plain ones; SealError naming the field otherwise."""
    update: dict[str, str | None] = {}
    for field in FIELDS:
        sealed = getattr(record, f"{field}_sealed")
        if sealed is None:
            continue
        if getattr(record, field) is not None:
            raise SealError(f"{field}: given both plain and sealed ({field}_sealed); send one of them")
        update[field], update[f"{field}_sealed"] = key.open(sealed, field, record.case_id), None
    if not update:
        return record
    try:
        return CaseRecord.model_validate({**record.model_dump(), **update})
    except ValidationError as err:  # the value is not named: it is the very thing being kept private
        field = str(err.errors()[0]["loc"][0])
        raise SealError(f"{field}_sealed: the opened value is not a valid {field}") from None


def open_cases(records: Sequence[CaseRecord], key: SealKey) -> tuple[list[CaseRecord], list[CaseResult]]:
    """The records ready to store (sealed fields opened), and a rejection for each that could not be opened."""
    opened, rejected = [], []
    for record in records:
        try:
            opened.append(open_case(record, key))
        except SealError as err:
            rejected.append(CaseResult(case_id=record.case_id, outcome="rejected", reason=str(err)))
    return opened, rejected
