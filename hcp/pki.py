"""The fleet's certificates: a device CA, one certificate per terminal, revocation, the broker's.

Layout of a PKI directory (the operator keeps it on the collector, off any
terminal)::

    ca.crt  ca.key          the device CA (key mode 0600)
    crl.pem                 revoked certificates; Mosquitto's ``crlfile``
    broker.crt broker.key   the broker's server certificate
    issued/NAME.crt .key    one client certificate per terminal or service
    index.json              serial -> name, revoked_at (the CRL is built from it)

A terminal's certificate has CN = its device id; with Mosquitto's
``use_identity_as_username`` the CN is the MQTT username the ACL's ``%u``
patterns use, and with ``use_username_as_clientid`` also the client id, so no
client can take another's connection or session. Service identities (collector, business, operator) are names the
ACL grants more: they can never be issued to a terminal.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hcp.exc import HcpError
from hcp.protocol import IDENT_CHARS

#: Identities the ACL gives rights beyond one device's topics.
SERVICE_NAMES = frozenset({"collector", "business", "operator"})
#: More collectors of one share group (docs/scaling.md): collector-2, collector-b ... each its own CN and client id.
_MORE_COLLECTORS = re.compile(r"collector-[A-Za-z0-9_.:-]{1,54}")
_NAME = re.compile(f"[{IDENT_CHARS}]{{1,64}}")
_CA_DAYS = 20 * 365
_CRL_DAYS = 365
#: Warn this long before the CRL's next-update date (hcp-crl.timer re-signs it monthly).
CRL_WARN_DAYS = 30


class PkiError(HcpError, ValueError):
    """A PKI directory, name or certificate that cannot be used as asked."""


@dataclass(frozen=True)
class Issued:
    """One client certificate the CA issued."""

    name: str
    serial: int
    kind: str  # device | service | broker
    revoked_at: str | None = None
    not_after: dt.datetime | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write a key: created 0600 from the start, so it is never readable by others, even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hcp"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Pki:
    """A PKI directory; ``init()`` creates the CA, the other methods need it."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    # -- paths --------------------------------------------------------------

    @property
    def ca_cert_path(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def crl_path(self) -> Path:
        return self.dir / "crl.pem"

    def cert_path(self, name: str) -> Path:
        return self.dir / "issued" / f"{name}.crt"

    def key_path(self, name: str) -> Path:
        return self.dir / "issued" / f"{name}.key"

    # -- the CA -------------------------------------------------------------

    def init(self, common_name: str = "hcp device CA") -> None:
        """Create the CA, an empty CRL and the index; refuses to overwrite an existing CA."""
        if self.ca_cert_path.exists():
            raise PkiError(f"{self.ca_cert_path} exists: this directory already has a CA")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=_CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write_private(self.dir / "ca.key", _key_pem(key))
        self.ca_cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._save_index({})
        self.write_crl()

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        try:
            cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
            key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        except FileNotFoundError:
            raise PkiError(f"{self.dir}: no CA here; run 'hcp pki init --dir {self.dir}' first") from None
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    # -- issuing ------------------------------------------------------------

    def issue_device(self, device_id: str, days: int = 10 * 365) -> Path:
        """A terminal's client certificate, CN = device id; returns the certificate's path."""
        if is_service_name(device_id):
            raise PkiError(f"{device_id!r} is a service identity and cannot be a terminal's id")
        return self._issue_client(device_id, "device", days)

    def issue_service(self, name: str, days: int = 10 * 365) -> Path:
        """A client certificate for a collector, the business system or the operator's tools.

        Each collector of a share group has its own (``collector``, ``collector-2`` ...): the broker makes the
        CN the client id, and two collectors on one client id would knock each other off.
        """
        if not is_service_name(name):
            raise PkiError(f"service must be one of {', '.join(sorted(SERVICE_NAMES))} or collector-<name> (one "
                           f"per collector of a share group), got {name!r}")
        return self._issue_client(name, "service", days)

    def collectors(self) -> list[str]:
        """The names of the collectors' valid certificates besides ``collector``, sorted."""
        return sorted({e["name"] for e in self._index().values()
                       if not e.get("revoked_at") and _MORE_COLLECTORS.fullmatch(e["name"])})

    def _issue_client(self, name: str, kind: str, days: int) -> Path:
        if not _NAME.fullmatch(name):
            raise PkiError(f"{name!r}: expected 1-64 of A-Z a-z 0-9 . _ : -")
        index = self._index()
        if any(e["name"] == name and not e.get("revoked_at") for e in index.values()):
            raise PkiError(f"{name} already has a valid certificate; revoke it first to issue a new one")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign(self._builder(name, key, days).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        self._store(name, key, cert)
        index[str(cert.serial_number)] = {"name": name, "kind": kind, "revoked_at": None}
        self._save_index(index)
        return self.cert_path(name)

    def issue_broker(self, hostnames: list[str], days: int = 10 * 365) -> Path:
        """The broker's server certificate for its host names and addresses; written as broker.crt/.key."""
        if not hostnames:
            raise PkiError("the broker certificate needs at least one host name or address")
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = self._sign(self._builder(hostnames[0], key, days)
                          .add_extension(x509.SubjectAlternativeName(names), critical=False)
                          .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        _write_private(self.dir / "broker.key", _key_pem(key))
        (self.dir / "broker.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return self.dir / "broker.crt"

    def _builder(self, cn: str, key: ec.EllipticCurvePrivateKey, days: int) -> x509.CertificateBuilder:
        ca_cert, _ = self._ca()
        now = _now()
        return (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        _, ca_key = self._ca()
        return builder.sign(ca_key, hashes.SHA256())

    def _store(self, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        _write_private(self.key_path(name), _key_pem(key))
        self.cert_path(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    # -- revocation ---------------------------------------------------------

    def revoke(self, name: str) -> int:
        """Revoke every valid certificate of ``name`` and rewrite the CRL; returns how many."""
        index = self._index()
        hits = [serial for serial, e in index.items() if e["name"] == name and not e.get("revoked_at")]
        if not hits:
            raise PkiError(f"{name} has no valid certificate to revoke")
        for serial in hits:
            index[serial]["revoked_at"] = _now().isoformat(timespec="seconds")
        self._save_index(index)
        self.write_crl()
        return len(hits)

    def write_crl(self, days: int = _CRL_DAYS) -> Path:
        """Sign a fresh CRL (also to renew it before its next-update date)."""
        ca_cert, ca_key = self._ca()
        now = _now()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
                   .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=days)))
        for serial, entry in self._index().items():
            if entry.get("revoked_at"):
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(int(serial))
                    .revocation_date(dt.datetime.fromisoformat(entry["revoked_at"])).build())
        self.crl_path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return self.crl_path

    def issued(self) -> list[Issued]:
        """Every client certificate issued, oldest name first, and the broker's server certificate last."""
        clients = sorted((Issued(e["name"], int(s), e["kind"], e.get("revoked_at"), self._not_after(e["name"]))
                          for s, e in self._index().items()), key=lambda i: (i.name, i.revoked_at or ""))
        broker = self.dir / "broker.crt"
        if not broker.exists():
            return clients
        cert = _load_certificate(broker)
        return [*clients, Issued(certificate_cn(broker), cert.serial_number, "broker", None, cert.not_valid_after_utc)]

    def _not_after(self, name: str) -> dt.datetime | None:
        try:
            return _load_certificate(self.cert_path(name)).not_valid_after_utc
        except PkiError:
            return None  # an old certificate replaced by a newer one of the same name

    def crl_next_update(self) -> dt.datetime:
        """When the CRL expires (Mosquitto refuses every client after it)."""
        return crl_next_update(self.crl_path)

    # -- the index ----------------------------------------------------------

    def _index(self) -> dict[str, dict]:
        path = self.dir / "index.json"
        try:
            return json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise PkiError(f"{self.dir}: no CA here; run 'hcp pki init --dir {self.dir}' first") from None

    def _save_index(self, index: dict[str, dict]) -> None:
        tmp = self.dir / "index.json.tmp"
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, self.dir / "index.json")


def is_service_name(name: str) -> bool:
    """Whether ``name`` is a service identity (never a terminal's): the services, and collector-<name>."""
    return name in SERVICE_NAMES or bool(_MORE_COLLECTORS.fullmatch(name))


def collector_acl(acl: str, names: list[str]) -> str:
    """``acl`` with the ``user collector`` block repeated for each of ``names`` (more collectors of a share group)."""
    lines = acl.splitlines()
    start = lines.index("user collector")
    end = next((n for n in range(start, len(lines)) if not lines[n].strip()), len(lines))
    grants = lines[start + 1:end]
    blocks = [f"\n# Collector {name} of the share group (hcp pki service {name}): the same rights.\nuser {name}\n"
              + "\n".join(grants) + "\n" for name in names]
    return acl + "".join(blocks)


def mqtt_client_id(cert_file: Path | None, default: str) -> str:
    """The MQTT client id of a client holding ``cert_file``: its CN, which is what the production broker
    uses whatever the client asks (``use_username_as_clientid``); ``default`` without a certificate."""
    return certificate_cn(cert_file) if cert_file is not None else default


def mosquitto_config(pki_dir: Path, out_dir: Path, listener: str = "8883") -> list[Path]:
    """Write Mosquitto's hcp.conf, hcp-tls.conf and hcp.acl into ``out_dir``; return their paths.

    The shipped files (config/mosquitto/) name /etc/hcp/pki and /etc/mosquitto/conf.d; here the TLS
    listener points at ``pki_dir`` (ca.crt, broker.crt, broker.key, crl.pem) and at the ACL written
    beside it, and listens on ``listener`` ("PORT" or "PORT ADDRESS", Mosquitto's notation).
    """
    from importlib import resources

    shipped = resources.files("hcp.config") / "mosquitto"
    pki_dir, out_dir = Path(pki_dir).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    acl = out_dir / "hcp.acl"
    tls = (shipped / "hcp-tls.conf").read_text("utf-8")
    tls = (tls.replace("/etc/hcp/pki/", f"{pki_dir}/").replace("/etc/mosquitto/conf.d/hcp.acl", str(acl))
           .replace("listener 8883", f"listener {listener}"))
    more = Pki(pki_dir).collectors() if (pki_dir / "index.json").exists() else []
    acl_text = collector_acl((shipped / "hcp.acl").read_text("utf-8"), more)
    written = {"hcp.conf": (shipped / "hcp.conf").read_text("utf-8"), "hcp-tls.conf": tls, "hcp.acl": acl_text}
    for name, text in written.items():
        (out_dir / name).write_text(text, "utf-8")
    return [out_dir / name for name in written]


def _load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as err:
        raise PkiError(f"{path}: not a readable PEM certificate ({err})") from None


def crl_next_update(path: Path) -> dt.datetime:
    """The next-update date of the PEM CRL at ``path``: Mosquitto refuses every client after it."""
    try:
        crl = x509.load_pem_x509_crl(Path(path).read_bytes())
    except (OSError, ValueError) as err:
        raise PkiError(f"{path}: not a readable PEM CRL ({err})") from None
    if crl.next_update_utc is None:
        raise PkiError(f"{path}: the CRL has no next-update date")
    return crl.next_update_utc


def crl_warning(path: Path, now: dt.datetime, warn_days: int = CRL_WARN_DAYS) -> str | None:
    """A line for the operator when the CRL at ``path`` has expired or expires within ``warn_days``."""
    expires = crl_next_update(path)
    china = expires.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
    fix = f"re-sign it: hcp pki --dir {path.parent} crl && systemctl restart mosquitto (hcp-crl.timer does it monthly)"
    if expires <= now:
        return f"the CRL {path} EXPIRED on {china} (China time): Mosquitto refuses every client; {fix}"
    left = expires - now
    if left <= dt.timedelta(days=warn_days):
        return (f"the CRL {path} expires on {china} (China time, in {left.days} day(s)): Mosquitto will then "
                f"refuse every client; {fix}")
    return None


def certificate_cn(path: Path) -> str:
    """The common name of the PEM certificate at ``path``."""
    cert = _load_certificate(path)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise PkiError(f"{path}: the certificate has no common name")
    return str(names[0].value)
