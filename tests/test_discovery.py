"""mDNS advertising and discovery with real zeroconf, kept on 127.0.0.1 so no multicast leaves this machine."""

import functools
import hashlib
import logging
import threading
import uuid

import pytest
import trio
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

from corridor.client.discovery import SERVICE_TYPE, DiscoveredServer, discover
from corridor.server.net.advertise import Advertiser, advertise

LOOPBACK = ["127.0.0.1"]
FINGERPRINT = hashlib.sha256(b"test CA certificate").hexdigest()
PORT = 47113


def stray_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    # trio keeps its idle worker threads for a while; they are trio's, not a zeroconf leak.
    return [t for t in threading.enumerate() if t not in before and not t.name.startswith("Trio thread")]


async def assert_no_stray_threads(before: set[threading.Thread]) -> None:
    with trio.move_on_after(2):
        while stray_threads(before):
            await trio.sleep(0.05)
    assert stray_threads(before) == []


async def test_advertised_server_is_discovered_until_stopped():
    org = f"Org {uuid.uuid4().hex[:12]}"
    before = set(threading.enumerate())
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(
                    advertise,
                    org=org,
                    ca_sha256=FINGERPRINT,
                    versions=(1, 2),
                    tls_host="chat.test.internal",
                    addresses=[("127.0.0.1", PORT)],
                )
            )
            found = [server for server in await discover(timeout=1.5, interfaces=LOOPBACK) if server.org == org]
            assert len(found) == 1
            assert found[0].name.startswith(f"{org} on ")
            assert found[0] == DiscoveredServer(
                name=found[0].name,
                org=org,
                host="chat.test.internal",
                addresses=("127.0.0.1",),
                port=PORT,
                versions=(1, 2),
                ca_sha256=FINGERPRINT,
            )
            nursery.cancel_scope.cancel()

        assert [server for server in await discover(timeout=1.5, interfaces=LOOPBACK) if server.org == org] == []
        await assert_no_stray_threads(before)


def register_raw(token: str) -> tuple[Zeroconf, list[ServiceInfo]]:
    """Announce hand-made services, as a stranger on the LAN might, each named after `token`."""
    properties: dict[str, dict] = {
        "no version": {"org": token, "host": "h.test"},
        "words for versions": {"v": "one,two", "org": token, "host": "h.test"},
        "not utf-8": {b"v": b"1", b"org": b"\xff\xfe", b"host": b"h.test"},
        "no host": {"v": "1", "org": token},
        "bad ca": {"v": "1, 2", "org": token, "host": "h.test", "ca": "md5:nonsense"},
    }
    zc = Zeroconf(interfaces=LOOPBACK, use_asyncio=False)
    infos = [
        ServiceInfo(
            SERVICE_TYPE,
            f"{token} {label}.{SERVICE_TYPE}",
            port=PORT,
            properties=txt,
            server=f"{token}.local.",
            parsed_addresses=["127.0.0.1"],
        )
        for label, txt in properties.items()
    ]
    try:
        for info in infos:
            # The names are unique, so skip the probing delay.
            zc.register_service(info, cooperating_responders=True)
    except BaseException:
        zc.close()
        raise
    return zc, infos


async def test_malformed_txt_is_skipped_without_breaking_discovery(caplog):
    caplog.set_level(logging.DEBUG, logger="corridor.client.discovery")
    token = uuid.uuid4().hex[:12]
    before = set(threading.enumerate())
    with trio.fail_after(30):
        zc, _ = await trio.to_thread.run_sync(register_raw, token)
        try:
            found = [server for server in await discover(timeout=1.5, interfaces=LOOPBACK) if token in server.name]
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(zc.close)

        # Only the service whose sole fault is its fingerprint hint survives, without the hint.
        assert found == [
            DiscoveredServer(
                name=f"{token} bad ca",
                org=token,
                host="h.test",
                addresses=("127.0.0.1",),
                port=PORT,
                versions=(1, 2),
                ca_sha256=None,
            )
        ]
        # The broken ones were resolved and rejected, not merely missed while browsing.
        skipped = {record.args[0] for record in caplog.records if record.getMessage().startswith("skipping")}
        for label in ("no version", "words for versions", "not utf-8", "no host"):
            assert f"{token} {label}.{SERVICE_TYPE}" in skipped
        await assert_no_stray_threads(before)


@pytest.mark.parametrize(
    ("listen", "interfaces", "ip_version"),
    [
        (["127.0.0.1"], ["127.0.0.1"], IPVersion.V4Only),
        (["10.1.2.3", "fd00::5"], ["10.1.2.3", "fd00::5"], IPVersion.All),
        (["0.0.0.0"], InterfaceChoice.All, IPVersion.V4Only),
        (["0.0.0.0", "::"], InterfaceChoice.All, IPVersion.All),
    ],
)
def test_advertises_only_on_the_listened_interfaces(listen, interfaces, ip_version):
    # Inspects the configuration without starting, so nothing is sent on the wildcard cases.
    advertiser = Advertiser(
        org="Acme Inc.\nLabs",
        ca_sha256=FINGERPRINT,
        versions=(1,),
        tls_host="chat.acme.test",
        addresses=[(ip, PORT) for ip in listen],
    )
    assert advertiser._interfaces == interfaces
    assert advertiser._ip_version == ip_version
    instance = advertiser._name.removesuffix(f".{SERVICE_TYPE}")
    assert instance.startswith("Acme Inc Labs on ")
    assert len(instance.encode()) <= 63


def test_advertiser_rejects_a_bad_fingerprint_and_mixed_ports():
    args = {"org": "Acme", "versions": (1,), "tls_host": "chat.acme.test"}
    with pytest.raises(ValueError, match="64 hex"):
        Advertiser(ca_sha256="abc", addresses=[("127.0.0.1", PORT)], **args)
    with pytest.raises(ValueError, match="one port"):
        Advertiser(ca_sha256=FINGERPRINT, addresses=[("127.0.0.1", PORT), ("127.0.0.1", PORT + 1)], **args)
