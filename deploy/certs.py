"""Server certificate upkeep on a data dir: status, renewal, key rotation, more host names, and
taking the CA's private key offline. `corridor cert` (server/cert_cli.py) is the command on top.

How this works and why: clients pin the organisation's CA, never the server certificate, so any
new server certificate the same CA signs is trusted by every enrolled client at once; renewal is
local file work and nobody re-enrolls. Renewal keeps the certificate's host names (adding the
config's `server.hostnames` and any new ones) and, unless asked to rotate it, the server key.

Everything is checked before a file is touched (the CA key really is the CA's, the names are
valid, the new certificate verifies against the CA and matches its key). Each file is then
replaced by writing a temporary file in the same directory, fsyncing it and renaming it over the
old one, so a crash leaves the old file or the new one, never half a key. The pair it replaced
stays as `*.previous`, so undoing a renewal is two renames.

A running server reads the renewed certificate on SIGHUP (`systemctl reload corridor`), keeping its connections. The CA key is
found next to the CA certificate (`tls/ca.key`), or wherever `--ca-key` says once it was taken
offline with `export_ca_key`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes as PrivateKey

from corridor.server.config import CONFIG_NAME, Config
from corridor.server.net.tls import EXPIRY_WARNING_DAYS
from corridor.server.storage.durable import fsync_dir

from . import pki

PREVIOUS = ".previous"
# One DNS label: letters, digits and inner hyphens, at most 63 characters (RFC 1123).
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class CertError(ValueError):
    """Bad input: a file is missing, unreadable or not what it should be, or an option is wrong."""


@dataclass(frozen=True)
class TlsFiles:
    """Where a data dir's certificates and keys are."""

    ca: Path
    ca_key: Path
    certificate: Path
    key: Path

    @classmethod
    def of(cls, config: Config) -> TlsFiles:
        """The config's `[tls]` paths; the CA key is the file next to the CA certificate, named `.key`."""
        ca = config.path(config.tls.ca)
        return cls(
            ca=ca, ca_key=ca.with_suffix(".key"), certificate=config.path(config.tls.certificate), key=config.path(config.tls.key)
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise CertError(f"{path}: cannot read the {what}: {exc.strerror}") from None


def load_certificate(path: Path, what: str) -> tuple[bytes, x509.Certificate]:
    """A PEM certificate from `path`, as (bytes, certificate); CertError naming the file if it is
    missing or not a certificate."""
    pem = _read(path, what)
    try:
        return pem, x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertError(f"{path}: not a PEM certificate (expected the {what})") from None


def load_private_key(path: Path, what: str) -> tuple[bytes, PrivateKey]:
    """An unencrypted PEM private key from `path`, as (bytes, key); CertError naming the file otherwise."""
    pem = _read(path, what)
    try:
        return pem, serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise CertError(f"{path}: the {what} is encrypted; give the unencrypted PEM (openssl pkey -in FILE -out NEW)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertError(f"{path}: not a PEM private key (expected the {what})") from None


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def normalise_hostname(name: str) -> str:
    """A certificate name as stored: an IP address in canonical form, or a lowercase DNS name;
    CertError for anything else (spaces, underscores, wildcards, empty labels)."""
    text = name.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    host = text.lower().rstrip(".")
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise CertError(f"{name!r} is not a host name or IP address (letters, digits, '-' and '.' only)")
    return host


def hostnames_of(cert: x509.Certificate) -> list[str]:
    """The certificate's subject alternative names (DNS names and IP addresses), in order."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in san if isinstance(name, x509.DNSName | x509.IPAddress)]


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as `openssl x509 -serial` prints it (uppercase hex, whole bytes)."""
    text = f"{cert.serial_number:X}"
    return "0" * (len(text) % 2) + text


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def status(config: Config, now: dt.datetime | None = None) -> dict:
    """The server certificate and CA as `corridor cert status` reports them; `ok` is false and
    `problems` says why when clients would (soon) refuse the server or some name would fail."""
    files = TlsFiles.of(config)
    _, cert = load_certificate(files.certificate, "server certificate")
    ca_pem, ca = load_certificate(files.ca, "CA certificate")
    _, key = load_private_key(files.key, "server key")
    now = now or dt.datetime.now(dt.UTC)
    days = (cert.not_valid_after_utc - now).total_seconds() / 86400
    names = hostnames_of(cert)
    covered = {_canonical(n) for n in names}  # `init` keeps names as typed; DNS names match in any case
    missing = [h for h in config.server.hostnames if _canonical(h) not in covered]
    problems = []
    if cert.not_valid_before_utc > now:
        problems.append(f"not valid before {_iso(cert.not_valid_before_utc)}: clients refuse it until then")
    if days <= 0:
        problems.append(f"expired {-days:.1f} days ago: clients refuse this server")
    elif days < EXPIRY_WARNING_DAYS:
        problems.append(f"expires in {days:.1f} days, within the {EXPIRY_WARNING_DAYS}-day warning window")
    signed = _signed_by(cert, ca)
    if not signed:
        problems.append(f"not signed by the CA in {files.ca}: clients refuse this server")
    matches = _public_der(cert.public_key()) == _public_der(key.public_key())
    if not matches:
        problems.append(f"the key in {files.key} does not belong to this certificate: the server cannot use them")
    if missing:
        problems.append(f"server.hostnames not in the certificate: {', '.join(missing)} (clients using them are refused)")
    return {
        "ok": not problems,
        "certificate": str(files.certificate),
        "subject": cert.subject.rfc4514_string(),
        "hostnames": names,
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "days_left": round(days, 1),
        "warning_days": EXPIRY_WARNING_DAYS,
        "serial": serial_hex(cert),
        "issuer": cert.issuer.rfc4514_string(),
        "signed_by_ca": signed,
        "key_matches": matches,
        "missing_hostnames": missing,
        "ca": str(files.ca),
        "ca_sha256": pki.fingerprint(ca_pem),
        "ca_not_after": _iso(ca.not_valid_after_utc),
        "ca_key": str(files.ca_key),
        "ca_key_in_data_dir": files.ca_key.exists(),
        "problems": problems,
    }


def _canonical(name: str) -> str:
    try:
        return normalise_hostname(name)
    except CertError:
        return name  # not a valid name: it cannot be in the certificate either, so it shows as missing


def _ca_key_pem(files: TlsFiles, ca: x509.Certificate, ca_key_path: Path | None) -> bytes:
    """The CA's private key PEM, from `--ca-key` or the data dir, checked against the CA certificate."""
    if ca_key_path is None:
        if not files.ca_key.exists():
            raise CertError(
                f"the CA private key is not in the data dir ({files.ca_key} does not exist): it was taken offline. "
                "Attach the medium holding it and pass --ca-key PATH (e.g. --ca-key /media/usb/corridor-ca.key)"
            )
        ca_key_path = files.ca_key
    pem, key = load_private_key(ca_key_path, "CA private key")
    if _public_der(key.public_key()) != _public_der(ca.public_key()):
        raise CertError(f"{ca_key_path}: this key does not belong to the CA in {files.ca} (another CA's key, or a server key?)")
    return pem


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the TLS directory, so two cert commands never interleave their renames."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CertError(f"another 'corridor cert' command is working on {directory}; try again when it is done") from None
        yield
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, mode: int, owner: os.stat_result | None = None) -> None:
    """Atomically make `path` hold `data` with `mode` (temp file + fsync + rename, then fsync the
    directory so the rename itself survives a power loss). As root, the new file keeps `owner`'s
    user and group, so a service account that could read the old file reads the new one."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(f.fileno(), owner.st_uid, owner.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _names(config: Config, current: list[str], extra: list[str]) -> list[str]:
    """The current certificate's names, then the config's, then the new ones; each once."""
    configured = []
    for name in config.server.hostnames:
        try:
            configured.append(normalise_hostname(name))
        except CertError as exc:
            raise CertError(f"{config.data_dir / CONFIG_NAME}: key 'server.hostnames': {exc}") from None
    return list(dict.fromkeys([*current, *configured, *(normalise_hostname(h) for h in extra)]))


def renew(
    config: Config,
    *,
    days: int = pki.SERVER_CERT_DAYS,
    add_hostnames: Sequence[str] = (),
    new_key: bool = False,
    ca_key_path: Path | None = None,
) -> dict:
    """Issue a new server certificate from the organisation's CA and install it.

    Its names are the current certificate's, then the config's `server.hostnames`, then
    `add_hostnames`. The server key is kept unless `new_key`. The replaced certificate and key
    are kept as `*.previous`. Raises CertError, with nothing written, for bad input.
    """
    if not 1 <= days <= pki.SERVER_CERT_DAYS:
        raise CertError(f"--days must be between 1 and {pki.SERVER_CERT_DAYS}, not {days}")
    files = TlsFiles.of(config)
    with _locked(files.certificate.parent):
        old_cert_pem, old_cert = load_certificate(files.certificate, "server certificate")
        old_key_pem, _ = load_private_key(files.key, "server key")
        ca_pem, ca = load_certificate(files.ca, "CA certificate")
        ca_key_pem = _ca_key_pem(files, ca, ca_key_path)
        current = [_canonical(n) for n in hostnames_of(old_cert)]
        names = _names(config, current, list(add_hostnames))
        key_pem = pki.new_server_key() if new_key else old_key_pem
        cert_pem = pki.sign_server_key(ca_pem, ca_key_pem, key_pem, names, days)
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        # What we install must be what clients accept and what the server can load.
        if not _signed_by(cert, ca) or _public_der(cert.public_key()) != _public_der(key.public_key()):
            raise CertError("the new certificate does not verify against the CA and key; nothing was changed")

        cert_info, key_info = files.certificate.stat(), files.key.stat()
        cert_mode = stat.S_IMODE(cert_info.st_mode)
        previous_cert = files.certificate.with_name(files.certificate.name + PREVIOUS)
        previous_key = files.key.with_name(files.key.name + PREVIOUS)
        replace_file(previous_cert, old_cert_pem, cert_mode, cert_info)
        replace_file(previous_key, old_key_pem, 0o600, key_info)
        if new_key:
            replace_file(files.key, key_pem, 0o600, key_info)
        replace_file(files.certificate, cert_pem, cert_mode, cert_info)
    return {
        "ok": True,
        "certificate": str(files.certificate),
        "key": str(files.key),
        "hostnames": names,
        "added": [n for n in names if n not in current],
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "days": days,
        "serial": serial_hex(cert),
        "new_key": new_key,
        "previous_certificate": str(previous_cert),
        "previous_key": str(previous_key),
        "ca_sha256": pki.fingerprint(ca_pem),
    }


def export_ca_key(config: Config, out: Path) -> dict:
    """Move the CA private key out of the data dir to `out` (created 0600, never overwritten),
    so the CA can be kept offline. The copy is written, synced and read back before the data
    dir's file is deleted. Raises CertError, with nothing changed, for bad input."""
    files = TlsFiles.of(config)
    if out.resolve().is_relative_to(config.data_dir.resolve()):
        raise CertError(f"{out} is inside the data dir; export the CA key to removable or offline storage")
    if out.exists() or out.is_symlink():
        raise CertError(f"{out} already exists; refusing to overwrite it (choose a new file name)")
    if not out.parent.is_dir():
        raise CertError(f"{out.parent} is not a directory (is the USB stick mounted?)")
    with _locked(files.ca_key.parent):
        if not files.ca_key.exists():
            raise CertError(f"there is no CA private key in the data dir ({files.ca_key}); it is already offline")
        ca_pem, ca = load_certificate(files.ca, "CA certificate")
        pem = _ca_key_pem(files, ca, files.ca_key)
        try:
            pki.write_private(out, pem)
        except FileExistsError:
            raise CertError(f"{out} already exists; refusing to overwrite it (choose a new file name)") from None
        except BaseException:
            out.unlink(missing_ok=True)  # half written (medium full or pulled): it must not pass for a copy
            raise
        try:
            with open(out, "rb") as f:
                os.fsync(f.fileno())
                if f.read() != pem:
                    raise OSError(f"{out}: the copy does not read back as written; the CA key stays in {files.ca_key}")
            fsync_dir(out.parent)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        files.ca_key.unlink()
        fsync_dir(files.ca_key.parent)
    return {"ok": True, "ca_key": str(out.resolve()), "removed": str(files.ca_key), "ca_sha256": pki.fingerprint(ca_pem)}
