"""`corridor check-config DIR`: validate a data dir's configuration before (re)starting the
server — the TOML itself (an unknown key or a bad value named with its line, exactly as
`corridor serve` would refuse it) and the files it points at: the CA, the server certificate and
its key (readable, matching, issued by the CA, not expired), the LDAP bind password file.

It only reads; a running server is not disturbed. Exit codes: 0 valid, 1 invalid, 2 not a data dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from .config import CONFIG_NAME, Config, ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corridor check-config", description="Validate a data dir's corridor.toml and the files it names."
    )
    parser.add_argument("data_dir", metavar="DIR", type=Path, help="a data dir made by 'corridor init'")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _tls_problems(config: Config) -> list[str]:
    """What is wrong with the TLS files: each problem in words (empty: none)."""
    paths = {name: config.path(getattr(config.tls, name)) for name in ("ca", "certificate", "key")}
    try:
        ca = x509.load_pem_x509_certificate(paths["ca"].read_bytes())
        cert = x509.load_pem_x509_certificate(paths["certificate"].read_bytes())
        key = serialization.load_pem_private_key(paths["key"].read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        return [f"tls: cannot read {exc.filename if isinstance(exc, OSError) else 'a PEM file'}: {exc}"]
    problems = []
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != cert.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        problems.append(f"tls: {paths['key']} is not the key of {paths['certificate']}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        problems.append(f"tls: {paths['certificate']} was not issued by the CA {paths['ca']} ({exc.__class__.__name__})")
    if cert.not_valid_after_utc <= dt.datetime.now(dt.UTC):
        problems.append(f"tls: {paths['certificate']} expired on {cert.not_valid_after_utc:%Y-%m-%d}: clients refuse it")
    return problems


def _ldap_problems(config: Config) -> list[str]:
    if not config.ldap.bind_password_file:
        return []
    path = config.path(config.ldap.bind_password_file)
    try:
        path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"ldap: key 'ldap.bind_password_file': cannot read {path}: {exc}"]
    return []


def main(argv: list[str]) -> int:
    """Entry point for `corridor check-config`; returns the exit code."""
    args = _parser().parse_args(argv)
    if not (args.data_dir / CONFIG_NAME).is_file():
        print(f"corridor check-config: {args.data_dir / CONFIG_NAME} not found: not a data dir", file=sys.stderr)
        return 2
    try:
        config = load_config(args.data_dir)
    except ConfigError as exc:
        problems = [str(exc)]
        config = None
    else:
        problems = _tls_problems(config) + _ldap_problems(config)
    result = {"ok": not problems, "problems": problems}
    if config is not None:
        result.update(
            organisation=config.organisation.name, listen=list(config.server.listen), hostnames=list(config.server.hostnames)
        )
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    elif problems:
        for problem in problems:
            print(f"corridor check-config: {problem}", file=sys.stderr)
    else:
        print(
            f"{args.data_dir / CONFIG_NAME} is valid: {config.organisation.name}, listening on "
            f"{', '.join(config.server.listen)} as {', '.join(config.server.hostnames)}; TLS files match"
        )
    return 0 if not problems else 1
