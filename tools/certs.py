"""The local certificate authority: one CA and one certificate per identity of the suite, written
in the layout shared/tls.py reads (`<dir>/<identity>/tls.crt`, `tls.key`, `ca.crt`).

`recsys up` and `recsys certs` call `ensure_certificates`: the CA is made once and kept; an
identity's certificate is issued when missing, when it was not signed by the CA in place, or when
it expires within RENEW_BEFORE. Keys are ECDSA P-256, written with mode 0600. In Kubernetes
cert-manager plays this part (k8s/components/mtls).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.authz import IDENTITIES
from shared.tls import CA_FILE, IdentityFiles

CA_FOLDER = "ca"
CA_NAME = "recsys local CA"
CA_LIFETIME = datetime.timedelta(days=3650)
LIFETIME = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
# Names every local certificate answers to: clients dial 127.0.0.1 or localhost.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# A CA that signs certificates and revocation lists, nothing else.
CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def authority(folder: Path) -> Authority:
    """The CA under `folder/ca/`, created on first use."""
    cert_path, key_path = folder / CA_FOLDER / CA_FILE, folder / CA_FOLDER / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return Authority(x509.load_pem_x509_certificate(cert_path.read_bytes()), key)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(CA_NAME))
        .issuer_name(_name(CA_NAME))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), private=True)
    _write(cert_path, _pem(certificate))
    return Authority(certificate, key)


def _subject_names(identity: str, hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([identity, *LOCAL_HOSTS, *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue(ca: Authority, identity: str, hosts: Iterable[str] = ()) -> tuple[x509.Certificate, bytes]:
    """A certificate for `identity` (its common name) valid as server and client, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(identity))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_subject_names(identity, hosts), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return certificate, _key_pem(key)


def _current(files: IdentityFiles, ca: Authority) -> bool:
    """Whether the identity's certificate exists, was signed by `ca` and is not due for renewal."""
    if not (files.cert.is_file() and files.key.is_file() and files.ca.is_file()):
        return False
    certificate = x509.load_pem_x509_certificate(files.cert.read_bytes())
    try:
        certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return certificate.not_valid_after_utc - _now() > RENEW_BEFORE and files.ca.read_bytes() == _pem(
        ca.certificate
    )


def ensure_certificates(
    folder: Path, identities: Iterable[str] = IDENTITIES, hosts: Iterable[str] = ()
) -> list[str]:
    """Makes the CA and every identity's certificate under `folder` where missing or due;
    returns the identities (re)issued."""
    ca = authority(folder)
    issued = []
    for identity in identities:
        files = IdentityFiles(folder / identity)
        if _current(files, ca):
            continue
        certificate, key = issue(ca, identity, hosts)
        _write(files.key, key, private=True)
        _write(files.cert, _pem(certificate))
        _write(files.ca, _pem(ca.certificate))
        issued.append(identity)
    return issued
