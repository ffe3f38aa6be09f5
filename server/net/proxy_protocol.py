"""The PROXY protocol, version 2: the client's address as a load balancer in TCP mode passes it.

Behind HAProxy every connection comes from HAProxy's address, so what the server decides per
address (the connection limit, password-guessing throttles) and what it logs would see one
address for everyone. With `send-proxy-v2` HAProxy first sends a binary header naming the
client's address, then the client's bytes (here: the TLS handshake). The server reads that
header only from the addresses `server.proxy_protocol_from` lists, and requires it from them;
anyone else connecting directly is taken at their own address, so nobody can claim another's.

The header (haproxy's doc/proxy-protocol.txt, section 2.2): a 12-byte signature, a version and
command byte (0x20 LOCAL: the proxy's own health check; 0x21 PROXY: a relayed connection), an
address family and transport byte, a 2-byte length, then the addresses and optional TLVs,
which are skipped. It is read with exact-sized `recv`s, so no byte of the TLS handshake that
follows is consumed.
"""

from __future__ import annotations

import ipaddress

import trio

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FIXED = 16  # signature, version/command, family, length
MAX_BODY = 2048  # addresses plus whatever TLVs a proxy adds; far more than HAProxy sends
LOCAL, PROXY = 0x20, 0x21
_FAMILIES = {0x1: (4, ipaddress.IPv4Address), 0x2: (16, ipaddress.IPv6Address)}  # AF_INET, AF_INET6


class ProxyHeaderError(ValueError):
    """What arrived from a proxy is not a PROXY protocol v2 header this server can use."""


def body_length(fixed: bytes) -> int:
    """How many bytes follow the fixed part of a header; raises ProxyHeaderError."""
    if fixed[:12] != SIGNATURE:
        raise ProxyHeaderError("no PROXY protocol v2 header (is send-proxy-v2 set for this server in HAProxy?)")
    if fixed[12] not in (LOCAL, PROXY):
        raise ProxyHeaderError(f"unknown PROXY protocol version/command byte 0x{fixed[12]:02x}")
    length = int.from_bytes(fixed[14:16], "big")
    if length > MAX_BODY:
        raise ProxyHeaderError(f"PROXY protocol header of {length} bytes (at most {MAX_BODY})")
    return length


def client_address(fixed: bytes, body: bytes) -> str | None:
    """The relayed client's address; None for LOCAL (the proxy speaking for itself)."""
    if fixed[12] == LOCAL:
        return None
    family = _FAMILIES.get(fixed[13] >> 4)
    if family is None:
        raise ProxyHeaderError(f"PROXY protocol address family 0x{fixed[13] >> 4:x} is not IPv4 or IPv6")
    size, kind = family
    if len(body) < 2 * size + 4:
        raise ProxyHeaderError("PROXY protocol header too short for its addresses")
    return str(kind(body[:size]))


async def read_client_address(sock: trio.socket.SocketType) -> str | None:
    """Read one header from a proxy's connection; the client's address (None for LOCAL).
    Raises ProxyHeaderError, or OSError if the connection fails."""
    fixed = await _exactly(sock, FIXED)
    body = await _exactly(sock, body_length(fixed))
    return client_address(fixed, body)


def is_listed(address: str, proxies: frozenset[str]) -> bool:
    """Whether a peer address is one of the proxies (an IPv4 address seen on an IPv6 socket
    as ::ffff:a.b.c.d counts as itself)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip) in proxies


async def _exactly(sock: trio.socket.SocketType, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await sock.recv(size - len(data))
        if not chunk:
            raise ProxyHeaderError("the proxy closed the connection inside the PROXY protocol header")
        data += chunk
    return data
