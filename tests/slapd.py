"""A real OpenLDAP `slapd` on 127.0.0.1 for tests, with helpers to script org changes.

Each `slapd` fixture gets its own server: a slapd.conf and an mdb database in a temp dir,
listening on two free loopback ports (plain `ldap://` and `ldaps://` with a certificate from
a throwaway CA), started in the foreground and stopped at teardown. It starts in well under a
second, so tests do not share one and cannot see each other's entries.

Use it from a test module with `from .slapd import slapd_fixture  # noqa: F401` and a `slapd`
argument. `slapd.ldap_config(data_dir)` gives an `[ldap]` section (writing its password file)
that reads `ou=People` as the rootdn; `add_ou`, `add_person`, `add_group`, `modify`, `move` and
`delete` script the org.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap3 import MODIFY_REPLACE, NONE, Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import escape_rdn, to_dn

from corridor.deploy.pki import create_ca, issue_server_cert
from corridor.server.config import Ldap

from .cli_helpers import free_port

# msuser defines AD's sAMAccountName and userAccountControl, so tests can play Active Directory.
SCHEMAS = ("core", "cosine", "inetorgperson", "nis", "msuser")
SUFFIX = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "slapd-test-password"
# An ordinary account, capped like slapd caps everyone but its rootdn (500 entries by default).
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-test-password"
READER_SIZE_LIMIT = 4
PEOPLE = f"ou=People,{SUFFIX}"
GROUPS = f"ou=Groups,{SUFFIX}"
START_TIMEOUT = 10.0
PASSWORD_FILE = "ldap.password"
CA_FILE = "ldap-ca.pem"


def _find_slapd() -> str:
    found = shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin:/usr/local/sbin")
    if not found:
        pytest.fail("slapd is not installed: run `apt-get install -y slapd ldap-utils` (CI installs it)", pytrace=False)
    return found


class Slapd:
    """A running slapd with `dc=example,dc=com`, `ou=People`, `ou=Groups` and the `READER_DN`
    account in it."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.ca_pem, ca_key = create_ca("Slapd Test")
        self.cert_pem, self.key_pem = issue_server_cert(self.ca_pem, ca_key, ["127.0.0.1"])
        self.process: subprocess.Popen | None = None
        self.admin: Connection | None = None
        self.url = self.ldaps_url = ""

    def start(self) -> None:
        """Start slapd and wait until it accepts the admin bind; fails the test if it does not."""
        binary = _find_slapd()
        (self.workdir / "db").mkdir(parents=True)
        for name, data in (("ca.pem", self.ca_pem), ("server.pem", self.cert_pem), ("server.key", self.key_pem)):
            (self.workdir / name).write_bytes(data)
        (self.workdir / "slapd.conf").write_text(self._conf())
        port = tls_port = free_port()
        while tls_port == port:
            tls_port = free_port()
        self.url, self.ldaps_url = f"ldap://127.0.0.1:{port}", f"ldaps://127.0.0.1:{tls_port}"
        stderr = self.workdir / "slapd.stderr"
        with stderr.open("wb") as err:
            # -d keeps slapd in the foreground (we own its lifetime); level "none" logs only what
            # is always logged, such as config errors, to stderr instead of syslog.
            self.process = subprocess.Popen(
                [binary, "-f", str(self.workdir / "slapd.conf"), "-h", f"{self.url}/ {self.ldaps_url}/", "-d", "none"],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while self.admin is None:
            status = self.process.poll()
            if status is not None or time.monotonic() > deadline:
                why = f"exited with status {status}" if status is not None else f"accepted no bind within {START_TIMEOUT} s"
                self.stop()
                pytest.fail(f"slapd {why}; its stderr:\n{stderr.read_text(errors='replace')}", pytrace=False)
            try:
                self.admin = Connection(
                    Server(self.url, get_info=NONE, connect_timeout=1),
                    ADMIN_DN,
                    ADMIN_PASSWORD,
                    auto_bind=True,
                    raise_exceptions=True,
                    receive_timeout=5,
                )
            except LDAPException:
                time.sleep(0.02)
        self.admin.raise_exceptions = False  # so that _check can say which change was refused
        self.add(SUFFIX, ["dcObject", "organization"], dc="example", o="Example")
        self.add(READER_DN, ["organizationalRole", "simpleSecurityObject"], cn="reader", userPassword=READER_PASSWORD)
        self.add_ou("People", SUFFIX)
        self.add_ou("Groups", SUFFIX)

    def stop(self) -> None:
        """Stop slapd: SIGTERM, then SIGKILL if it has not exited within 5 s."""
        if self.admin is not None:
            self.admin.unbind()
            self.admin = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _conf(self) -> str:
        work = self.workdir
        lines = [f'include "/etc/ldap/schema/{name}.schema"' for name in SCHEMAS]
        lines += [
            f'pidfile "{work / "slapd.pid"}"',
            f'argsfile "{work / "slapd.args"}"',
            'modulepath "/usr/lib/ldap"',
            "moduleload back_mdb",
            f'TLSCACertificateFile "{work / "ca.pem"}"',
            f'TLSCertificateFile "{work / "server.pem"}"',
            f'TLSCertificateKeyFile "{work / "server.key"}"',
            "database mdb",
            "maxsize 67108864",
            "dbnosync",
            f'suffix "{SUFFIX}"',
            f'rootdn "{ADMIN_DN}"',
            f"rootpw {ADMIN_PASSWORD}",
            f'directory "{work / "db"}"',
            f'limits dn.exact="{READER_DN}" size={READER_SIZE_LIMIT}',
        ]
        return "\n".join(lines) + "\n"

    def _check(self, ok: bool, what: str) -> None:
        assert ok, f"slapd refused to {what}: {self.admin.result}"

    def add(self, dn: str, object_class: str | list[str], **attributes) -> str:
        """Add an entry; returns its DN."""
        self._check(self.admin.add(dn, object_class, attributes), f"add {dn}")
        return dn

    def add_ou(self, name: str, parent: str = PEOPLE) -> str:
        """Add an organizationalUnit called `name` (escaped into the DN as needed); returns its DN."""
        return self.add(f"ou={escape_rdn(name)},{parent}", "organizationalUnit", ou=name)

    def add_person(self, dn: str, **attributes) -> str:
        """Add an inetOrgPerson; `cn` and `sn` default to the RDN value (as the DN spells it)."""
        name = to_dn(dn)[0].partition("=")[2]
        attributes.setdefault("cn", name)
        attributes.setdefault("sn", name)
        return self.add(dn, "inetOrgPerson", **attributes)

    def add_group(self, dn: str, members: list[str]) -> str:
        """Add a groupOfNames with these member DNs."""
        return self.add(dn, "groupOfNames", cn=to_dn(dn)[0].partition("=")[2], member=members)

    def modify(self, dn: str, **attributes) -> None:
        """Replace attributes' values; `[]` deletes an attribute."""
        changes = {name: [(MODIFY_REPLACE, value if isinstance(value, list) else [value])] for name, value in attributes.items()}
        self._check(self.admin.modify(dn, changes), f"modify {dn}")

    def move(self, dn: str, new_parent: str) -> str:
        """Move an entry under another parent (modrdn with a new superior); returns its new DN."""
        rdn = to_dn(dn)[0]
        self._check(self.admin.modify_dn(dn, rdn, new_superior=new_parent), f"move {dn} under {new_parent}")
        return f"{rdn},{new_parent}"

    def delete(self, dn: str) -> None:
        """Delete an entry (it must have no children)."""
        self._check(self.admin.delete(dn), f"delete {dn}")

    def ldap_config(self, data_dir: Path, **overrides) -> Ldap:
        """An `[ldap]` section for this server, bound as its admin, reading `ou=People`.

        Writes the password file (`PASSWORD_FILE`) and the CA certificate (`CA_FILE`, for
        `url=slapd.ldaps_url, ca_file=CA_FILE`) into `data_dir`.
        """
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / PASSWORD_FILE).write_text(ADMIN_PASSWORD + "\n")
        (data_dir / CA_FILE).write_bytes(self.ca_pem)
        settings = {"url": self.url, "bind_dn": ADMIN_DN, "bind_password_file": PASSWORD_FILE, "users_base": PEOPLE}
        return Ldap(**(settings | overrides))


@pytest.fixture(name="slapd")
def slapd_fixture(tmp_path: Path) -> Iterator[Slapd]:
    """A fresh slapd for one test, stopped at teardown."""
    server = Slapd(tmp_path / "slapd")
    try:
        server.start()
        yield server
    finally:
        server.stop()
