"""`corridor cert status|renew|export-ca-key DIR`: the server certificate on a data dir.

`status` is for people and monitoring: it exits 1 when the certificate expires within the
warning window (the one `corridor serve` logs at start-up), has expired, or would be refused
for another reason. `renew` issues a new certificate from the organisation's CA (keeping host
names, adding new ones, optionally a new key); `export-ca-key` takes the CA key offline. The
work is in `corridor.deploy.certs`; this module parses, prints and maps errors to exit codes:
0 ok, 1 a failed check (or an operating-system error while writing), 2 bad usage or input.

A running server picks up a renewal on SIGHUP (`systemctl reload corridor`) without dropping connections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from corridor.deploy import certs
from corridor.deploy.pki import SERVER_CERT_DAYS
from corridor.server.config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corridor cert", description="The server's TLS certificate: status, renewal, key rotation, host names, offline CA."
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    status = sub.add_parser("status", help="the server certificate's names, dates and CA; exit 1 if it expires soon")
    status.add_argument("data_dir", metavar="DIR", type=Path, help="data dir made by 'corridor init'")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    renew = sub.add_parser("renew", help="issue a new server certificate from the organisation's CA")
    renew.add_argument("data_dir", metavar="DIR", type=Path, help="data dir made by 'corridor init'")
    renew.add_argument(
        "--days",
        type=int,
        default=SERVER_CERT_DAYS,
        metavar="N",
        help=f"validity in days, 1-{SERVER_CERT_DAYS} (default {SERVER_CERT_DAYS})",
    )
    renew.add_argument(
        "--hostname",
        action="append",
        default=[],
        metavar="NAME",
        help="add this host name or IP address to the certificate (repeatable); existing names are kept",
    )
    renew.add_argument("--new-key", action="store_true", help="rotate the server key too (default: keep it)")
    renew.add_argument(
        "--ca-key",
        type=Path,
        metavar="PATH",
        help="the CA private key, when it is kept offline (default: the data dir's tls/ca.key)",
    )
    renew.add_argument("--json", action="store_true", help="machine-readable output")

    export = sub.add_parser("export-ca-key", help="move the CA private key out of the data dir (take the CA offline)")
    export.add_argument("data_dir", metavar="DIR", type=Path, help="data dir made by 'corridor init'")
    export.add_argument("out", metavar="OUT", type=Path, help="new file for the CA key, e.g. on a USB stick (never overwritten)")
    export.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _when(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def _print_status(result: dict, data_dir: Path) -> None:
    ca_key = Path(result["ca_key"])
    where = f"in the data dir: {ca_key}" if result["ca_key_in_data_dir"] else f"offline (not in {ca_key.parent})"
    rows = [
        ("certificate", result["certificate"]),
        ("subject", result["subject"]),
        ("host names", ", ".join(result["hostnames"])),
        ("valid", f"{_when(result['not_before'])} to {_when(result['not_after'])} ({result['days_left']:g} days left)"),
        ("issuer", result["issuer"]),
        ("CA", f"sha256:{result['ca_sha256']}"),
        ("CA key", where),
    ]
    for label, value in rows:
        print(f"{label:<12} {value}")
    if result["ok"]:
        print(f"{'status':<12} OK")
        return
    for problem in result["problems"]:
        print(f"{'PROBLEM':<12} {problem}")
    offline = "" if result["ca_key_in_data_dir"] else " --ca-key PATH"
    print(
        f"Renew with:  corridor cert renew {data_dir}{offline}   (then reload the server: kill -HUP, or systemctl reload corridor)"
    )


def _status(args: argparse.Namespace) -> int:
    result = certs.status(load_config(args.data_dir))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_status(result, args.data_dir)
    return 0 if result["ok"] else 1


def _renew(args: argparse.Namespace) -> int:
    result = certs.renew(
        load_config(args.data_dir), days=args.days, add_hostnames=args.hostname, new_key=args.new_key, ca_key_path=args.ca_key
    )
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    added = f" (added: {', '.join(result['added'])})" if result["added"] else ""
    print(f"New server certificate for {', '.join(result['hostnames'])}{added}")
    print(f"valid until {_when(result['not_after'])} ({result['days']} days), serial {result['serial']}")
    print("new server key" if result["new_key"] else "server key kept")
    print(f"previous certificate and key kept as {result['previous_certificate']} and {result['previous_key']}")
    print(
        "Reload the server to use it (kill -HUP PID, or systemctl reload corridor); clients trust the CA, so nobody re-enrolls."
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    result = certs.export_ca_key(load_config(args.data_dir), args.out)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"CA private key moved to {result['ca_key']} and removed from {result['removed']}.")
    print("Backups of the data dir made before now still hold it: keep them as safe as the key.")
    print(f"Renew from now on with:  corridor cert renew {args.data_dir} --ca-key {result['ca_key']}")
    return 0


ACTIONS = {"status": _status, "renew": _renew, "export-ca-key": _export}


def main(argv: list[str]) -> int:
    """Entry point for `corridor cert`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return ACTIONS[args.action](args)
    except (ConfigError, certs.CertError) as exc:
        print(f"corridor cert {args.action}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Writing failed (disk full, medium pulled): not bad input, but the job was not done.
        print(f"corridor cert {args.action}: {exc}", file=sys.stderr)
        return 1
