"""`corridor init DIR --org NAME`: create a data dir ready for `corridor serve`.

It writes the config, the organisation's CA and a server certificate for the given host names,
the archive signing key, and the database with every migration applied, then creates the first
admin account and prints its one-time enrollment invite. Nothing is overwritten: an existing,
non-empty DIR is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

from corridor.protocol.invites import Invite
from corridor.server.app import open_database
from corridor.server.config import CONFIG_NAME, DEFAULT_LISTEN, Accounts, ConfigError, load_config, parse_listen
from corridor.server.features.accounts.handlers import USERNAME, USERNAME_RULE
from corridor.server.features.accounts.store import add_user_with_invite_txn
from corridor.server.features.accounts.tokens import digest, new_secret

from . import pki


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes), which keeps any org name safe.
    return json.dumps(value, ensure_ascii=False)


def _hostnames(listen: str, given: list[str]) -> list[str]:
    """Certificate names: the given ones, then the listen address if it is a specific one; with none
    given, also this machine's name (wildcard listen) or `localhost` (loopback listen)."""
    host, _ = parse_listen(listen)
    wildcard = host in ("0.0.0.0", "::")
    names = [*given, *([] if wildcard else [host])]
    if not given:
        names.append(socket.gethostname() if wildcard else "localhost")
    return list(dict.fromkeys(names))


def config_text(org: str, listen: str, hostnames: list[str], postgresql: str = "", nats: str = "") -> str:
    """The initial corridor.toml (every key is documented in docs/config.md)."""
    names = ", ".join(_toml_string(h) for h in hostnames)
    shared = ""
    if postgresql:
        shared += f"""
[storage]
# Shared by every serve process of the organisation (docs/scaling.md).
backend = "postgresql"
dsn = {_toml_string(postgresql)}
"""
    if nats:
        shared += f"""
[bus]
backend = "nats"
nats_url = {_toml_string(nats)}
"""
    return f"""# Corridor server configuration. Every key is described in docs/config.md.

[organisation]
name = {_toml_string(org)}

[server]
# Where the server listens. The default is loopback only; list a LAN address to open it up.
listen = [{_toml_string(listen)}]
# Names and addresses in the TLS certificate; the first one is written into invites.
hostnames = [{names}]
advertise = true

[tls]
ca = "tls/ca.pem"
certificate = "tls/server.pem"
key = "tls/server.key"
{shared}"""


def _check_unused(dsn: str) -> None:
    """Refuse a PostgreSQL database that already holds an organisation, before anything is made
    (an unreachable one raises DatabaseUnreachable here too)."""
    from corridor.server.storage.postgres import Connection, location

    conn = Connection(dsn)
    try:
        (users,) = conn.execute("SELECT to_regclass('users')").fetchone()
        if users is not None and conn.execute("SELECT count(*) FROM users").fetchone()[0]:
            # A shared database is made once, by the first data dir; the others copy its config.
            raise FileExistsError(
                f"the database {location(dsn)} already holds an organisation; copy that organisation's data dir instead"
            )
    finally:
        conn.close()


def create_data_dir(
    data_dir: Path,
    org: str,
    listen: str,
    hostnames: list[str],
    admin: str,
    admin_name: str,
    postgresql: str = "",
    nats: str = "",
) -> dict:
    """Create everything and return what `init` reports (paths, fingerprint, admin invite)."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise FileExistsError(f"{data_dir} exists and is not empty; choose a new directory")
    if postgresql:
        _check_unused(postgresql)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tls_dir = data_dir / "tls"
    tls_dir.mkdir(mode=0o700)
    ca_cert, ca_key = pki.create_ca(org)
    server_cert, server_key = pki.issue_server_cert(ca_cert, ca_key, hostnames)
    archive_key, archive_public = pki.create_signing_key()
    (tls_dir / "ca.pem").write_bytes(ca_cert)
    pki.write_private(tls_dir / "ca.key", ca_key)
    (tls_dir / "server.pem").write_bytes(server_cert)
    pki.write_private(tls_dir / "server.key", server_key)
    pki.write_private(tls_dir / "archive.key", archive_key)
    (tls_dir / "archive.pub").write_bytes(archive_public)
    (data_dir / CONFIG_NAME).write_text(config_text(org, listen, hostnames, postgresql, nats), encoding="utf-8")
    config = load_config(data_dir)

    token = new_secret()
    now = time.time()
    expires = now + Accounts().invite_ttl_hours * 3600
    db = open_database(config)
    try:
        db.write_now(
            lambda conn: add_user_with_invite_txn(
                conn,
                username=admin,
                display_name=admin_name,
                role="admin",
                token_hash=digest(token),
                actor="corridor init",
                now=now,
                expires_at=expires,
            )
        )
    finally:
        db.close()
    _, port = parse_listen(listen)
    fingerprint = pki.fingerprint(ca_cert)
    return {
        "data_dir": str(data_dir.resolve()),
        "org": org,
        "listen": listen,
        "hostnames": hostnames,
        "ca_sha256": fingerprint,
        "admin": admin,
        "invite": str(Invite(hostnames[0], port, token, fingerprint)),
        "invite_expires": expires,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corridor init", description="Create a Corridor data dir: config, CA, certificates, database, first admin."
    )
    parser.add_argument("data_dir", metavar="DIR", type=Path, help="the new data dir (must not exist or be empty)")
    parser.add_argument("--org", required=True, help="organisation name, shown to users and in the CA")
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"listen address (default {DEFAULT_LISTEN}: this machine only)",
    )
    parser.add_argument(
        "--hostname",
        action="append",
        default=[],
        metavar="NAME",
        help="host name or address clients use (repeatable; goes in the certificate)",
    )
    parser.add_argument(
        "--postgresql",
        metavar="DSN",
        default="",
        help="keep the organisation in this PostgreSQL database (postgresql://…) instead of the data dir's SQLite",
    )
    parser.add_argument(
        "--nats", metavar="URL", default="", help="reach other serve processes through this NATS (nats://HOST:PORT)"
    )
    parser.add_argument("--admin", default="admin", help="first admin's username (default: admin)")
    parser.add_argument("--admin-name", default="Administrator", help="first admin's display name")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv: list[str]) -> int:
    """Entry point for `corridor init`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if not args.org.strip():
            raise ConfigError("--org must not be empty")
        args.admin = args.admin.lower()
        if not USERNAME.match(args.admin):
            raise ConfigError(f"--admin: {USERNAME_RULE}")
        hostnames = _hostnames(args.listen, args.hostname)
        os.umask(0o077)
        result = create_data_dir(
            args.data_dir, args.org.strip(), args.listen, hostnames, args.admin, args.admin_name, args.postgresql, args.nats
        )
    except (ConfigError, FileExistsError, ValueError) as exc:
        print(f"corridor init: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"corridor init: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"Created {result['data_dir']} for {result['org']!r}.")
    print(f"CA fingerprint: sha256:{result['ca_sha256']}")
    print(f"Start the server:  corridor serve {args.data_dir}")
    days = Accounts().invite_ttl_hours / 24
    print(f"Invite for the first admin ({result['admin']}), valid {days:g} days, usable once:")
    print(f"  {result['invite']}")
    print("Enroll with:  corridor enroll '<invite>' --password-stdin")
    return 0
