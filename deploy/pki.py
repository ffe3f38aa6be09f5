"""The organisation's own PKI: a CA, server certificates it signs, and the archive signing key.

Clients pin the CA (its SHA-256 fingerprint travels in every invite), so the server key and
certificate can be rotated without re-enrolling anyone. Server certificates are short-lived
(≤ 90 days) and name every host name and address clients may use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 20
SERVER_CERT_DAYS = 90


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def create_ca(org: str) -> tuple[bytes, bytes]:
    """A new self-signed CA for `org`: (certificate PEM, private key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, f"{org} Corridor CA")]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign and cRLSign only
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _san(hostnames: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue_server_cert(
    ca_cert_pem: bytes, ca_key_pem: bytes, hostnames: list[str], days: int = SERVER_CERT_DAYS
) -> tuple[bytes, bytes]:
    """A server certificate signed by the CA, valid for `hostnames` (names or IPs): (cert PEM, key PEM)."""
    key_pem = new_server_key()
    return sign_server_key(ca_cert_pem, ca_key_pem, key_pem, hostnames, days), key_pem


def new_server_key() -> bytes:
    """A fresh server private key (ECDSA P-256), as unencrypted PKCS#8 PEM."""
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))


def sign_server_key(
    ca_cert_pem: bytes, ca_key_pem: bytes, key_pem: bytes, hostnames: list[str], days: int = SERVER_CERT_DAYS
) -> bytes:
    """A server certificate (PEM) for an existing key, signed by the CA and valid for `hostnames`
    (names or IPs) for `days` (at most SERVER_CERT_DAYS) from now. Renewal uses this to keep the key."""
    if not hostnames:
        raise ValueError("a server certificate needs at least one host name or address")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = serialization.load_pem_private_key(key_pem, password=None)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=min(days, SERVER_CERT_DAYS)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hostnames), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER encoding, as lowercase hex (what invites carry)."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def create_signing_key() -> tuple[bytes, bytes]:
    """A new Ed25519 archive signing key: (private key PEM, public key PEM)."""
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _key_pem(key), public


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable only by its owner (created 0600, never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
