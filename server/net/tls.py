"""The server's TLS context: TLS 1.3 only, certificate from the organisation's CA."""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context that refuses anything older than TLS 1.3 (no plaintext, no downgrade)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_path, key_path)
    # Session tickets would let a resumed session skip our handshake deadline accounting; a
    # LAN reconnect is cheap enough without them.
    context.options |= ssl.OP_NO_TICKET
    return context
