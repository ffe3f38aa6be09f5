"""A private virtual LAN of network namespaces, so multicast tests run on a real link that no
real network interface is part of.

How this works. `Lan` makes a hub namespace whose only LAN interface is a bridge (`lan0`,
10.77.N.2/24, the "switch"); every other host is a namespace joined to it by one veth pair, its
end `eth0` (10.77.N.HOST/24) and the hub's end a port of the bridge. All ends are up with
multicast on, and so is each namespace's loopback. No interface of the default namespace is
touched, so mDNS sent here stays in these namespaces by construction.

Commands run as `ip netns exec NAME …`, which `exec`s the command: a `Popen`'s pid is the
command's own, so a signal reaches it directly. Long-running ones are `Daemon`s whose output goes
to files, so every wait for readiness has a deadline. `Lan.close()` stops those daemons, then
kills whatever else is still in its namespaces (all of it started by the test) by pid, and
deletes the namespaces; the bridge and veth pairs go with them.

`Avahi` runs avahi-daemon (query-only: it publishes nothing, not even this machine's name) on
one interface of a namespace, with a private D-Bus system bus for `avahi-browse`.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT = 30.0
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
HUB_HOST = 2
BRIDGE = "lan0"
DEVICE = "eth0"


class Unavailable(Exception):
    """This machine cannot make network namespaces (not root, no iproute2, no privilege)."""


def ip(*args: str) -> None:
    """Run one `ip` command, which must succeed."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def check_available() -> None:
    """Raise Unavailable with the reason when namespaces cannot be made here."""
    if os.geteuid() != 0:
        raise Unavailable("needs root to create network namespaces")
    if shutil.which("ip") is None:
        raise Unavailable("needs `ip` (Debian package iproute2)")


class Daemon:
    """A long-running process in a namespace; stdout and stderr go to files under `log_dir`."""

    def __init__(self, argv: list[str], log_dir: Path, name: str, env: dict[str, str] | None = None):
        self.name = name
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> None:
        """Wait until `text` appears in the output; raise if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            status = self.process.poll()
            if status is not None or time.monotonic() > deadline:
                why = f"exited with status {status}" if status is not None else f"did not print {text!r} within {timeout} s"
                raise RuntimeError(f"{self.name} {why}; its output:\n{self.output()}")
            time.sleep(0.02)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode


class Namespace:
    """One host of the LAN: a network namespace and the daemons started in it."""

    def __init__(self, name: str, address: str):
        self.name = name
        self.address = address
        self.daemons: list[Daemon] = []

    def argv(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, *command: str, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        """Run a command here to completion (killed after `timeout` seconds)."""
        return subprocess.run(self.argv(*command), input=stdin, capture_output=True, text=True, timeout=timeout)

    def spawn(self, name: str, *command: str, log_dir: Path, env: dict[str, str] | None = None) -> Daemon:
        """Start a daemon here; it is stopped by `Lan.close()` if not before."""
        daemon = Daemon(self.argv(*command), log_dir, name, env)
        self.daemons.append(daemon)
        return daemon

    def stop_all(self) -> None:
        """Stop the daemons, then kill any other process left in the namespace."""
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()
        left = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        for pid in left.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


class Lan:
    """Namespaces `corridor-ROLE-TAG` on one private /24 link; use as a context manager."""

    def __init__(self, hub_role: str):
        self.tag = secrets.token_hex(3)
        self.prefix = f"10.77.{random.randint(1, 254)}"
        self.hosts: dict[str, Namespace] = {}
        try:
            self.hub = self._add_namespace(hub_role, HUB_HOST)
            ip("-n", self.hub.name, "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
            ip("-n", self.hub.name, "addr", "add", f"{self.hub.address}/24", "dev", BRIDGE)
            ip("-n", self.hub.name, "link", "set", BRIDGE, "multicast", "on", "up")
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, role: str, host: int) -> Namespace:
        namespace = Namespace(f"corridor-{role}-{self.tag}", f"{self.prefix}.{host}")
        try:
            ip("netns", "add", namespace.name)
        except RuntimeError as error:
            if not self.hosts:
                raise Unavailable(f"cannot create a network namespace: {error}") from None
            raise
        self.hosts[role] = namespace
        ip("-n", namespace.name, "link", "set", "lo", "multicast", "on", "up")
        return namespace

    def add_host(self, role: str, host: int) -> Namespace:
        """A new namespace with address PREFIX.HOST, joined to the hub's bridge by a veth pair."""
        try:
            namespace = self._add_namespace(role, host)
            ip("-n", namespace.name, "link", "add", DEVICE, "type", "veth", "peer", "name", role, "netns", self.hub.name)
            ip("-n", self.hub.name, "link", "set", role, "master", BRIDGE, "multicast", "on", "up")
            ip("-n", namespace.name, "addr", "add", f"{namespace.address}/24", "dev", DEVICE)
            ip("-n", namespace.name, "link", "set", DEVICE, "multicast", "on", "up")
        except BaseException:
            self.close()
            raise
        return namespace

    def close(self) -> None:
        """Stop every process in the namespaces and delete them (the hub last); a failure to
        clean one up is raised only after the others are gone too."""
        failures = []
        for role, namespace in reversed(list(self.hosts.items())):
            try:
                namespace.stop_all()
                ip("netns", "del", namespace.name)
            except Exception as error:
                failures.append(f"{namespace.name}: {error}")
            del self.hosts[role]
        if failures:
            raise RuntimeError("could not clean up: " + "; ".join(failures))

    def __enter__(self) -> Lan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

# Query-only: disable-publishing keeps avahi from announcing this machine's name or addresses.
_AVAHI_CONFIG = """[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces={interface}
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
[reflector]
enable-reflector=no
"""

# avahi-daemon keeps its pid file and socket in the compiled-in /run/avahi-daemon. `ip netns exec`
# gives each command its own mount namespace (a slave of the host's), so a tmpfs over /run there
# stops this daemon from seeing, or being refused by, a host's avahi, and is never seen outside.
_PRIVATE_RUN = 'mount -t tmpfs corridor-avahi /run && mkdir /run/avahi-daemon && exec "$@"'

# tool → the Debian package that has it
AVAHI_TOOLS = {"dbus-daemon": "dbus", "avahi-daemon": "avahi-daemon", "avahi-browse": "avahi-utils"}


def _avahi_tools() -> dict[str, str]:
    """The tools' paths; raises Unavailable naming the packages to install."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
    found = {tool: shutil.which(tool, path=search) for tool in AVAHI_TOOLS}
    missing = [tool for tool, path in found.items() if path is None]
    if missing:
        raise Unavailable(f"needs {', '.join(missing)} (Debian packages {', '.join(AVAHI_TOOLS[t] for t in missing)})")
    return {tool: path for tool, path in found.items() if path is not None}


@dataclass(frozen=True)
class Resolved:
    """One `=` line of `avahi-browse --parsable --resolve`."""

    interface: str
    protocol: str
    name: str
    service_type: str
    domain: str
    host: str
    address: str
    port: int
    txt: dict[str, str]


def _unescape(label: str) -> str:
    # avahi-browse writes a label's special bytes as \DDD (decimal) and others as \C.
    raw = re.sub(rb"\\(\d{3})", lambda m: bytes([int(m[1])]), label.encode())
    return re.sub(rb"\\(.)", rb"\1", raw).decode("utf-8", errors="replace")


def _parse_resolved(line: str) -> Resolved:
    _, interface, protocol, name, type_, domain, host, address, port, txt = line.split(";", 9)
    strings = [_unescape(s) for s in re.findall(r'"((?:[^"\\]|\\.)*)"', txt)]
    return Resolved(
        interface,
        protocol,
        _unescape(name),
        type_,
        domain,
        host,
        address,
        int(port),
        dict(s.partition("=")[::2] for s in strings),
    )


class Avahi:
    """A private D-Bus system bus and a query-only avahi-daemon on one interface of `namespace`."""

    def __init__(self, namespace: Namespace, interface: str, workdir: Path):
        """Start both and wait until avahi is up; raises Unavailable if a tool is not installed."""
        self.tools = _avahi_tools()
        self.namespace = namespace
        socket = workdir / "system_bus_socket"
        (workdir / "bus.conf").write_text(_BUS_CONFIG.format(socket=socket))
        (workdir / "avahi-daemon.conf").write_text(_AVAHI_CONFIG.format(interface=interface))
        # libdbus (avahi-daemon's and avahi-browse's) finds the system bus here.
        self.env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket}"}
        self._daemons: list[Daemon] = []
        try:
            self._start(namespace, workdir)
        except BaseException:
            self.stop()
            raise

    def _start(self, namespace: Namespace, workdir: Path) -> None:
        bus = [self.tools["dbus-daemon"], f"--config-file={workdir / 'bus.conf'}", "--nofork", "--nopidfile", "--print-address=1"]
        self._daemons.append(namespace.spawn("dbus-daemon", *bus, log_dir=workdir))
        self._daemons[-1].wait_for("unix:path=")
        avahi = [
            self.tools["avahi-daemon"],
            "--file",
            str(workdir / "avahi-daemon.conf"),
            "--no-drop-root",
            "--no-chroot",
            "--no-rlimits",
        ]
        self._daemons.append(
            namespace.spawn("avahi-daemon", "sh", "-c", _PRIVATE_RUN, "sh", *avahi, log_dir=workdir, env=self.env)
        )
        self._daemons[-1].wait_for("Server startup complete")

    def browse(self, service_type: str, timeout: float) -> list[Resolved]:
        """`avahi-browse --resolve --terminate` until it resolves something, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(
                self.namespace.argv(self.tools["avahi-browse"], "--resolve", "--parsable", "--terminate", service_type),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
            )
            found = [_parse_resolved(line) for line in result.stdout.splitlines() if line.startswith("=;")]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def stop(self) -> None:
        for daemon in reversed(self._daemons):
            daemon.stop()
