"""Reading an LDAP tree into a DirectorySpec, against a real slapd; and the `[ldap]` config."""

from __future__ import annotations

import re
import socket
import threading
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from corridor.protocol.messages import ROLES, ImportPerson
from corridor.server.config import ConfigError, Ldap, parse_config
from corridor.server.features.directory import ldap_source
from corridor.server.features.directory.ldap_source import ROLE_ORDER, LdapError, read_directory
from corridor.server.features.directory.specs import DirectorySpec

from .cli_helpers import free_port
from .slapd import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    CA_FILE,
    GROUPS,
    PEOPLE,
    READER_DN,
    READER_PASSWORD,
    SUFFIX,
    Slapd,
    slapd_fixture,  # noqa: F401
)

ENG = f"ou=Engineering,{PEOPLE}"
PLATFORM = f"ou=Platform,{ENG}"
SALES = f"ou=Sales,{PEOPLE}"
ADMINS = f"cn=Admins,{GROUPS}"
AUDITORS = f"cn=Auditors,{GROUPS}"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def build_org(slapd: Slapd) -> None:
    """Engineering/Platform, Sales, an empty OU, five people and two groups (mapped by `config`)."""
    slapd.add_ou("Engineering")
    slapd.add_ou("Platform", ENG)
    slapd.add_ou("Sales")
    slapd.add_ou("Empty")
    slapd.add_person(
        f"uid=lisi,{ENG}",
        cn="Li Si",
        displayName="李四",
        title="Head of Engineering",
        employeeNumber="E001",
        mail="lisi@example.com",
    )
    slapd.add_person(
        f"uid=zhangsan,{PLATFORM}",
        cn="Zhang San",
        displayName="张三",
        title="Engineer",
        mail="zhangsan@example.com",
        telephoneNumber="+86 10 5555 0101",
        employeeNumber="E002",
        # Spelled differently from lisi's own DN: managers are matched by DN, not by string.
        manager=f"UID=LiSi,OU=engineering,{PEOPLE.upper()}",
    )
    slapd.add_person(f"uid=dave,{PLATFORM}", displayName="Dave", employeeType="disabled", manager=f"uid=zhangsan,{PLATFORM}")
    slapd.add_person(f"uid=carol,{SALES}", cn="Carol King", title="Sales")  # no displayName: cn is used
    slapd.add_person(f"uid=Boss,{PEOPLE}", displayName="The Boss", manager=f"uid=nobody,{PEOPLE}")
    slapd.add_group(ADMINS, [f"uid=Boss,{PEOPLE}", f"uid=lisi,{ENG}"])
    # groupOfUniqueNames, whose values may end in an optional unique identifier.
    auditors = [f"uid=carol,{SALES}#'0101'B", f"uid=lisi,{ENG}", f"uid=outsider,{SUFFIX}"]
    slapd.add(AUDITORS, "groupOfUniqueNames", cn="Auditors", uniqueMember=auditors)


def config(slapd: Slapd, tmp_path: Path, **overrides) -> Ldap:
    settings = {
        "disabled_attribute": "employeeType",
        "disabled_values": ("Disabled",),
        "roles": {ADMINS: "admin", AUDITORS: "auditor"},
    }
    return slapd.ldap_config(tmp_path / "data", **(settings | overrides))


def read(slapd: Slapd, tmp_path: Path, **overrides) -> tuple[DirectorySpec, list[str]]:
    return read_directory(config(slapd, tmp_path, **overrides), tmp_path / "data")


def test_reads_departments_people_managers_roles_and_disabled_accounts(slapd, tmp_path):
    build_org(slapd)
    spec, warnings = read(slapd, tmp_path)
    assert warnings == []
    assert spec.departments == (("Empty",), ("Engineering",), ("Engineering", "Platform"), ("Sales",))
    assert spec.people == (
        ImportPerson(username="boss", display_name="The Boss", role="admin"),
        ImportPerson(username="carol", display_name="Carol King", title="Sales", departments=(("Sales",),), role="auditor"),
        ImportPerson(
            username="dave",
            display_name="Dave",
            departments=(("Engineering", "Platform"),),
            manager="zhangsan",
            role="user",  # in no mapped group: with a role mapping, a plain user
            active=False,
        ),
        ImportPerson(
            username="lisi",
            display_name="李四",
            title="Head of Engineering",
            email="lisi@example.com",
            employee_no="E001",
            departments=(("Engineering",),),
            role="admin",
        ),
        ImportPerson(
            username="zhangsan",
            display_name="张三",
            title="Engineer",
            email="zhangsan@example.com",
            phone="+86 10 5555 0101",
            employee_no="E002",
            departments=(("Engineering", "Platform"),),
            manager="lisi",
            role="user",
        ),
    )


def test_attribute_mapping_is_configurable(slapd, tmp_path):
    build_org(slapd)
    spec, _ = read(
        slapd,
        tmp_path,
        display_name_attribute="cn",
        title_attribute="",
        extension_attribute="employeeNumber",
        employee_no_attribute="",
        user_filter="(title=*)",
        department_filter="(ou=Sales)",
    )
    people = {p.username: p for p in spec.people}
    assert sorted(people) == ["carol", "lisi", "zhangsan"]
    assert people["zhangsan"].display_name == "Zhang San"
    assert (people["zhangsan"].title, people["zhangsan"].extension, people["zhangsan"].employee_no) == ("", "E002", "")
    # Only Sales matches the OU filter, but the OUs people are in are departments all the same.
    assert spec.departments == (("Engineering",), ("Engineering", "Platform"), ("Sales",))


def test_escaped_and_chinese_ou_names_and_long_values(slapd, tmp_path):
    rnd = slapd.add_ou("R, D")
    china = slapd.add_ou("研发部", rnd)
    slapd.add_person(f"uid=wangwu,{china}", displayName="王" * 200, title="t" * 300)
    # The same DN with its UTF-8 bytes escaped, as some servers and tools write it.
    slapd.add_person(f"uid=zhao,{rnd}", manager=f"uid=wangwu,ou=\\E7\\A0\\94\\E5\\8F\\91\\E9\\83\\A8,ou=R\\2C D,{PEOPLE}")
    spec, _ = read(slapd, tmp_path, roles={})
    assert spec.departments == (("R, D",), ("R, D", "研发部"))
    wangwu, zhao = spec.people
    assert (wangwu.display_name, wangwu.title, wangwu.departments) == ("王" * 128, "t" * 256, (("R, D", "研发部"),))
    assert (zhao.departments, zhao.manager) == ((("R, D",),), "wangwu")


def test_bad_entries_are_skipped_with_a_warning_naming_them(slapd, tmp_path):
    build_org(slapd)
    no_uid = slapd.add_person(f"cn=No Uid,{SALES}")
    bad_uid = slapd.add_person(f"cn=Bad Uid,{SALES}", uid="bad name!")
    first = slapd.add_person(f"cn=A Lisi,{SALES}", uid="LiSi")
    spec, warnings = read(slapd, tmp_path)
    assert sorted(p.username for p in spec.people) == ["boss", "carol", "dave", "lisi", "zhangsan"]
    assert len(warnings) == 3
    assert any(no_uid in w and "no uid" in w for w in warnings)
    assert any(bad_uid in w and "'bad name!'" in w for w in warnings)
    # Of two entries with one username the one whose DN sorts first wins, on every read.
    lisi = next(w for w in warnings if "'lisi'" in w)
    assert lisi.startswith(f"uid=lisi,{ENG}: skipped") and first in lisi
    assert next(p for p in spec.people if p.username == "lisi").departments == (("Sales",),)


def test_moving_a_person_changes_their_department(slapd, tmp_path):
    build_org(slapd)
    slapd.move(f"uid=zhangsan,{PLATFORM}", SALES)
    slapd.modify(f"uid=carol,{SALES}", title="Head of Sales", displayName="Carol K.")
    slapd.delete(f"uid=dave,{PLATFORM}")
    spec, warnings = read(slapd, tmp_path)
    people = {p.username: p for p in spec.people}
    assert warnings == []
    assert people["zhangsan"].departments == (("Sales",),)
    assert people["zhangsan"].manager == "lisi"
    assert (people["carol"].title, people["carol"].display_name) == ("Head of Sales", "Carol K.")
    assert "dave" not in people


def test_active_directory_style_accounts(slapd, tmp_path):
    users = slapd.add(f"cn=Users,{PEOPLE}", "organizationalRole", cn="Users")
    ad_user = ["inetOrgPerson", "extensibleObject"]
    slapd.add(f"cn=Ann,{users}", ad_user, sn="Lee", sAMAccountName="Ann.Lee", userAccountControl="512")
    slapd.add(f"cn=Ben,{users}", ad_user, sn="Ng", sAMAccountName="ben", userAccountControl="514")
    slapd.add(f"cn=Cat,{users}", ad_user, sn="Wu", sAMAccountName="cat")
    spec, warnings = read(slapd, tmp_path, username_attribute="sAMAccountName", active_directory=True, roles={})
    assert [(p.username, p.active, p.departments) for p in spec.people] == [
        ("ann.lee", True, ()),
        ("ben", False, ()),
        ("cat", True, ()),
    ]
    assert spec.departments == ()  # CN=Users is a container, not a department
    assert warnings == [f"cn=Cat,{users}: userAccountControl '' is not a number; taken as enabled"]


def test_ldaps_checks_the_server_certificate(slapd, tmp_path):
    build_org(slapd)
    spec, _ = read(slapd, tmp_path, url=slapd.ldaps_url, ca_file=CA_FILE)
    assert len(spec.people) == 5
    with pytest.raises(LdapError, match=f"^cannot reach {slapd.ldaps_url}: TLS: certificate verify failed: self-signed"):
        read(slapd, tmp_path, url=slapd.ldaps_url)
    by_name = slapd.ldaps_url.replace("127.0.0.1", "localhost")  # the certificate names only 127.0.0.1
    with pytest.raises(LdapError, match=f"^cannot reach {by_name}: TLS: the certificate is not valid for localhost$"):
        read(slapd, tmp_path, url=by_name, ca_file=CA_FILE)


def test_people_are_read_page_by_page(slapd, tmp_path, monkeypatch):
    build_org(slapd)
    monkeypatch.setattr(ldap_source, "PAGE_SIZE", 2)
    spec, _ = read(slapd, tmp_path)
    assert len(spec.people) == 5


def test_a_server_size_limit_is_an_error_not_a_short_list(slapd, tmp_path):
    """Read as everyone after the limit leaving, a cut list would deactivate them."""
    build_org(slapd)
    settings = config(slapd, tmp_path, bind_dn=READER_DN, bind_password_file="reader.password")
    (tmp_path / "data" / "reader.password").write_text(READER_PASSWORD)
    with pytest.raises(LdapError, match=f"^searching {PEOPLE} on {slapd.url} failed: sizeLimitExceeded after 4 entries"):
        read_directory(settings, tmp_path / "data")


class RangedGroup:
    """An Active Directory group of 3,200, which AD hands out 1,500 `member` values at a time
    (slapd has no ranged retrieval, so this stands in for AD's side of it)."""

    MEMBERS = [f"CN=User {n},OU=Staff,DC=corp,DC=example,DC=com" for n in range(3200)]

    def __init__(self):
        self.asked: list[list[str]] = []
        self.response: list[dict] = []

    def search(self, base, search_filter, scope, attributes):
        self.asked.append(attributes)
        start = 0 if attributes[0] == "member" else int(attributes[0].split("=")[1].split("-")[0])
        end = min(start + 1500, len(self.MEMBERS))
        name = f"member;range={start}-{end - 1 if end < len(self.MEMBERS) else '*'}"
        values = [member.encode() for member in self.MEMBERS[start:end]]
        self.response = [{"type": "searchResEntry", "dn": base, "raw_attributes": {name: values}}]


def test_big_active_directory_groups_are_read_slice_by_slice():
    group = RangedGroup()
    assert ldap_source._group_members(group, "ldaps://dc1", "CN=All,DC=corp,DC=example,DC=com") == RangedGroup.MEMBERS
    assert group.asked == [["member", "uniqueMember"], ["member;range=1500-*"], ["member;range=3000-*"]]


def test_wrong_password_is_a_clear_error_without_the_password(slapd, tmp_path):
    settings = config(slapd, tmp_path)
    (tmp_path / "data" / "wrong.password").write_text("hunter2\n")
    with pytest.raises(LdapError) as caught:
        read_directory(replace(settings, bind_password_file="wrong.password"), tmp_path / "data")
    assert str(caught.value) == f"bind to {slapd.url} as {ADMIN_DN} failed: invalidCredentials"
    assert ADMIN_PASSWORD not in str(caught.value)


def test_unreachable_server_is_a_clear_error(slapd, tmp_path):
    url = f"ldap://127.0.0.1:{free_port()}"
    with pytest.raises(LdapError, match=f"^cannot reach {url}: connection refused$"):
        read(slapd, tmp_path, url=url, timeout=2.0)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"\x30\x03\x02\x01\x01", "not an LDAP answer"),  # a message with an id and no operation
        (None, "error receiving data: timed out"),
    ],
)
def test_a_peer_that_is_not_an_ldap_server_is_an_ldap_error(slapd, tmp_path, answer, reason):
    """Nonsense or silence (bounded by `timeout`) is an LdapError, never a crash or a hang."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"ldap://127.0.0.1:{listener.getsockname()[1]}"
        thread = threading.Thread(target=answer_once, args=(listener, answer))
        thread.start()
        try:
            with pytest.raises(LdapError, match=f"^bind to {url} as {ADMIN_DN} failed: {reason}"):
                read(slapd, tmp_path, url=url, timeout=0.5)
        finally:
            thread.join()


def answer_once(listener: socket.socket, answer: bytes | None) -> None:
    peer, _ = listener.accept()
    with peer:
        peer.settimeout(5)
        peer.recv(4096)
        if answer is not None:
            peer.sendall(answer)
        peer.recv(4096)  # until the client gives up and closes


def test_missing_password_file_group_or_base_is_an_error(slapd, tmp_path):
    build_org(slapd)
    missing = tmp_path / "data" / "nope.password"
    with pytest.raises(LdapError, match=f"cannot read the LDAP bind password file {missing}: No such file"):
        read(slapd, tmp_path, bind_password_file="nope.password")
    (tmp_path / "data" / "empty.password").write_text("\n")
    with pytest.raises(LdapError, match=r"empty\.password is empty"):
        read(slapd, tmp_path, bind_password_file="empty.password")
    # Reading a missing group or base as empty would strip roles or deactivate everyone.
    with pytest.raises(LdapError, match=f"group cn=Gone,{GROUPS} in \\[ldap.roles\\] does not exist"):
        read(slapd, tmp_path, roles={f"cn=Gone,{GROUPS}": "admin"})
    with pytest.raises(LdapError, match=f"^searching ou=Gone,{SUFFIX} on {slapd.url} failed: noSuchObject$"):
        read(slapd, tmp_path, users_base=f"ou=Gone,{SUFFIX}")


def test_role_order_covers_every_role():
    assert sorted(ROLE_ORDER) == sorted(ROLES)


def parse_ldap(section: dict) -> Ldap:
    return parse_config({"organisation": {"name": "Org"}, "ldap": section}, Path("/data")).ldap


def test_ldap_config_parses():
    ldap = parse_ldap(
        {
            "url": "ldaps://dc1.example.com",
            "bind_dn": "svc-corridor@example.com",
            "bind_password_file": "ldap.password",
            "users_base": "OU=Staff,DC=example,DC=com",
            "username_attribute": "sAMAccountName",
            "timeout": 5,
            "active_directory": True,
            "disabled_values": ["x"],
            "roles": {"CN=Chat Admins,OU=Groups,DC=example,DC=com": "admin", "CN=Leads,DC=example,DC=com": "dept_admin"},
        }
    )
    assert ldap.timeout == 5.0 and ldap.active_directory and ldap.disabled_values == ("x",)
    assert ldap.roles["CN=Leads,DC=example,DC=com"] == "dept_admin"
    assert ldap.user_filter == "(objectClass=inetOrgPerson)"
    assert parse_config({"organisation": {"name": "Org"}}, Path("/data")).ldap == Ldap()


def test_the_documented_examples_parse():
    blocks = re.findall(r"```toml\n(.*?)```", (DOCS / "config.md").read_text(encoding="utf-8"), re.DOTALL)
    openldap = tomllib.loads(next(block for block in blocks if block.startswith("[ldap]")))
    active_directory = tomllib.loads(next(block for block in blocks if "sAMAccountName" in block))
    assert parse_ldap(openldap["ldap"]).disabled_values == ("disabled",)
    assert parse_ldap(openldap["ldap"] | active_directory).active_directory


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"url": "ldap://x", "users_base": "dc=x", "bind_pasword_file": "p"}, "unknown key 'ldap.bind_pasword_file'"),
        (
            {"roles": {"cn=a,dc=x": "boss"}},
            "key 'ldap.roles' maps 'cn=a,dc=x' to 'boss'; roles are user, dept_admin, admin, auditor",
        ),
        ({"roles": {"cn=a,dc=x": 1}}, "key 'ldap.roles' must be a table of strings"),
        ({"roles": "cn=a"}, "key 'ldap.roles' must be a table of strings"),
        ({"roles": {"not a dn": "admin"}}, "key 'ldap.roles' is not a valid DN"),
        ({"url": "http://x", "users_base": "dc=x"}, "key 'ldap.url' must start with ldap:// or ldaps://"),
        ({"url": "ldap://x"}, "key 'ldap.users_base' is required"),
        ({"url": "ldap://x", "users_base": "dc=x", "bind_dn": "cn=a,dc=x"}, "key 'ldap.bind_password_file' is required"),
        ({"url": "ldap://x", "users_base": "dc=x", "user_filter": "uid=*"}, "key 'ldap.user_filter' must be an LDAP filter"),
        (
            {"url": "ldap://x", "users_base": "dc=x", "disabled_attribute": "employeeType"},
            "key 'ldap.disabled_values' is required",
        ),
        ({"timeout": 0}, "key 'ldap.timeout' must be greater than 0"),
    ],
)
def test_bad_ldap_config_names_the_key(section, message):
    with pytest.raises(ConfigError, match=f"corridor.toml: {message}".replace("(", "\\(").replace(")", "\\)")):
        parse_ldap(section)
