"""deploy/install.sh, the systemd unit and deploy/uninstall.sh, run for real in a temporary root.

The module installs once (`install.sh --root ROOT --no-start`: a real venv built by pip, a real
`corridor init` run as the unit's user) and then runs the installed server the way systemd would:
the unit's `ExecStart` with the paths moved under ROOT, as its `User=`, inside the unit's own
sandbox rebuilt without systemd (`UnitSandbox`). An enrolled client sends through it.

`UnitSandbox` reads the settings from the installed unit and applies those that could break a
Python server: User/Group, UMask, LimitNOFILE, NoNewPrivileges, CapabilityBoundingSet,
ProtectSystem=strict with ReadWritePaths, ProtectHome, RestrictAddressFamilies,
MemoryDenyWriteExecute (both ways systemd enforces it: the seccomp rules of systemd 252, which
Debian 12 has, and the kernel's PR_SET_MDWE that newer systemd uses) and SystemCallFilter with
SystemCallErrorNumber, expanded by `systemd-analyze syscall-filter`. The rest of the unit's
options (private /tmp and /dev, protected kernel and cgroup files, no namespaces, no realtime,
no SUID files, no personality change) only hide or refuse what a chat server never touches.
"""

from __future__ import annotations

import ctypes
import errno
import grp
import hashlib
import json
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .cli_helpers import free_port

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "deploy" / "install.sh"
UNINSTALL = REPO / "deploy" / "uninstall.sh"
# An account every Debian/Ubuntu has: --root creates no account, it uses one that exists.
SERVICE_USER = "nobody"
ORG = "Deploy Test Ltd"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="install.sh creates accounts and changes file owners: the test must run as root"
)


def script(path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(path), *args], capture_output=True, text=True, timeout=timeout)


@dataclass
class Install:
    root: Path
    port: int
    output: str
    seconds: float

    @property
    def venv(self) -> Path:
        return self.root / "opt/corridor/venv"

    @property
    def data(self) -> Path:
        return self.root / "var/lib/corridor"

    @property
    def unit(self) -> Path:
        return self.root / "etc/systemd/system/corridor.service"

    def corridor(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        command = [str(self.venv / "bin/corridor"), *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)

    def unit_at_root(self) -> str:
        """The installed unit with its paths moved under the temporary root."""
        text = self.unit.read_text()
        return text.replace("/opt/corridor/", f"{self.root}/opt/corridor/").replace("/var/lib/corridor", str(self.data))


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: apt-get install -y systemd (it works without systemd running)")
    return path


@pytest.fixture(scope="module")
def installed():
    # Not under pytest's tmp_path: that is mode 0700, and the service user must reach the venv.
    root = Path(tempfile.mkdtemp(prefix="corridor-root-", dir="/tmp"))
    root.chmod(0o755)
    port = free_port()
    started = time.monotonic()
    result = script(
        INSTALL, "--root", str(root), "--no-start", "--user", SERVICE_USER, "--org", ORG, "--listen", f"127.0.0.1:{port}"
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\ninstall.sh: {seconds:.1f} s")
    yield Install(root, port, result.stdout, seconds)
    shutil.rmtree(root, ignore_errors=True)


# -- the unit's sandbox without systemd --------------------------------------------------------

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE, MS_BIND = 0x4000, 1 << 18, 0x1000
MOUNT_ATTR_RDONLY, AT_RECURSIVE, AT_FDCWD = 0x1, 0x8000, -100
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 24, 38, 65, 1
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
AF_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}
AF_MAX = 46
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_MASKED_EQ = 4, 5, 7


def SCMP_ACT_ERRNO(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def syscall_groups() -> dict[str, list[str]]:
    """systemd's named syscall sets, e.g. "@system-service", as this systemd defines them."""
    listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in listing.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    for name in names:
        found |= expand(groups[name], groups) if name.startswith("@") else {name}
    return found


def check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


class UnitSandbox:
    """A `preexec_fn` that puts the child into the unit's sandbox, as systemd does before exec.

    Everything that needs lookups (the user, the syscall sets, the seccomp programs) is prepared
    in the parent; the child only makes system calls. The mount changes happen in the child's
    own mount namespace, made private first, so nothing reaches the host's mounts.
    """

    def __init__(self, unit_text: str, **override: list[str]):
        settings = {**unit_settings(unit_text), **override}
        self.user = pwd.getpwnam(settings["User"][-1])
        self.gid = grp.getgrnam(settings["Group"][-1]).gr_gid
        self.umask = int(settings["UMask"][-1], 8)
        # systemd raises the limit as PID 1; a root without CAP_SYS_RESOURCE (as in some
        # containers) cannot go past its own hard limit.
        self.nofile = min(int(settings["LimitNOFILE"][-1]), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        assert settings["NoNewPrivileges"] == ["yes"] and settings["CapabilityBoundingSet"] == [""]
        assert settings["ProtectSystem"] == ["strict"] and settings["ProtectHome"] == ["yes"]
        assert settings["MemoryDenyWriteExecute"] == ["yes"]
        self.writable = [path for value in settings["ReadWritePaths"] for path in value.split()]
        self.hidden = [path for path in ("/home", "/root", "/run/user") if os.path.isdir(path)]
        self.last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        self.seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        self.seccomp.seccomp_init.restype = ctypes.c_void_p
        self.seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
        self.seccomp.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(ArgCmp),
        ]
        self.seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
        families = {AF_FAMILIES[name] for value in settings["RestrictAddressFamilies"] for name in value.split()}
        error = SCMP_ACT_ERRNO(getattr(errno, settings["SystemCallErrorNumber"][-1]))
        # Loaded in this order: the allow-list last, as it refuses seccomp() itself.
        self.filters = [
            self._mdwe_filter(),
            self._family_filter(families),
            self._syscall_filter(settings["SystemCallFilter"], error),
        ]

    def _rule(self, ctx: int, action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
        number = self.seccomp.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return  # not a syscall on this architecture
        array = (ArgCmp * max(len(cmps), 1))(*[ArgCmp(*c) for c in cmps])
        assert self.seccomp.seccomp_rule_add_array(ctx, action, number, len(cmps), array) == 0, name

    def _mdwe_filter(self) -> int:
        """systemd 252's MemoryDenyWriteExecute: no W+X mappings, nothing made executable later."""
        ctx = self.seccomp.seccomp_init(SCMP_ACT_ALLOW)
        wx = PROT_WRITE | PROT_EXEC
        self._rule(ctx, SCMP_ACT_ERRNO(errno.EPERM), "mmap", (2, SCMP_CMP_MASKED_EQ, wx, wx))
        for name in ("mprotect", "pkey_mprotect"):
            self._rule(ctx, SCMP_ACT_ERRNO(errno.EPERM), name, (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        self._rule(ctx, SCMP_ACT_ERRNO(errno.EPERM), "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
        return ctx

    def _family_filter(self, allowed: set[int]) -> int:
        ctx = self.seccomp.seccomp_init(SCMP_ACT_ALLOW)
        refused = SCMP_ACT_ERRNO(errno.EAFNOSUPPORT)
        for family in range(AF_MAX):
            if family not in allowed:
                self._rule(ctx, refused, "socket", (0, SCMP_CMP_EQ, family, 0))
        self._rule(ctx, refused, "socket", (0, SCMP_CMP_GE, AF_MAX, 0))
        return ctx

    def _syscall_filter(self, values: list[str], error: int) -> int:
        """An allow-list; a later `~` line takes its sets out of it (systemd.exec(5))."""
        groups = syscall_groups()
        allowed = expand(values[0].split(), groups)
        for value in values[1:]:
            allowed -= expand(value.removeprefix("~").split(), groups)
        ctx = self.seccomp.seccomp_init(error)
        for name in sorted(allowed):
            self._rule(ctx, SCMP_ACT_ALLOW, name)
        return ctx

    def __call__(self) -> None:
        try:
            self._enter()
        except BaseException as exc:
            # subprocess only reports "Exception occurred in preexec_fn"; say which step failed.
            os.write(2, f"sandbox: {exc!r}\n".encode())
            raise

    def _enter(self) -> None:
        check(libc.unshare(CLONE_NEWNS), "unshare")
        check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        for path in self.hidden:  # ProtectHome=yes: empty and inaccessible
            check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, b"mode=000"), f"hide {path}")
        readonly = MountAttr(attr_set=MOUNT_ATTR_RDONLY)
        writable = MountAttr(attr_clr=MOUNT_ATTR_RDONLY)
        check(libc.mount_setattr(AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(readonly), ctypes.sizeof(readonly)), "read-only /")
        for path in ["/dev", *self.writable]:
            check(libc.mount(path.encode(), path.encode(), None, MS_BIND | MS_REC, None), f"bind {path}")
            check(
                libc.mount_setattr(AT_FDCWD, path.encode(), AT_RECURSIVE, ctypes.byref(writable), ctypes.sizeof(writable)),
                f"writable {path}",
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        for cap in range(self.last_cap + 1):
            check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability")
        os.initgroups(self.user.pw_name, self.gid)
        os.setgid(self.gid)
        os.setuid(self.user.pw_uid)
        os.umask(self.umask)
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no new privileges")
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            check(-1, "PR_SET_MDWE")  # EINVAL: a kernel before 6.3, where the seccomp rules do it alone
        for ctx in self.filters:
            check(self.seccomp.seccomp_load(ctx), "seccomp_load")


def exec_start(install: Install) -> list[str]:
    (line,) = unit_settings(install.unit_at_root())["ExecStart"]
    return line.split()


# -- the tests ---------------------------------------------------------------------------------


def python_version(python: str) -> str | None:
    try:
        ran = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
    except OSError:
        return None
    return ran.stdout.strip() if ran.returncode == 0 else None


def test_install_refuses_an_interpreter_the_service_cannot_use(tmp_path):
    candidates = [shutil.which("python3.10"), *sorted(Path("/root/.pyenv/versions").glob("3.10*/bin/python3.10"))]
    old = next((c for c in candidates if c and python_version(str(c)) == "3.10"), None)
    if old is None:
        pytest.skip("no Python 3.10 on this machine to show the version check")
    result = script(INSTALL, "--root", str(tmp_path), "--python", str(old), "--org", ORG)
    assert result.returncode == 2
    assert "Corridor needs Python 3.11 or newer" in result.stderr and "is Python 3.10" in result.stderr
    assert not (tmp_path / "opt").exists()
    missing = script(INSTALL, "--root", str(tmp_path), "--python", "/nonexistent/python3", "--org", ORG)
    assert missing.returncode == 2 and "is not an executable" in missing.stderr


def test_install_refuses_a_python_in_a_home_directory(tmp_path):
    base = os.path.realpath(sys.base_prefix)
    if not base.startswith(("/root/", "/home/")):
        pytest.skip(f"this interpreter lives in {base}, not in a home directory")
    result = script(INSTALL, "--root", str(tmp_path), "--python", os.path.realpath(sys._base_executable), "--org", ORG)
    assert result.returncode == 2 and "ProtectHome=yes hides" in result.stderr, result.stderr


def test_install_creates_the_venv_the_data_dir_and_the_unit(installed, systemd_analyze):
    assert installed.seconds < 120
    help_text = installed.corridor("--help")
    assert help_text.returncode == 0 and "serve" in help_text.stdout

    data = installed.data
    assert data.stat().st_mode & 0o777 == 0o700
    group = grp.getgrgid(pwd.getpwnam(SERVICE_USER).pw_gid).gr_name
    assert data.owner() == SERVICE_USER and data.group() == group
    assert (data / "corridor.toml").is_file() and f"127.0.0.1:{installed.port}" in (data / "corridor.toml").read_text()
    assert all(key.stat().st_mode & 0o777 == 0o600 for key in (data / "tls").glob("*.key"))
    assert (installed.venv / "bin/python").resolve().is_relative_to("/usr"), "the venv must use a system Python"

    # The first admin's invite is printed once, by this first install.
    invites = re.findall(r"corridor://\S+", installed.output)
    assert len(invites) == 1 and invites[0].startswith(f"corridor://127.0.0.1:{installed.port}/enroll?token=")

    settings = unit_settings(installed.unit.read_text())
    assert settings["User"] == [SERVICE_USER] and settings["Group"] == [group]
    assert settings["ExecStart"] == ["/opt/corridor/venv/bin/corridor serve /var/lib/corridor"]
    assert settings["ReadWritePaths"] == ["/var/lib/corridor"]
    moved = installed.root / "corridor.service"
    moved.write_text(installed.unit_at_root())
    verified = subprocess.run([systemd_analyze, "verify", str(moved)], capture_output=True, text=True)
    # Only the test's choice of user draws a remark; the unit as shipped names `corridor`.
    remarks = [line for line in verified.stderr.splitlines() if line and f"Special user {SERVICE_USER} configured" not in line]
    assert verified.returncode == 0 and remarks == [], verified.stderr


def test_the_sandbox_allows_the_server_what_it_needs_and_nothing_else(installed, systemd_analyze):
    """Netlink is how zeroconf lists interfaces for a wildcard listen address; the rest must fail."""
    probe = """
import json, mmap, os, socket, sys
import ifaddr
import cryptography.hazmat.primitives.kdf.argon2
found = {"adapters": len(ifaddr.get_adapters())}
for name, attempt in {
    "wx_mapping": lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC),
    "packet_socket": lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW),
    "write_venv": lambda: open(sys.argv[1] + "/probe", "w"),
    "write_data": lambda: open(sys.argv[2] + "/probe", "w"),
    "chown_own_file": lambda: os.chown(sys.argv[2] + "/probe", os.getuid(), os.getgid()),
}.items():
    try:
        attempt()
        found[name] = "ok"
    except OSError as exc:
        found[name] = os.strerror(exc.errno)
print(json.dumps(found))
"""
    python = str(installed.venv / "bin/python")
    args = [python, "-c", probe, str(installed.venv), str(installed.data)]
    sandbox = UnitSandbox(installed.unit_at_root())
    inside = subprocess.run(args, preexec_fn=sandbox, cwd="/", capture_output=True, text=True, timeout=60)
    assert inside.returncode == 0, inside.stderr
    found = json.loads(inside.stdout)
    assert found.pop("adapters") >= 1
    assert found == {
        "wx_mapping": "Operation not permitted",
        "packet_socket": "Address family not supported by protocol",
        "write_venv": "Read-only file system",
        "write_data": "ok",
        "chown_own_file": "Operation not permitted",
    }
    (installed.data / "probe").unlink()

    no_netlink = UnitSandbox(installed.unit_at_root(), RestrictAddressFamilies=["AF_UNIX AF_INET AF_INET6"])
    without = subprocess.run(args, preexec_fn=no_netlink, cwd="/", capture_output=True, text=True, timeout=60)
    assert without.returncode != 0 and "OSError" in without.stderr, without.stderr


def test_the_installed_server_runs_as_the_unit_and_a_client_enrolls_and_sends(installed, systemd_analyze, tmp_path):
    server = subprocess.Popen(
        exec_start(installed),
        preexec_fn=UnitSandbox(installed.unit_at_root()),
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = server.stdout.readline()
        assert "serving 'Deploy Test Ltd'" in ready, ready + server.stderr.read()
        sock = installed.data / "control.sock"
        assert sock.owner() == SERVICE_USER and sock.stat().st_mode & 0o777 == 0o600
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{server.pid}/status").read_text().splitlines())
        assert status["Uid"].split()[0] == str(pwd.getpwnam(SERVICE_USER).pw_uid)
        assert (status["CapBnd"], status["NoNewPrivs"], status["Seccomp_filters"]) == ("0000000000000000", "1", "3")

        # Zeroconf works in the sandbox: the server announces itself on the address it listens on.
        found = installed.corridor("discover", "--interface", "127.0.0.1", "--timeout", "3", "--json")
        ours = [s for s in map(json.loads, found.stdout.splitlines()) if s["org"] == ORG]
        assert found.returncode == 0 and [s["port"] for s in ours] == [installed.port], found.stdout + found.stderr

        (invite,) = re.findall(r"corridor://\S+", installed.output)
        admin_profile, alice_profile = str(tmp_path / "admin"), str(tmp_path / "alice")
        enrolled = installed.corridor("enroll", invite, "--password-stdin", "--profile", admin_profile, stdin="first-admin-pw\n")
        assert enrolled.returncode == 0, enrolled.stderr

        added = installed.corridor(
            "admin", "--data", str(installed.data), "user", "add", "alice", "--name", "Alice Wong", "--json"
        )
        assert added.returncode == 0, added.stderr
        alice = installed.corridor(
            "enroll", json.loads(added.stdout)["invite"], "--password-stdin", "--profile", alice_profile, stdin="alice-password\n"
        )
        assert alice.returncode == 0, alice.stderr

        sent = installed.corridor("send", "alice", "Welcome to Corridor", "--profile", admin_profile, "--json")
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["seq"] == 1
        history = installed.corridor("history", "admin", "--profile", alice_profile)
        assert history.returncode == 0 and "admin → alice: Welcome to Corridor" in history.stdout, history.stdout

        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        stop_seconds = time.monotonic() - started
        timeout_stop = float(unit_settings(installed.unit.read_text())["TimeoutStopSec"][0])
        print(f"\nstopped by SIGTERM in {stop_seconds:.2f} s (TimeoutStopSec={timeout_stop:g})")
        assert stop_seconds < timeout_stop / 3
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    log = server.stderr.read()
    assert "advertising" in log and "stopped;" in log
    assert [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line] == []


def data_digest(data: Path) -> dict[str, str]:
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.rglob("*")) if p.is_file()}


def test_install_again_upgrades_in_place_and_keeps_the_data(installed):
    before = data_digest(installed.data)
    code = next(installed.venv.glob("lib/python3*/site-packages/corridor/server/cli.py"))
    code_inode, python_inode = code.stat().st_ino, (installed.venv / "bin/python").lstat().st_ino
    ca = re.search(r"CA fingerprint: (sha256:[0-9a-f]{64})", installed.output).group(1)
    again = script(INSTALL, "--root", str(installed.root), "--no-start", "--user", SERVICE_USER, "--org", "Another Name")
    assert again.returncode == 0, again.stderr
    assert "--org/--listen/--hostname are ignored" in again.stdout
    assert f"Kept the data dir {installed.data} for {ORG!r}" in again.stdout
    assert f"CA fingerprint: {ca}" in again.stdout
    assert "corridor://" not in again.stdout  # the first admin's invite was shown once
    assert data_digest(installed.data) == before
    # In place: the same venv, with Corridor's files written anew from this checkout.
    assert "Upgrading the venv" in again.stdout
    assert (installed.venv / "bin/python").lstat().st_ino == python_inode and code.stat().st_ino != code_inode
    assert installed.corridor("--help").returncode == 0


def test_uninstall_keeps_the_data_and_purge_removes_it(installed):
    kept = script(UNINSTALL, "--root", str(installed.root))
    assert kept.returncode == 0, kept.stderr
    assert not installed.venv.exists() and not installed.unit.exists()
    assert (installed.data / "corridor.toml").is_file()
    assert f"Kept the data dir {installed.data} (messages, archive, CA key)." in kept.stdout

    purged = script(UNINSTALL, "--root", str(installed.root), "--purge")
    assert purged.returncode == 0, purged.stderr
    assert f"the data dir {installed.data}" in purged.stdout and "every message" in purged.stdout
    assert not installed.data.exists()
