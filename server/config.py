"""The one place that reads `corridor.toml`: TOML in, frozen dataclasses out.

Every key has a type and a default here; `docs/config.md` documents each one (a test checks).
An unknown key or a value of the wrong type or range is a `ConfigError` that names the file,
the key and what was expected, never a silent default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from corridor.protocol.files import CHUNK_BYTES
from corridor.protocol.messages import ROLES

CONFIG_NAME = "corridor.toml"
DEFAULT_PORT = 7740
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
MAX_GROUP_MEMBERS = 5000  # the bound on member lists in the protocol's group messages
MIN_FRAME_BYTES = CHUNK_BYTES + 64 * 1024  # a file chunk and its envelope must fit in one frame


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or has a bad key or value."""


@dataclass(frozen=True)
class Organisation:
    name: str = ""


@dataclass(frozen=True)
class Server:
    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    hostnames: tuple[str, ...] = ("localhost",)
    advertise: bool = True
    # The port invites name, where clients reach several serve processes through a load
    # balancer (docs/scaling.md); 0: this process's first listening port.
    public_port: int = 0
    # Load balancers that send the PROXY protocol v2 header (HAProxy's send-proxy-v2), so the
    # server sees each client's own address; connections from them must carry it.
    proxy_protocol_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tls:
    ca: str = "tls/ca.pem"
    certificate: str = "tls/server.pem"
    key: str = "tls/server.key"


@dataclass(frozen=True)
class Limits:
    max_frame_bytes: int = 1024 * 1024
    handshake_timeout: float = 10.0
    login_timeout: float = 30.0
    idle_timeout: float = 300.0
    outbound_queue: int = 1024
    max_in_flight: int = 64
    max_connections_per_address: int = 256
    password_hash_concurrency: int = 2
    failed_logins_per_hour: int = 100
    shutdown_grace: float = 5.0
    max_group_members: int = 2000
    recall_window: float = 120.0
    notices_per_hour: int = 20
    max_file_bytes: int = 512 * 1024 * 1024
    file_quota_bytes: int = 10 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class Accounts:
    invite_ttl_hours: float = 168.0
    min_password_length: int = 8


@dataclass(frozen=True)
class Ldap:
    """Where to read people and departments from an LDAP directory or Active Directory.

    `url` "" means LDAP sync is not configured. OUs under `users_base` become departments;
    the `*_attribute` keys say which attribute holds which profile field ("" = not read);
    `roles` maps a group's DN to the role its direct members get.
    """

    url: str = ""
    ca_file: str = ""
    bind_dn: str = ""
    bind_password_file: str = ""
    users_base: str = ""
    user_filter: str = "(objectClass=inetOrgPerson)"
    department_filter: str = "(objectClass=organizationalUnit)"
    timeout: float = 10.0
    username_attribute: str = "uid"
    display_name_attribute: str = "displayName"
    title_attribute: str = "title"
    email_attribute: str = "mail"
    phone_attribute: str = "telephoneNumber"
    extension_attribute: str = ""
    employee_no_attribute: str = "employeeNumber"
    manager_attribute: str = "manager"
    disabled_attribute: str = ""
    disabled_values: tuple[str, ...] = ()
    active_directory: bool = False
    roles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metrics:
    # Off unless set: the endpoint is plain HTTP, meant for a Prometheus on the same host.
    listen: str = ""


@dataclass(frozen=True)
class Http:
    # Off unless set: the integration API and web console, over TLS 1.3 with the server certificate.
    listen: str = ""
    console_idle_minutes: float = 30.0
    console_max_hours: float = 12.0


@dataclass(frozen=True)
class Bus:
    # "local": one `serve` process. "nats": deliveries to users also reach their sessions in
    # other processes through NATS (see `nats_bus.py`).
    backend: str = "local"
    nats_url: str = "nats://127.0.0.1:4222"
    # The serve processes of one organisation share it (subjects `corridor.<cluster>.user.<id>`),
    # so two deployments can share a NATS without hearing each other.
    cluster: str = "main"


BUS_BACKENDS = ("local", "nats")


@dataclass(frozen=True)
class Storage:
    # "sqlite": the data dir's corridor.sqlite. "postgresql": the database `dsn` names, which
    # several serve processes may share (see docs/scaling.md).
    backend: str = "sqlite"
    # A libpq connection URI; keep the password out of it (a ~/.pgpass or PGPASSFILE entry).
    dsn: str = ""


STORAGE_BACKENDS = ("sqlite", "postgresql")
INSTANCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True)
class Config:
    """The whole server configuration, with the data dir it was read from."""

    data_dir: Path
    organisation: Organisation = field(default_factory=Organisation)
    server: Server = field(default_factory=Server)
    tls: Tls = field(default_factory=Tls)
    limits: Limits = field(default_factory=Limits)
    accounts: Accounts = field(default_factory=Accounts)
    ldap: Ldap = field(default_factory=Ldap)
    metrics: Metrics = field(default_factory=Metrics)
    http: Http = field(default_factory=Http)
    bus: Bus = field(default_factory=Bus)
    storage: Storage = field(default_factory=Storage)
    # Which serve process this is, when several serve from one data dir (`corridor serve
    # --instance`): it names the process's lock and admin socket. Not a config file key.
    instance: str = ""

    def path(self, relative: str) -> Path:
        """A path from the config, resolved against the data dir."""
        return self.data_dir / relative

    @property
    def database_path(self) -> Path:
        return self.data_dir / "corridor.sqlite"

    @property
    def control_socket(self) -> Path:
        return self.data_dir / (f"control-{self.instance}.sock" if self.instance else "control.sock")

    @property
    def lock_path(self) -> Path:
        """The file a serve process holds locked while it runs."""
        return self.data_dir / (f"serve-{self.instance}.lock" if self.instance else "serve.lock")

    @property
    def files_dir(self) -> Path:
        """Where file contents live, by hash (see `features/files/blobs.py`)."""
        return self.data_dir / "files"


SECTIONS: dict[str, type] = {
    "organisation": Organisation,
    "server": Server,
    "tls": Tls,
    "limits": Limits,
    "accounts": Accounts,
    "ldap": Ldap,
    "metrics": Metrics,
    "http": Http,
    "bus": Bus,
    "storage": Storage,
}


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT` → (host, port); raises ConfigError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen address {text!r} must be HOST:PORT (port 0-65535)")
    return host.strip("[]"), int(port)


def _check(source: str, key: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if expected is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: key '{key}' must be a list of strings, not {value!r}")
        return tuple(value)
    if expected is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{source}: key '{key}' must be a table of strings, not {value!r}")
        return dict(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise ConfigError(f"{source}: key '{key}' must be {expected.__name__}, not {value!r}")
    if expected in (int, float) and value <= 0:
        raise ConfigError(f"{source}: key '{key}' must be greater than 0, not {value!r}")
    return value


def parse_config(data: dict, data_dir: Path, source: str = CONFIG_NAME) -> Config:
    """Validate a parsed TOML document into a Config."""
    sections = {}
    for section, values in data.items():
        cls = SECTIONS.get(section)
        if cls is None:
            raise ConfigError(f"{source}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        defaults = cls()
        known = {f.name for f in dataclasses.fields(cls)}
        checked = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown key '{section}.{key}' (known: {', '.join(sorted(known))})")
            checked[key] = _check(source, f"{section}.{key}", value, getattr(defaults, key))
        sections[section] = cls(**checked)
    config = Config(data_dir=data_dir, **sections)
    if not config.organisation.name:
        raise ConfigError(f"{source}: key 'organisation.name' is required")
    if not config.server.listen:
        raise ConfigError(f"{source}: key 'server.listen' needs at least one HOST:PORT")
    for address in config.server.listen:
        try:
            parse_listen(address)
        except ConfigError as exc:
            raise ConfigError(f"{source}: key 'server.listen': {exc}") from None
    if config.limits.max_group_members > MAX_GROUP_MEMBERS:
        raise ConfigError(
            f"{source}: key 'limits.max_group_members' must be at most {MAX_GROUP_MEMBERS:,} (what the protocol carries)"
        )
    if config.limits.max_frame_bytes < MIN_FRAME_BYTES:
        raise ConfigError(
            f"{source}: key 'limits.max_frame_bytes' must be at least {MIN_FRAME_BYTES:,} (a file chunk must fit in a frame)"
        )
    for address in config.server.proxy_protocol_from:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"{source}: key 'server.proxy_protocol_from' must list IP addresses, not {address!r}") from None
    if config.server.public_port > 65535:
        raise ConfigError(f"{source}: key 'server.public_port' must be a port (1-65535), not {config.server.public_port}")
    if not config.server.hostnames:
        raise ConfigError(f"{source}: key 'server.hostnames' needs at least one name")
    for key, address in (("metrics.listen", config.metrics.listen), ("http.listen", config.http.listen)):
        if address:
            try:
                parse_listen(address)
            except ConfigError as exc:
                raise ConfigError(f"{source}: key '{key}': {exc}") from None
    _check_ldap(source, config.ldap)
    _check_bus(source, config.bus)
    _check_storage(source, config.storage)
    return config


def _check_storage(source: str, storage: Storage) -> None:
    if storage.backend not in STORAGE_BACKENDS:
        raise ConfigError(
            f"{source}: key 'storage.backend' must be one of {', '.join(STORAGE_BACKENDS)}, not {storage.backend!r}"
        )
    if storage.backend == "postgresql" and not re.match(r"postgres(ql)?://", storage.dsn):
        raise ConfigError(f"{source}: key 'storage.dsn' must be postgresql://… when 'storage.backend' is postgresql")
    if storage.backend == "sqlite" and storage.dsn:
        raise ConfigError(f"{source}: key 'storage.dsn' is set but 'storage.backend' is sqlite (the data dir's file)")


def with_instance(config: Config, instance: str) -> Config:
    """The config of one of several serve processes on a data dir; raises ConfigError."""
    if not INSTANCE_NAME.fullmatch(instance):
        raise ConfigError(f"instance name {instance!r} must be 1-32 of A-Z a-z 0-9 _ -")
    # Processes share their state through these two; on SQLite and the local bus a second
    # process would neither see the first's sessions nor share its writer.
    if config.storage.backend != "postgresql" or config.bus.backend != "nats":
        raise ConfigError(
            'several serve processes need [storage] backend = "postgresql" and [bus] backend = "nats" (see docs/scaling.md)'
        )
    return dataclasses.replace(config, instance=instance)


def _check_bus(source: str, bus: Bus) -> None:
    if bus.backend not in BUS_BACKENDS:
        raise ConfigError(f"{source}: key 'bus.backend' must be one of {', '.join(BUS_BACKENDS)}, not {bus.backend!r}")
    if not re.fullmatch(r"nats://[^/\s]+", bus.nats_url):
        raise ConfigError(f"{source}: key 'bus.nats_url' must be nats://HOST:PORT, not {bus.nats_url!r}")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", bus.cluster):
        raise ConfigError(f"{source}: key 'bus.cluster' must be 1-64 of A-Z a-z 0-9 _ -, not {bus.cluster!r}")


def _check_dn(source: str, key: str, dn: str) -> None:
    try:
        parse_dn(dn, strip=True)
    except LDAPInvalidDnError as exc:
        raise ConfigError(f"{source}: key '{key}' is not a valid DN ({exc}): {dn!r}") from None


def _check_ldap(source: str, ldap: Ldap) -> None:
    """What the section's types cannot say: a usable URL, DNs, filters and role names."""
    for group, role in ldap.roles.items():
        _check_dn(source, "ldap.roles", group)
        if role not in ROLES:
            raise ConfigError(f"{source}: key 'ldap.roles' maps {group!r} to {role!r}; roles are {', '.join(ROLES)}")
    if not ldap.url:
        return
    if not ldap.url.lower().startswith(("ldap://", "ldaps://")):
        raise ConfigError(f"{source}: key 'ldap.url' must start with ldap:// or ldaps://, not {ldap.url!r}")
    if not ldap.users_base:
        raise ConfigError(f"{source}: key 'ldap.users_base' is required when 'ldap.url' is set")
    _check_dn(source, "ldap.users_base", ldap.users_base)
    if ldap.bind_dn and not ldap.bind_password_file:
        raise ConfigError(f"{source}: key 'ldap.bind_password_file' is required when 'ldap.bind_dn' is set")
    for key in ("user_filter", "department_filter"):
        value = getattr(ldap, key)
        if not (value.startswith("(") and value.endswith(")")):
            raise ConfigError(f"{source}: key 'ldap.{key}' must be an LDAP filter in parentheses, not {value!r}")
    if not ldap.username_attribute:
        raise ConfigError(f"{source}: key 'ldap.username_attribute' must not be empty")
    if ldap.disabled_attribute and not ldap.disabled_values:
        raise ConfigError(f"{source}: key 'ldap.disabled_values' is required when 'ldap.disabled_attribute' is set")


def load_config(data_dir: Path) -> Config:
    """Read and validate `DATA_DIR/corridor.toml`."""
    path = Path(data_dir) / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (create a data dir with 'corridor init DIR --org NAME')") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(data, Path(data_dir).resolve(), str(path))
    except ConfigError as exc:
        raise ConfigError(_with_line(str(exc), str(path), text)) from None


_NAMED = re.compile(r"key '(\w+)\.(\w+)'|section \[(\w+)\]")


def _with_line(message: str, source: str, text: str) -> str:
    """The message with the line of the key (or section) it names, found in the file's text:
    `corridor.toml line 12: unknown key 'limits.foo'`. A key not in the file (a required one
    missing) keeps the message as it is."""
    named = _NAMED.search(message)
    if named is None or not message.startswith(source + ":"):
        return message
    section, key = (named.group(1), named.group(2)) if named.group(1) else (named.group(3), None)
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([\w.]+)\s*\]\s*(#.*)?", stripped)
        if header:
            current = header.group(1)
            if key is None and current == section:
                return f"{source} line {number}{message[len(source) :]}"
        elif key is not None and current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            return f"{source} line {number}{message[len(source) :]}"
    return message
