"""The server's TLS context: TLS 1.3 only, certificate from the organisation's CA."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from pathlib import Path

from cryptography import x509

log = logging.getLogger("corridor.tls")
EXPIRY_WARNING_DAYS = 14


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context that refuses anything older than TLS 1.3 (no plaintext, no downgrade)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_path, key_path)
    # Session tickets would let a resumed session skip our handshake deadline accounting; a
    # LAN reconnect is cheap enough without them.
    context.options |= ssl.OP_NO_TICKET
    # In TLS 1.3 OP_NO_TICKET only makes OpenSSL's tickets stateful (still 2 per handshake, and
    # resumable); issuing none is what turns resumption off.
    context.num_tickets = 0
    return context


def reload_certificate(context: ssl.SSLContext, cert_path: Path, key_path: Path) -> None:
    """Switch a live server context to a renewed certificate and key: handshakes from now on use
    them, established connections keep the ones they began with. Raises OSError (ssl.SSLError
    included) and leaves the context as it was if the pair does not load."""
    # A failed load_cert_chain can leave the context with the new certificate and no key, and
    # then every handshake fails; trying the pair on a throwaway context first rules that out.
    server_context(cert_path, key_path)
    context.load_cert_chain(cert_path, key_path)


def warn_if_expiring(cert_path: Path) -> float:
    """Log a warning when the server certificate expires soon (an error once it has: clients
    then refuse the server). Returns the days left."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    days = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    if days <= 0:
        log.error("the server certificate %s expired %.0f days ago: clients will refuse this server", cert_path, -days)
    elif days < EXPIRY_WARNING_DAYS:
        log.warning("the server certificate %s expires in %.1f days; issue a new one from the CA", cert_path, days)
    return days
