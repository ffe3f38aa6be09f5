"""Discovery across a real (virtual) network: `corridor serve` in one network namespace, the
`corridor` client in another, mDNS and TLS between them over veth pairs (see `tests/netns.py`).

Nothing here sends multicast on a real interface: every server, client and daemon runs inside
namespaces this module creates and deletes. The tests need root and `ip netns`; without them
they are skipped, except under CI, where that would hide a missing install step, so they fail.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from .cli_helpers import CORRIDOR
from .netns import BRIDGE, Avahi, Lan, Namespace, Unavailable, check_available

ORG = "走廊 Netns Org"  # TXT and instance names are UTF-8
PORT = 7740
STALE_PORT = 7741  # nothing listens there: the address a client remembers after the server moved
PASSWORD = "long-enough-pw"
SERVICE = "_corridor._tcp"
BROWSE_SECONDS = "2"
EXIT_UNREACHABLE = 5

# The client's own CLI entry point with its INFO log on stderr, to see which candidates the
# library tried and why it refused one (the `corridor` script configures no logging).
LOGGED_CLIENT = (
    "import logging, sys; logging.basicConfig(format='%(name)s: %(message)s');"
    "logging.getLogger('corridor.client').setLevel(logging.INFO);"
    "from corridor.client.cli.main import main; main()"
)

# A stranger's own mDNS responder: a service named to sort before the real one (so the client
# tries it first), carrying the real server's TXT word for word, CA fingerprint included, but
# pointing at the impostor's address. Argv: NAME ADDRESS PORT KEY=VALUE…
SPOOFER = """
import signal, sys
from zeroconf import ServiceInfo, Zeroconf
name, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
txt = dict(item.split("=", 1) for item in sys.argv[4:])
zc = Zeroconf(interfaces=[address])
info = ServiceInfo(
    "_corridor._tcp.local.", f"{name}._corridor._tcp.local.", port=port, properties=txt,
    server="impostor.local.", parsed_addresses=[address],
)
zc.register_service(info)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("advertising", flush=True)
try:
    signal.pause()
finally:
    zc.unregister_service(info)
    zc.close()
"""


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def corridor(host: Namespace, *args: str, stdin: str | None = None):
    return host.run(CORRIDOR, *args, stdin=stdin)


def ok(host: Namespace, *args: str, stdin: str | None = None) -> str:
    """Run `corridor ARGS…` in `host`; it must succeed. Returns its stdout."""
    result = corridor(host, *args, stdin=stdin)
    assert result.returncode == 0, f"corridor {' '.join(args)} exited {result.returncode}: {result.stderr}"
    return result.stdout


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@dataclass(frozen=True)
class Served:
    """A `corridor serve` running in a namespace of the LAN."""

    host: Namespace
    data: Path
    ca_sha256: str

    @property
    def address(self) -> str:
        return f"{self.host.address}:{PORT}"


def serve(host: Namespace, data: Path, *init_args: str, advertise: bool = True) -> Served:
    """`corridor init` and `corridor serve --listen HOST:PORT` in `host`, waiting until it serves."""
    init = json.loads(ok(host, "init", str(data), "--org", ORG, "--listen", f"{host.address}:{PORT}", *init_args, "--json"))
    extra = [] if advertise else ["--no-advertise"]
    daemon = host.spawn(
        f"serve-{data.name}", CORRIDOR, "serve", str(data), "--listen", f"{host.address}:{PORT}", *extra, log_dir=data.parent
    )
    # Printed once the listener is bound and the advertisement registered.
    daemon.wait_for(f"serving {ORG!r} on {host.address}:{PORT}")
    return Served(host, data, init["ca_sha256"])


def enroll(served: Served, client: Namespace, user: str, profiles: Path) -> str:
    """A new account on `served`, enrolled from `client` over the LAN; returns the profile dir."""
    added = ok(served.host, "admin", "--data", str(served.data), "user", "add", user, "--name", user.title(), "--json")
    invite = json.loads(added)["invite"]
    assert invite.startswith(f"corridor://{served.address}/enroll?")
    profile = str(profiles / user)
    enrolled = json.loads(ok(client, "enroll", invite, "--password-stdin", "--profile", profile, "--json", stdin=PASSWORD + "\n"))
    assert enrolled["server"] == served.address
    return profile


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    """The client's namespace (the hub), the server's, and one for a stranger, on 10.77.N.0/24."""
    try:
        check_available()
        network = Lan("cli")
    except Unavailable as error:
        unavailable(str(error))
    with network:
        network.add_host("srv", 1)
        network.add_host("imp", 3)
        yield network


@pytest.fixture(scope="module")
def real(lan: Lan, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The organisation's server, advertising on the only interface it listens on."""
    return serve(lan.hosts["srv"], tmp_path_factory.mktemp("real") / "data")


def test_a_client_discovers_enrolls_and_chats_across_the_network(lan, real, tmp_path):
    client = lan.hub
    (found,) = json_lines(ok(client, "discover", "--timeout", BROWSE_SECONDS, "--json"))
    assert found == {
        "name": found["name"],
        "org": ORG,
        "host": real.host.address,  # the certificate's first name: `init --listen` put it there
        "addresses": [real.host.address],
        "port": PORT,
        "versions": [1],
        "ca_sha256": real.ca_sha256,
    }
    assert found["name"].startswith(f"{ORG} on ")

    alice = enroll(real, client, "alice", tmp_path)
    bob = enroll(real, client, "bob", tmp_path)
    # The address given does not answer, so the client must find the server by mDNS.
    stale = ["--server", f"{real.host.address}:{STALE_PORT}", "--profile", alice, "--json"]
    lost = corridor(client, "send", "bob", "found you over the LAN", *stale)
    assert lost.returncode == EXIT_UNREACHABLE and json.loads(lost.stdout)["error"]["code"] == "CONNECTION_LOST"
    sent = ok(client, "send", "bob", "found you over the LAN", *stale, "--discover", "--interface", client.address)
    assert json.loads(sent)["seq"] == 1
    (history,) = json_lines(ok(client, "history", "alice", "--profile", bob, "--json"))
    assert (history["sender"], history["recipient"], history["text"]) == ("alice", "bob", "found you over the LAN")


@pytest.fixture
def avahi(lan: Lan, tmp_path: Path) -> Iterator[Avahi]:
    """avahi-daemon on the client's LAN interface only, publishing nothing."""
    try:
        daemon = Avahi(lan.hub, BRIDGE, tmp_path)
    except Unavailable as error:
        unavailable(str(error))
    try:
        # Its private /run is in its own mount namespace, not ours.
        assert "corridor-avahi" not in Path("/proc/self/mounts").read_text()
        yield daemon
    finally:
        daemon.stop()


def test_avahi_browse_sees_the_advertisement_and_its_txt(real, avahi):
    (service,) = avahi.browse(SERVICE, timeout=10)
    assert (service.interface, service.protocol, service.service_type) == (BRIDGE, "IPv4", SERVICE)
    assert service.name.startswith(f"{ORG} on ")
    assert (service.address, service.port) == (real.host.address, PORT)
    assert service.txt == {"v": "1", "org": ORG, "ca": f"sha256:{real.ca_sha256}", "host": real.host.address}


@pytest.fixture
def impostor(lan: Lan, real: Served, tmp_path: Path) -> Iterator[Served]:
    """A second Corridor server with its own CA on another host of the LAN, announced as ours."""
    host = lan.hosts["imp"]
    txt = {"v": "1", "org": ORG, "ca": f"sha256:{real.ca_sha256}", "host": real.host.address}
    try:
        # Its certificate even names the real server's TLS host, so only the CA gives it away.
        fake = serve(host, tmp_path / "impostor", "--hostname", real.host.address, advertise=False)
        spoof = [SPOOFER, ORG, host.address, str(PORT), *(f"{key}={value}" for key, value in txt.items())]
        host.spawn("spoofer", sys.executable, "-c", *spoof, log_dir=tmp_path).wait_for("advertising")
        yield fake
    finally:
        host.stop_all()


def test_a_spoofed_server_is_refused_and_the_real_one_still_reached(lan, real, impostor, tmp_path):
    client = lan.hub
    impostor_at, real_at = impostor.address, real.address
    # On the wire the two look alike; the stranger's sorts first.
    found = json_lines(ok(client, "discover", "--timeout", BROWSE_SECONDS, "--json"))
    assert [(s["org"], s["host"], s["ca_sha256"], s["addresses"]) for s in found] == [
        (ORG, real.host.address, real.ca_sha256, [impostor.host.address]),
        (ORG, real.host.address, real.ca_sha256, [real.host.address]),
    ]
    assert impostor.ca_sha256 != real.ca_sha256

    carol = enroll(real, client, "carol", tmp_path)
    enroll(real, client, "dave", tmp_path)

    # Sent straight to the impostor, the pinned CA refuses it (and discovery is not tried).
    direct = corridor(client, "send", "dave", "hi", "--server", impostor_at, "--discover", "--profile", carol, "--json")
    assert direct.returncode == EXIT_UNREACHABLE, direct.stderr
    assert json.loads(direct.stdout)["error"]["code"] == "UNTRUSTED_SERVER"
    assert f"{impostor_at} is not trusted" in direct.stderr

    # Discovering, the client tries the impostor first, refuses it and goes on to the real server.
    stale = f"{real.host.address}:{STALE_PORT}"
    args = ["send", "dave", "the real one", "--server", stale, "--discover", "--profile", carol, "--json"]
    sent = client.run(sys.executable, "-c", LOGGED_CLIENT, *args)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["seq"] == 1  # "hi" was refused before it was sent, so it is not resent
    log = sent.stderr
    refused = log.index(f"corridor.client: discovered {impostor_at} is not usable: {impostor_at} is not trusted")
    assert log.index(f"corridor.client: {stale} did not answer; discovered the server at {real_at}") > refused

    (history,) = json_lines(ok(client, "history", "dave", "--profile", carol, "--json"))
    assert (history["sender"], history["text"]) == ("carol", "the real one")
