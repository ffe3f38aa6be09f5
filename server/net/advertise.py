"""Announce the server on the LAN over mDNS/DNS-SD, so clients can offer it without typing an address.

We register one `_corridor._tcp.local.` service whose TXT record carries the protocol versions
(`v`), the organisation name (`org`), the CA fingerprint (`ca`) and the TLS host name clients must
verify (`host`). Discovery is a convenience only: the fingerprint in TXT is a hint, and trust still
comes from the CA the client pinned at enrollment, because anyone on the LAN can announce anything.

Multicast goes out only on the interfaces the server listens on, so a server bound to an internal
address does not announce itself on other networks the machine is attached to. Only a wildcard
listen address (0.0.0.0 or ::), which is the admin's explicit choice to serve every network,
announces on all interfaces.

`Advertiser.start()`/`stop()` block (zeroconf probes the name for a second or two), so trio code
uses the `advertise()` task, which runs them in worker threads.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
from typing import Any, NoReturn

import ifaddr
import trio
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_corridor._tcp.local."

# A DNS label holds 63 bytes; keep room for the "-N" suffix zeroconf appends on a name conflict.
_MAX_INSTANCE_BYTES = 59
# One TXT string is at most 255 bytes, "org=" included.
_MAX_ORG_BYTES = 255 - len("org=")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
# Dots would split the instance label into several DNS labels; control characters are illegal.
_UNSAFE_IN_LABEL = re.compile(r"[.\x00-\x1f\x7f]+")


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut `text` to at most `max_bytes` of UTF-8 without splitting a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def _instance_name(org: str, host: str) -> str:
    """A human-readable, DNS-safe instance label such as "Acme Corp on myhost"."""
    label = " ".join(_UNSAFE_IN_LABEL.sub(" ", f"{org or 'Corridor'} on {host}").split())
    return _truncate_utf8(label, _MAX_INSTANCE_BYTES).rstrip()


def _server_name(instance: str) -> str:
    """The SRV target: a host name of our own, so we never publish records for the machine's real name."""
    slug = re.sub(r"[^a-z0-9]+", "-", instance.lower()).strip("-")[:63].strip("-")
    return f"{slug or 'corridor'}.local."


def _wildcard_addresses(version: int) -> list[str]:
    """The machine's addresses of one IP version worth announcing for a wildcard listener.

    Loopback is useless to other machines; IPv6 link-local addresses need a scope id that an
    address record cannot carry.
    """
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(text)
            if address.version == version and not address.is_loopback and not address.is_link_local:
                found.append(str(address))
    return sorted(set(found))


class Advertiser:
    """Registers the server's DNS-SD service on the interfaces it listens on."""

    def __init__(
        self,
        *,
        org: str,
        ca_sha256: str,
        versions: tuple[int, ...],
        tls_host: str,
        addresses: list[tuple[str, int]],
    ) -> None:
        """Check the arguments; nothing touches the network until `start()`.

        `ca_sha256` is the CA certificate's SHA-256 as 64 hex digits; `addresses` are the
        (ip, port) pairs the server is bound to, all on the same port.
        """
        fingerprint = ca_sha256.lower()
        if not _FINGERPRINT.match(fingerprint):
            raise ValueError("ca_sha256 must be 64 hex digits")
        if not versions:
            raise ValueError("at least one protocol version is required")
        if not addresses:
            raise ValueError("at least one listen address is required")
        ports = {port for _, port in addresses}
        if len(ports) != 1:
            # An SRV record carries a single port.
            raise ValueError(f"all listen addresses must share one port, got {sorted(ports)}")

        listened = [ipaddress.ip_address(ip) for ip, _ in addresses]
        specific = [str(ip) for ip in listened if not ip.is_unspecified]
        wildcard_versions = {ip.version for ip in listened if ip.is_unspecified}
        ip_versions = {ip.version for ip in listened}

        self._interfaces: InterfaceChoice | list[str] = InterfaceChoice.All if wildcard_versions else specific
        self._ip_version = {
            frozenset({4}): IPVersion.V4Only,
            frozenset({6}): IPVersion.V6Only,
        }.get(frozenset(ip_versions), IPVersion.All)
        self._specific_addresses = specific
        self._wildcard_versions = wildcard_versions
        self._port = ports.pop()
        instance = _instance_name(org, socket.gethostname().split(".")[0])
        self._name = f"{instance}.{SERVICE_TYPE}"
        self._server = _server_name(instance)
        self._properties = {
            "v": ",".join(str(v) for v in versions),
            "org": _truncate_utf8(org, _MAX_ORG_BYTES),
            "ca": f"sha256:{fingerprint}",
            "host": tls_host,
        }
        self._lock = threading.Lock()
        self._zeroconf: Zeroconf | None = None
        self._info: ServiceInfo | None = None

    def _announced_addresses(self) -> list[str]:
        # Interfaces are read at start, not in __init__, so a restart picks up a changed network.
        addresses = list(self._specific_addresses)
        for version in sorted(self._wildcard_versions):
            addresses += [a for a in _wildcard_addresses(version) if a not in addresses]
        return addresses

    def start(self) -> None:
        """Open the multicast sockets and register the service (blocks while zeroconf probes the name)."""
        with self._lock:
            if self._zeroconf is not None:
                raise RuntimeError("the advertiser is already started")
            info = ServiceInfo(
                SERVICE_TYPE,
                self._name,
                port=self._port,
                properties=self._properties,
                server=self._server,
                parsed_addresses=self._announced_addresses(),
            )
            # use_asyncio=False: always run zeroconf on its own thread, which close() joins.
            zeroconf = Zeroconf(interfaces=self._interfaces, ip_version=self._ip_version, use_asyncio=False)
            try:
                zeroconf.register_service(info, allow_name_change=True)
            except BaseException:
                zeroconf.close()
                raise
            self._zeroconf, self._info = zeroconf, info
            log.info("advertising %r on port %d", info.name, self._port)

    def stop(self) -> None:
        """Send goodbyes and close the sockets and zeroconf's thread; does nothing if not running."""
        with self._lock:
            zeroconf, info = self._zeroconf, self._info
            self._zeroconf = None
            if zeroconf is None or info is None:
                return
            try:
                zeroconf.unregister_service(info)
            finally:
                zeroconf.close()
            log.info("stopped advertising %r", info.name)


async def advertise(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED, **kwargs: Any) -> NoReturn:
    """Advertise until cancelled; `kwargs` are `Advertiser`'s. Use with `await nursery.start(advertise, ...)`."""
    advertiser = Advertiser(**kwargs)
    try:
        await trio.to_thread.run_sync(advertiser.start)
        task_status.started()
        await trio.sleep_forever()
    finally:
        # Shielded so a cancelled server still says goodbye and joins zeroconf's thread.
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(advertiser.stop)
