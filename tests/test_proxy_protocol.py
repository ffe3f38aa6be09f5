"""Behind HAProxy, the server sees each client's own address through the PROXY protocol v2:
the per-address connection limit counts clients, not the load balancer, and a proxy
connection without a valid header is refused while everyone else is served."""

from __future__ import annotations

import ipaddress
import logging
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from corridor.client.tls import client_context
from corridor.server.app import Server
from corridor.server.config import ConfigError, load_config, parse_config
from corridor.server.net.proxy_protocol import SIGNATURE, ProxyHeaderError, body_length, client_address

from .helpers import RawPeer


def header(client: str | None, *, tlvs: bytes = b"") -> bytes:
    """A PROXY v2 header as HAProxy sends it (`client` None: LOCAL, a health check)."""
    if client is None:
        return SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    ip = ipaddress.ip_address(client)
    family = 0x11 if ip.version == 4 else 0x21
    server = ipaddress.ip_address("127.0.0.1" if ip.version == 4 else "::1")
    body = ip.packed + server.packed + struct.pack("!HH", 51000, 7740) + tlvs
    return SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def parse(data: bytes) -> str | None:
    return client_address(data[:16], data[16 : 16 + body_length(data[:16])])


def test_headers_name_the_client_or_the_proxy_itself():
    assert parse(header("10.1.2.3")) == "10.1.2.3"
    assert parse(header("2001:db8::7")) == "2001:db8::7"
    assert parse(header("10.1.2.3", tlvs=b"\x04\x00\x01x")) == "10.1.2.3"  # TLVs are skipped
    assert parse(header(None)) is None


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x16\x03\x01" + b"\x00" * 13, "no PROXY protocol v2 header"),  # a TLS ClientHello
        (SIGNATURE + bytes([0x22, 0x11, 0, 12]), "version/command byte 0x22"),
        (SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", 60_000), "at most 2048"),
        (SIGNATURE + bytes([0x21, 0x31, 0, 12]) + b"\x00" * 12, "not IPv4 or IPv6"),
        (SIGNATURE + bytes([0x21, 0x21, 0, 12]) + b"\x00" * 12, "too short"),
    ],
)
def test_anything_else_is_refused_with_a_reason(data, says):
    with pytest.raises(ProxyHeaderError, match=says):
        parse(data)


def test_the_config_takes_only_ip_addresses():
    with pytest.raises(ConfigError, match=r"'server\.proxy_protocol_from' must list IP addresses, not 'haproxy'"):
        parse_config({"organisation": {"name": "Org"}, "server": {"proxy_protocol_from": ["haproxy"]}}, Path("/d"))


async def test_clients_behind_the_proxy_are_counted_by_their_own_address(data_dir, nursery, caplog):
    config = load_config(data_dir)
    config = replace(
        config,
        server=replace(config.server, proxy_protocol_from=("127.0.0.1",)),
        limits=replace(config.limits, max_connections_per_address=1, handshake_timeout=2.0),
    )
    server = Server(config, advertise=False)
    await nursery.start(server.run)
    context = client_context((data_dir / "tls" / "ca.pem").read_text())

    async def through_proxy(prefix: bytes) -> RawPeer:
        tcp = await trio.open_tcp_stream(*server.addresses[0])
        await tcp.send_all(prefix)
        tls = trio.SSLStream(tcp, context, server_hostname="127.0.0.1")
        await tls.do_handshake()
        return RawPeer(tls)

    with trio.fail_after(15):
        first, second = await through_proxy(header("10.0.0.1")), await through_proxy(header("10.0.0.2"))
        assert (await first.hello())["type"] == "result"
        assert (await second.hello())["type"] == "result"  # another client, though the same proxy
        third = await through_proxy(header("10.0.0.1"))
        assert (await third.frame())["code"] == "TOO_MANY_CONNECTIONS"  # the first client's second
        check = await through_proxy(header(None))  # HAProxy's own health check: its own address
        assert (await check.hello())["type"] == "result"

        with caplog.at_level(logging.WARNING, logger="corridor.server"):
            with pytest.raises(trio.BrokenResourceError):
                await through_proxy(b"")  # straight from the proxy's address, without a header
        assert "connection from the proxy 127.0.0.1 refused: no PROXY protocol v2 header" in caplog.text
        assert (await first.hello())["type"] == "result"  # everyone else is still served
