"""Read an LDAP or Active Directory tree into the directory's desired state (`DirectorySpec`).

How this works: one bind, then three reads. The OUs under `users_base` become departments,
named by their OU path from the base down. The people under it are read with the paged-results
control (pages of 500, so a 20,000-person AD is fine); each one's department is the OU path of
its parent entry. Then each group named in `[ldap.roles]` is read by its DN and its direct
members get that group's role (the most powerful one wins); with a mapping, people in no
mapped group are plain users, so removing someone from a group takes the role away.

Entries are matched by normalised DN (types and values compared case-insensitively, escapes
undone) because servers do not spell the same DN the same way everywhere: a `manager` or
`member` value need not match the entry's own DN byte for byte.

An entry that cannot become a person (no username, an unusable username, a duplicate) is
skipped with a warning naming its DN, never guessed at. A failed bind or search is an
`LdapError`: a partial read would look like people leaving. Blocking; the server calls
`read_directory` in a worker thread.
"""

from __future__ import annotations

import math
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from string import hexdigits

from ldap3 import BASE, NO_ATTRIBUTES, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPException,
    LDAPInvalidDnError,
    LDAPNoSuchObjectResult,
    LDAPOperationResult,
)
from ldap3.utils.dn import parse_dn

from corridor.protocol.messages import ImportPerson
from corridor.protocol.names import USERNAME, USERNAME_RULE

from ...config import Ldap
from .specs import DepartmentPath, DirectorySpec

PAGE_SIZE = 500
MAX_TEXT = 256
MAX_NAME = 128
# Most powerful first: someone in several mapped groups gets the first role that applies.
ROLE_ORDER = ("admin", "auditor", "dept_admin", "user")
AD_ACCOUNT_DISABLED = 0x2  # the ACCOUNTDISABLE bit of userAccountControl

Rdn = tuple[tuple[str, str], ...]  # (type lower-cased, value unescaped) for each part of one RDN
DnKey = tuple[Rdn, ...]  # a whole DN with values case-folded and the parts of each RDN sorted


class LdapError(Exception):
    """The directory server cannot be reached, refused the bind, or failed a read."""


def read_directory(config: Ldap, data_dir: Path) -> tuple[DirectorySpec, list[str]]:
    """Read departments, people and roles from the server in `config`.

    Returns the spec and warnings about skipped entries (each names the DN). Raises
    `LdapError` when the server cannot be reached, the bind is refused, a read fails or the
    password file cannot be read.
    """
    connection = _connect(config, data_dir)
    try:
        base = _parse(config.users_base)
        departments = _read_departments(connection, config, base)
        people, warnings = _read_people(connection, config, base)
        roles = _read_roles(connection, config)
    finally:
        with suppress(LDAPException):  # the server may have dropped the connection already
            connection.unbind()
    usernames = {key: person.username for key, (person, _) in people.items()}
    specs = []
    for key, (person, manager_dn) in people.items():
        manager = usernames.get(_dn_key(manager_dn), "")
        specs.append(
            replace(
                person,
                manager=manager if manager != person.username else "",
                # With a role mapping, LDAP decides roles: leaving every mapped group makes a plain user.
                role=next((role for role in ROLE_ORDER if role in roles.get(key, ())), "user" if config.roles else None),
            )
        )
        for path in person.departments:
            departments |= _prefixes(path)
    return DirectorySpec(tuple(sorted(departments)), tuple(sorted(specs, key=lambda p: p.username))), warnings


def _connect(config: Ldap, data_dir: Path) -> Connection:
    password = None
    if config.bind_dn:
        path = data_dir / config.bind_password_file
        try:
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise LdapError(f"cannot read the LDAP bind password file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        if not password:
            # A simple bind with a DN and no password is an unauthenticated bind that servers accept.
            raise LdapError(f"the LDAP bind password file {path} is empty")
    tls = None
    if config.url.lower().startswith("ldaps://"):
        ca_file = str(data_dir / config.ca_file) if config.ca_file else None
        if ca_file and not Path(ca_file).is_file():
            raise LdapError(f"the LDAP CA file {ca_file} does not exist")
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
    server = Server(config.url, connect_timeout=config.timeout, get_info=NONE, tls=tls)
    connection = Connection(
        server,
        user=config.bind_dn or None,
        password=password,
        receive_timeout=math.ceil(config.timeout),  # ldap3 packs it into SO_RCVTIMEO as whole seconds
        raise_exceptions=True,
        auto_referrals=False,
        read_only=True,
    )
    with _ldap_errors(f"cannot reach {config.url}"):
        connection.open()
    try:
        with _ldap_errors(f"bind to {config.url} as {config.bind_dn or 'anonymous'} failed"):
            connection.bind()
    except LdapError:
        with suppress(LDAPException):
            connection.unbind()
        raise
    return connection


@contextmanager
def _ldap_errors(doing: str) -> Iterator[None]:
    """Turn what an ldap3 call raises into an LdapError that says what we were doing.

    Only ldap3 calls run inside: besides its own exceptions, ldap3 reports a peer that does not
    speak LDAP with whatever its decoder trips on (a KeyError, an IndexError).
    """
    try:
        yield
    except LdapError:
        raise
    except LDAPException as exc:
        raise LdapError(f"{doing}: {_reason(exc)}") from None
    except Exception as exc:
        raise LdapError(f"{doing}: not an LDAP answer ({type(exc).__name__}: {exc})") from None


def _reason(exc: LDAPException) -> str:
    """The short why of an ldap3 error: the result name and the server's diagnostic, or the
    socket or TLS error inside ldap3's wording ("socket connection error while opening:
    [Errno 111] Connection refused")."""
    if isinstance(exc, LDAPOperationResult):
        return f"{exc.description} ({exc.message})" if exc.message else str(exc.description)
    text = str(exc)
    tls = re.search(r"\[SSL(?:: \w+)?\] (.*?) \(_ssl\.c:\d+\)", text)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]*)", text)
    wrong_name = re.search(r"doesn't match any name in \['(.*)'\]", text)
    if tls:
        return f"TLS: {tls[1]}"
    if wrong_name:
        return f"TLS: the certificate is not valid for {wrong_name[1]}"
    if errno:
        return errno[1].lower()
    return text


def _search(connection: Connection, config: Ldap, search_filter: str, attributes: list[str]) -> Iterator[dict]:
    """Entries under `users_base`, page by page (AD caps unpaged searches at 1,000 entries)."""
    doing = f"searching {config.users_base} on {config.url} failed"
    count = 0
    with _ldap_errors(doing):
        for item in connection.extend.standard.paged_search(
            config.users_base, search_filter, SUBTREE, attributes=attributes, paged_size=PAGE_SIZE, generator=True
        ):
            if item.get("type") == "searchResEntry":  # AD also sends continuation references
                count += 1
                yield item
    # ldap3 ends a search quietly on sizeLimitExceeded (slapd caps everyone but its rootdn at 500
    # entries by default) or timeLimitExceeded; a cut list would look like everyone after it leaving.
    result = connection.result or {}
    if result.get("result", 0) != 0:
        raise LdapError(
            f"{doing}: {result.get('description')} after {count} entries (raise the server's limits for this account)"
        )


def _read_departments(connection: Connection, config: Ldap, base: list[Rdn]) -> set[DepartmentPath]:
    departments: set[DepartmentPath] = set()
    for entry in _search(connection, config, config.department_filter, [NO_ATTRIBUTES]):
        relative = _relative(entry["dn"], base)
        if relative:
            departments |= _prefixes(_ou_path(relative))
    return departments


def _read_people(
    connection: Connection, config: Ldap, base: list[Rdn]
) -> tuple[dict[DnKey, tuple[ImportPerson, str]], list[str]]:
    """Each person (without manager and role yet) and their manager's DN, by DN key; and
    warnings about the entries skipped."""
    names = (
        config.username_attribute,
        config.display_name_attribute,
        "cn",
        config.title_attribute,
        config.email_attribute,
        config.phone_attribute,
        config.extension_attribute,
        config.employee_no_attribute,
        config.manager_attribute,
        config.disabled_attribute,
        "userAccountControl" if config.active_directory else "",
    )
    warnings: list[str] = []
    entries = []
    for entry in _search(connection, config, config.user_filter, [name for name in names if name]):
        relative = _relative(entry["dn"], base)
        if relative is None:
            warnings.append(f"{entry['dn']}: skipped: not a valid DN under {config.users_base}")
        else:
            entries.append((_key(relative + base), relative, entry))
    # Sorted by DN so that of two entries with one username the same one wins on every sync.
    entries.sort(key=lambda item: item[0])
    people: dict[DnKey, tuple[ImportPerson, str]] = {}
    owners: dict[str, str] = {}
    for key, relative, entry in entries:
        dn, values = entry["dn"], _attributes(entry)
        raw = _first(values, config.username_attribute)
        username = raw.lower()
        if not raw:
            warnings.append(f"{dn}: skipped: no {config.username_attribute}")
            continue
        if not USERNAME.match(username):
            warnings.append(f"{dn}: skipped: {config.username_attribute} {raw!r} is not usable ({USERNAME_RULE})")
            continue
        if username in owners:
            warnings.append(f"{dn}: skipped: username {username!r} is already used by {owners[username]}")
            continue
        owners[username] = dn
        active, problem = _active(config, values)
        if problem:
            warnings.append(f"{dn}: {problem}")
        department = _ou_path(relative[1:])
        person = ImportPerson(
            username=username,
            display_name=(_first(values, config.display_name_attribute) or _first(values, "cn") or username)[:MAX_NAME],
            title=_first(values, config.title_attribute)[:MAX_TEXT],
            email=_first(values, config.email_attribute)[:MAX_TEXT],
            phone=_first(values, config.phone_attribute)[:MAX_TEXT],
            extension=_first(values, config.extension_attribute)[:MAX_TEXT],
            employee_no=_first(values, config.employee_no_attribute)[:MAX_TEXT],
            departments=(department,) if department else (),
            active=active,
        )
        people[key] = (person, _first(values, config.manager_attribute))
    return people, warnings


def _active(config: Ldap, values: dict[str, list[str]]) -> tuple[bool, str]:
    """Whether the account is enabled, and a warning when that cannot be told."""
    if config.disabled_attribute:
        disabled = {v.casefold() for v in config.disabled_values}
        if any(v.casefold() in disabled for v in values.get(config.disabled_attribute.lower(), [])):
            return False, ""
    if config.active_directory:
        flags = _first(values, "userAccountControl")
        try:
            return not int(flags) & AD_ACCOUNT_DISABLED, ""
        except ValueError:
            return True, f"userAccountControl {flags!r} is not a number; taken as enabled"
    return True, ""


def _read_roles(connection: Connection, config: Ldap) -> dict[DnKey, set[str]]:
    """The roles each member DN gets from the groups in `[ldap.roles]`."""
    roles: dict[DnKey, set[str]] = {}
    for group, role in config.roles.items():
        for key in filter(None, map(_dn_key, _group_members(connection, config.url, group))):
            roles.setdefault(key, set()).add(role)
    return roles


def _group_members(connection: Connection, url: str, group: str) -> list[str]:
    """`member` and `uniqueMember` values of a group (direct members), following AD's ranged
    retrieval: AD returns at most 1,500 values of a big group's `member`, as
    `member;range=0-1499`, and wants the next slice asked for by name."""
    members: list[str] = []
    wanted = ["member", "uniqueMember"]
    while wanted:
        with _ldap_errors(f"reading group {group} on {url} failed"):
            try:
                connection.search(group, "(objectClass=*)", BASE, attributes=wanted)
            except LDAPNoSuchObjectResult:
                # Read as empty, it would quietly demote everyone in it.
                raise LdapError(f"group {group} in [ldap.roles] does not exist on {url}") from None
            response = connection.response or []
        wanted = []
        for entry in response:
            if entry.get("type") != "searchResEntry":
                continue
            for name, values in entry["raw_attributes"].items():
                attribute, _, option = name.partition(";")
                members += [_decode(value) for value in values]
                ranged = re.fullmatch(r"range=\d+-(\d+)", option, re.IGNORECASE)  # the last slice ends in "*"
                if ranged:
                    wanted.append(f"{attribute};range={int(ranged[1]) + 1}-*")
    return members


def _dn_key(dn: str) -> DnKey | None:
    """The key of a DN held in an attribute (manager, member); None when it is not a DN."""
    # uniqueMember may carry a "#'0101'B" unique identifier after the DN.
    if dn.endswith("'B") and "#'" in dn:
        dn = dn.rpartition("#'")[0]
    try:
        return _key(_parse(dn)) if dn else None
    except LDAPInvalidDnError:
        return None


def _attributes(entry: dict) -> dict[str, list[str]]:
    """An entry's values by lower-cased attribute name (servers echo names in their own case)."""
    return {name.lower(): [_decode(v) for v in values] for name, values in entry["raw_attributes"].items()}


def _first(values: dict[str, list[str]], name: str) -> str:
    found = values.get(name.lower()) if name else None
    return found[0].strip() if found else ""


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _parse(dn: str) -> list[Rdn]:
    """A DN as its RDNs, leaf first; raises LDAPInvalidDnError."""
    rdns: list[Rdn] = []
    parts: list[tuple[str, str]] = []
    for attribute, value, separator in parse_dn(dn, strip=True):
        parts.append((attribute.lower(), _unescape(value)))
        if separator != "+":
            rdns.append(tuple(parts))
            parts = []
    return rdns


def _unescape(value: str) -> str:
    r"""An RDN value as text: `\,` is a comma, `\E5\BC\A0` the UTF-8 bytes of 张."""
    out = bytearray()
    i = 0
    while i < len(value):
        pair = value[i + 1 : i + 3]
        if value[i] == "\\" and len(pair) == 2 and all(c in hexdigits for c in pair):
            out += bytes.fromhex(pair)
            i += 3
        elif value[i] == "\\" and i + 1 < len(value):
            out += value[i + 1].encode()
            i += 2
        else:
            out += value[i].encode()
            i += 1
    return out.decode("utf-8", errors="replace")


def _key(rdns: list[Rdn]) -> DnKey:
    """What makes two spellings of one DN equal: case and the order inside an RDN do not count."""
    return tuple(tuple(sorted((t, v.casefold()) for t, v in rdn)) for rdn in rdns)


def _relative(dn: str, base: list[Rdn]) -> list[Rdn] | None:
    """The RDNs of `dn` below `base` (leaf first); [] for the base itself, None when not under it."""
    try:
        rdns = _parse(dn)
    except LDAPInvalidDnError:
        return None
    if len(rdns) < len(base) or _key(rdns[len(rdns) - len(base) :]) != _key(base):
        return None
    return rdns[: len(rdns) - len(base)]


def _ou_path(relative: list[Rdn]) -> DepartmentPath:
    """Department path of the entry whose RDNs below the base are `relative`, top first.

    Only OUs count: AD keeps people in containers such as `CN=Users` that are not departments.
    """
    names = [value for rdn in reversed(relative) for kind, value in rdn if kind == "ou"]
    return tuple(name.strip()[:MAX_NAME] for name in names if name.strip())


def _prefixes(path: DepartmentPath) -> set[DepartmentPath]:
    """A path and each of its parents, so that every department's parent is in the spec."""
    return {path[:n] for n in range(1, len(path) + 1)}
