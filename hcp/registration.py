"""Registration requests: how a terminal provisioned in a hall gets bound to its hall and window.

A technician at the terminal usually cannot reach the collector's database,
and a terminal must not be able to bind itself anywhere over MQTT (the binding
is what stops a terminal from rating for another window). So ``hcp provision``
writes a *registration request*: a small JSON file with the device id, hall
and window, signed with the terminal's own private key and carrying its
certificate. The technician brings it to the operator (USB stick, e-mail,
ticket), who runs ``hcp devices import FILE --ca ca.crt``: the certificate
must be issued by the device CA, be valid and not revoked, have CN = the
device id, and the signature must match; only then is the binding written.
The operator still decides: importing is a deliberate act, and a request
cannot bind a device id other than its certificate's.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hcp.pki import PkiError, certificate_cn


@dataclass(frozen=True)
class Binding:
    """A terminal bound to a hall and a window."""

    device_id: str
    hall_id: str
    window_id: str


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_request(binding: Binding, cert_file: Path, key_file: Path) -> dict:
    """A signed registration request for ``binding``; the certificate's CN must be its device id."""
    if certificate_cn(cert_file) != binding.device_id:
        raise PkiError(f"{cert_file}: its CN is {certificate_cn(cert_file)}, not {binding.device_id}")
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_file}: not an EC private key from hcp pki")
    payload = {"v": 1, "device_id": binding.device_id, "hall_id": binding.hall_id, "window_id": binding.window_id,
               "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "nonce": uuid.uuid4().hex}
    signature = key.sign(_canonical(payload), ec.ECDSA(hashes.SHA256()))
    return {"request": payload, "signature": base64.b64encode(signature).decode(),
            "certificate": Path(cert_file).read_text("ascii")}


def verify_request(document: dict, ca_file: Path, crl_file: Path | None = None) -> Binding:
    """The binding a request asks for, once its certificate and signature check out; PkiError otherwise."""
    try:
        payload, signature = document["request"], base64.b64decode(document["signature"])
        cert = x509.load_pem_x509_certificate(document["certificate"].encode())
        binding = Binding(payload["device_id"], payload["hall_id"], payload["window_id"])
    except (KeyError, TypeError, ValueError) as err:
        raise PkiError(f"not a registration request ({err})") from None
    _check_certificate(cert, binding.device_id, ca_file, crl_file)
    try:
        cert.public_key().verify(signature, _canonical(payload), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
    except InvalidSignature:
        raise PkiError("the request's signature does not match its certificate") from None
    return binding


def _check_certificate(cert: x509.Certificate, device_id: str, ca_file: Path, crl_file: Path | None) -> None:
    ca = x509.load_pem_x509_certificate(Path(ca_file).read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise PkiError("the request's certificate was not issued by this device CA") from None
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise PkiError("the request's certificate is expired or not yet valid")
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not cns or cns[0].value != device_id:
        raise PkiError(f"the request is for {device_id} but its certificate is for "
                       f"{cns[0].value if cns else 'no name'}")
    if crl_file is not None and Path(crl_file).exists():
        crl = x509.load_pem_x509_crl(Path(crl_file).read_bytes())
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise PkiError(f"the certificate of {device_id} is revoked")
