"""The client's TLS context: TLS 1.3 only, trusting nothing but the pinned organisation CA."""

from __future__ import annotations

import hashlib
import ssl


def ca_fingerprint(ca_pem: str) -> str:
    """SHA-256 of the CA certificate's DER form, as lowercase hex (the value invites carry)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(ca_pem)).hexdigest()


def client_context(ca_pem: str) -> ssl.SSLContext:
    """A context that verifies the server against the pinned CA only, and checks its host name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=ca_pem)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
