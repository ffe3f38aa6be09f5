"""The client library finds its server by mDNS when the known address stops answering, and trusts
only the pinned CA — a spoofed advertisement leads nowhere. Multicast stays on 127.0.0.1."""

import functools
import logging
import socket

import pytest
import trio

from corridor.client.client import Client
from corridor.deploy.init import create_data_dir
from corridor.protocol.errors import ServerUnavailable
from corridor.server.app import Server
from corridor.server.config import load_config
from corridor.server.net.advertise import advertise

from .helpers import Org

LOOPBACK = ["127.0.0.1"]


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_client_finds_a_moved_server_by_mdns(data_dir, nursery, tmp_path):
    server = Server(load_config(data_dir), advertise=True)  # advertises on 127.0.0.1, where it listens
    await nursery.start(server.run)
    alice = await Org(server, tmp_path).user("alice")
    stale = ("127.0.0.1", unused_port())  # where the server used to be
    with trio.fail_after(30):
        async with Client.open(alice, address=stale, discover=True, interfaces=LOOPBACK, receive=False) as client:
            ack = await client.send("admin", "found you")
            assert client.address == server.addresses[0]
    assert ack.seq == 1
    server.stop()


async def test_a_spoofed_advertisement_is_not_trusted(data_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="corridor.client")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            real = Server(load_config(data_dir), advertise=False)
            await nursery.start(real.run)
            alice = await Org(real, tmp_path).user("alice")
            real.stop()
        # An impostor with its own CA advertises *our* CA's fingerprint and its own address.
        create_data_dir(tmp_path / "impostor", "Impostor", "127.0.0.1:0", ["127.0.0.1"], "admin", "Admin")
        async with trio.open_nursery() as nursery:
            impostor = Server(load_config(tmp_path / "impostor"), advertise=False)
            await nursery.start(impostor.run)
            spoof = functools.partial(
                advertise,
                org="Test Org",
                ca_sha256=alice.credential().ca_sha256,
                versions=(1,),
                tls_host="127.0.0.1",
                addresses=impostor.addresses,
            )
            await nursery.start(spoof)
            stale = ("127.0.0.1", unused_port())
            with pytest.raises(ServerUnavailable) as info:
                async with Client.open(alice, address=stale, discover=True, interfaces=LOOPBACK, receive=False):
                    pass
            assert info.value.code == "CONNECTION_LOST"
            # It was found and refused by TLS verification, not merely missed.
            assert f"discovered 127.0.0.1:{impostor.addresses[0][1]} is not usable" in caplog.text
            assert "not trusted" in caplog.text
            nursery.cancel_scope.cancel()
