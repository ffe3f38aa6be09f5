"""Find Corridor servers on the LAN over mDNS/DNS-SD (`_corridor._tcp.local.`).

Every answer comes from an unauthenticated stranger on the network, so a service whose TXT record
does not parse is skipped rather than trusted or allowed to crash the client, and the CA
fingerprint it announces is only a hint: the client still verifies the server against the CA it
pinned at enrollment.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
import time
from dataclasses import dataclass

import trio
from zeroconf import BadTypeInNameException, InterfaceChoice, ServiceBrowser, ServiceListener, Zeroconf
from zeroconf.asyncio import AsyncServiceInfo

log = logging.getLogger(__name__)

SERVICE_TYPE = "_corridor._tcp.local."
_SUFFIX = f".{SERVICE_TYPE}"

# Services found while browsing usually resolve from the cache at once; this only bounds the wait
# for a responder that announced its name but does not answer.
_RESOLVE_TIMEOUT_MS = 1000
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DiscoveredServer:
    """One server as announced on the LAN; `host` is the TLS name to verify, `ca_sha256` a hint."""

    name: str
    org: str
    host: str
    addresses: tuple[str, ...]
    port: int
    versions: tuple[int, ...]
    ca_sha256: str | None


class _Collector(ServiceListener):
    """Remembers the service names seen while browsing (called on zeroconf's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._names)

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self._lock:
            self._names.add(name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.add_service(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self._lock:
            self._names.discard(name)


def _text(properties: dict[str, str | None], key: str) -> str:
    value = properties.get(key)
    if not value or not value.strip():
        raise ValueError(f"TXT key {key!r} is missing or empty")
    return value.strip()


def _parse(info: AsyncServiceInfo) -> DiscoveredServer:
    """Build a DiscoveredServer from a resolved service; raises ValueError when it is unusable."""
    if info.port is None:
        raise ValueError("no port")
    addresses = tuple(info.parsed_addresses())
    if not addresses:
        raise ValueError("no addresses")
    # UnicodeDecodeError is a ValueError, so undecodable TXT ends up skipped like any other fault.
    properties = {
        key.decode("utf-8").lower(): None if value is None else value.decode("utf-8") for key, value in info.properties.items()
    }
    versions = tuple(int(part) for part in _text(properties, "v").split(","))
    if any(version < 1 for version in versions):
        raise ValueError(f"bad protocol versions {versions}")
    ca = properties.get("ca") or ""
    fingerprint = ca[len("sha256:") :].lower() if ca.startswith("sha256:") else ""
    return DiscoveredServer(
        name=info.name[: -len(_SUFFIX)],
        org=_text(properties, "org"),
        host=_text(properties, "host"),
        addresses=addresses,
        port=info.port,
        versions=versions,
        # The fingerprint is only a hint, so a malformed one is dropped rather than the server.
        ca_sha256=fingerprint if _FINGERPRINT.match(fingerprint) else None,
    )


def _service_info(name: str) -> AsyncServiceInfo | None:
    """An unresolved ServiceInfo, or None when a stranger announced a name that is not one of our instances."""
    if not name.lower().endswith(_SUFFIX):
        log.debug("skipping %r: not a %s instance", name, SERVICE_TYPE)
        return None
    try:
        return AsyncServiceInfo(SERVICE_TYPE, name)
    except BadTypeInNameException as error:
        log.debug("skipping %r: bad service name: %s", name, error)
        return None


async def _resolve_all(zc: Zeroconf, names: list[str]) -> list[AsyncServiceInfo]:
    """Resolve every name concurrently on zeroconf's loop, so strangers that never answer cost one timeout in total."""
    infos = [info for info in map(_service_info, names) if info is not None]
    resolved = await asyncio.gather(*(info.async_request(zc, _RESOLVE_TIMEOUT_MS) for info in infos), return_exceptions=True)
    for info, ok in zip(infos, resolved, strict=True):
        if ok is not True:
            log.debug("could not resolve %r: %r", info.name, ok)
    return [info for info, ok in zip(infos, resolved, strict=True) if ok is True]


def discover_blocking(timeout: float, *, interfaces: list[str] | None = None) -> list[DiscoveredServer]:
    """Browse for `timeout` seconds and return the servers found, sorted by name.

    `interfaces` lists the local IP addresses to send and receive multicast on; None means every
    interface, which is what the product wants on a LAN. Tests and local tools pass ["127.0.0.1"]
    to keep multicast on this machine. Blocks for about `timeout` plus up to a second of resolving.
    """
    # use_asyncio=False: always run zeroconf on its own thread, which close() joins.
    zc = Zeroconf(interfaces=InterfaceChoice.All if interfaces is None else list(interfaces), use_asyncio=False)
    try:
        collector = _Collector()
        browser = ServiceBrowser(zc, SERVICE_TYPE, collector)
        try:
            time.sleep(timeout)
        finally:
            browser.cancel()
        assert zc.loop is not None
        infos = asyncio.run_coroutine_threadsafe(_resolve_all(zc, collector.names()), zc.loop).result()
    finally:
        zc.close()
    servers = []
    for info in infos:
        try:
            servers.append(_parse(info))
        except ValueError as error:
            log.debug("skipping %r: malformed announcement: %s", info.name, error)
    return sorted(servers, key=lambda server: server.name)


async def discover(timeout: float, *, interfaces: list[str] | None = None) -> list[DiscoveredServer]:
    """`discover_blocking()` in a worker thread; see it for the arguments."""
    return await trio.to_thread.run_sync(functools.partial(discover_blocking, timeout, interfaces=interfaces))
