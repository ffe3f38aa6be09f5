"""An outside TLS audit of the real server: sslyze scans it on 127.0.0.1 and every finding an
auditor of the TLS set-up looks at is asserted.

sslyze pins `cryptography<47`, older than the project's, so it lives in its own venv,
`.venv-sslyze` at the repository root, which `.ci/run` creates:

    python3 -m venv .venv-sslyze && .venv-sslyze/bin/pip install -q 'sslyze==6.3.1'

(`CORRIDOR_SSLYZE=/path/to/sslyze` points at another one). Without it the test is skipped on a
developer's machine and fails in CI (`CI` set), so CI always runs the scan.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import trio

from corridor.server.config import load_config

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "python3 -m venv .venv-sslyze && .venv-sslyze/bin/pip install -q 'sslyze==6.3.1'"

# Every check sslyze has that applies to a TLS server without HTTP.
SCANS = [
    *("--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3"),
    *("--compression", "--reneg", "--heartbleed", "--robot", "--openssl_ccs", "--fallback"),
    *("--elliptic_curves", "--ems", "--resum", "--early_data", "--certinfo"),
]

# The TLS 1.3 suites that are AEADs with a full-length tag (TLS_AES_128_CCM_8_SHA256 has an
# 8-byte tag and is left out on purpose). CHACHA20 is allowed, not required.
GOOD_TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
# Key exchange groups of at least 128-bit strength (no binary, brainpool or < 256-bit curves).
GOOD_CURVES = {"X25519", "X448", "secp256r1", "secp384r1", "secp521r1"}

# Mozilla's "modern" profile (version 5.7, as bundled with sslyze 6.3.1) for sslyze's own
# compliance verdict, with one deliberate change: tls_curves also allows X448 and secp521r1.
# OpenSSL offers them by default and Python 3.11's ssl module can only set a single curve
# (`set_ecdh_curve`), which would drop X25519; both are stronger than the curves Mozilla lists
# (Mozilla leaves them out for client compatibility, not weakness).
MODERN_PROFILE = {
    "certificate_curves": ["prime256v1", "secp384r1"],
    "certificate_signatures": ["ecdsa-with-SHA256", "ecdsa-with-SHA384", "ecdsa-with-SHA512"],
    "certificate_types": ["ecdsa"],
    "ciphers": {"caddy": [], "go": [], "iana": [], "openssl": []},
    "ciphersuites": sorted(GOOD_TLS13_SUITES),
    "dh_param_size": None,
    "ecdh_param_size": 256,
    "hsts_min_age": 63072000,
    "maximum_certificate_lifespan": 90,
    "ocsp_staple": True,
    "recommended_certificate_lifespan": 90,
    "rsa_key_size": None,
    "server_preferred_order": False,
    "tls_curves": ["X25519", "prime256v1", "secp384r1", "X448", "secp521r1"],
    "tls_versions": ["TLSv1.3"],
}


@pytest.fixture
def sslyze_bin() -> str:
    """The sslyze executable, or a skip (a failure in CI) saying how to install it."""
    for candidate in (os.environ.get("CORRIDOR_SSLYZE"), str(ROOT / ".venv-sslyze" / "bin" / "sslyze"), shutil.which("sslyze")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = f"sslyze is not installed; from the repository root run: {INSTALL}"
    if os.environ.get("CI"):
        pytest.fail(message + " (.ci/run should have done so)")
    pytest.skip(message)


async def sslyze(sslyze_bin: str, tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run sslyze with `args`; its process result and the parsed `--json_out` document."""
    out = tmp_path / f"{name}.json"
    result = await trio.run_process(
        [sslyze_bin, *args, "--json_out", str(out)], capture_stdout=True, capture_stderr=True, check=False
    )
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    assert out.exists(), f"sslyze wrote no JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    report = json.loads(out.read_text())
    assert report["sslyze_version"].startswith("6."), f"the assertions below read sslyze 6's JSON, got {report['sslyze_version']}"
    return result, report


def completed(server_result: dict, scan: str) -> dict:
    """One scan command's result, which must have run to completion."""
    attempt = server_result["scan_result"][scan]
    assert attempt["status"] == "COMPLETED", f"{scan}: {attempt['status']} {attempt['error_reason']}\n{attempt['error_trace']}"
    return attempt["result"]


def trusted_by_our_ca(deployment: dict, ca: Path) -> dict:
    """The path validation of a certificate deployment against the CA file we supplied."""
    [ours] = [v for v in deployment["path_validation_results"] if Path(v["trust_store"]["path"]) == ca]
    return ours


async def test_tls_scan_finds_tls_1_3_only_and_no_weakness(sslyze_bin, org, tmp_path):
    ca = (org.data_dir / "tls" / "ca.pem").resolve()
    hostnames = load_config(org.data_dir).server.hostnames
    port = org.address[1]
    profile = tmp_path / "modern-profile.json"
    profile.write_text(json.dumps(MODERN_PROFILE))

    with trio.fail_after(60):
        # One target per configured host name, so the chain is verified for each of them.
        scan, report = await sslyze(
            sslyze_bin,
            tmp_path,
            "scan",
            *SCANS,
            "--certinfo_ca_file",
            str(ca),
            "--custom_tls_config",
            str(profile),
            *(f"{name}:{port}{{127.0.0.1}}" for name in hostnames),
        )
        # A name the certificate does not carry (sent to 127.0.0.1; nothing is resolved).
        _, foreign = await sslyze(
            sslyze_bin,
            tmp_path,
            "foreign",
            "--certinfo",
            "--certinfo_ca_file",
            str(ca),
            "--mozilla_config",
            "disable",
            f"other.invalid:{port}{{127.0.0.1}}",
        )
        # Hundreds of refused handshakes later the server still serves a real client.
        stream = await org.raw_tls()
        await stream.aclose()

    assert report["invalid_server_strings"] == []
    results = report["server_scan_results"]
    assert sorted(r["server_location"]["hostname"] for r in results) == sorted(hostnames)

    for server in results:
        where = server["server_location"]["hostname"]
        assert server["connectivity_status"] == "COMPLETED", f"{where}: {server['connectivity_error_trace']}"
        assert server["scan_status"] == "COMPLETED", where
        assert server["connectivity_result"]["highest_tls_version_supported"] == "TLS_1_3"

        # Protocols: everything before TLS 1.3 is refused, whatever the suite.
        for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2"):
            suites = completed(server, f"{old}_cipher_suites")
            assert not suites["is_tls_version_supported"], (where, old)
            assert suites["accepted_cipher_suites"] == [], (where, old)
            assert suites["rejected_cipher_suites"], (where, old)  # it really tried some

        # TLS 1.3: accepted, with full-tag AEAD suites only and ephemeral ECDH of >= 128-bit strength.
        tls13 = completed(server, "tls_1_3_cipher_suites")
        assert tls13["is_tls_version_supported"], where
        accepted = {s["cipher_suite"]["name"] for s in tls13["accepted_cipher_suites"]}
        assert accepted and accepted <= GOOD_TLS13_SUITES, (where, accepted)
        for suite in tls13["accepted_cipher_suites"]:
            assert not suite["cipher_suite"]["is_anonymous"], (where, suite)
            assert suite["cipher_suite"]["key_size"] >= 128, (where, suite)
            key = suite["ephemeral_key"]
            assert key["type_name"] == "ECDH" and key["size"] >= 253, (where, key)  # X25519 reports 253

        curves = completed(server, "elliptic_curves")
        supported = {c["name"] for c in curves["supported_curves"]}
        assert supported and supported <= GOOD_CURVES, (where, supported)

        # Options and known attacks.
        assert not completed(server, "tls_compression")["supports_compression"], where
        assert not completed(server, "tls_1_3_early_data")["supports_early_data"], where  # no replayable 0-RTT
        assert not completed(server, "heartbleed")["is_vulnerable_to_heartbleed"], where
        assert not completed(server, "openssl_ccs_injection")["is_vulnerable_to_ccs_injection"], where
        assert completed(server, "robot")["robot_result"] == "NOT_VULNERABLE_RSA_NOT_SUPPORTED", where
        assert completed(server, "tls_fallback_scsv")["supports_fallback_scsv"], where
        assert completed(server, "tls_extended_master_secret")["supports_ems_extension"], where
        # TLS 1.3 has no renegotiation; sslyze reports the secure kind "supported" and that no
        # client-initiated renegotiation succeeded.
        reneg = completed(server, "session_renegotiation")
        assert reneg["supports_secure_renegotiation"], where
        assert not reneg["is_vulnerable_to_client_renegotiation_dos"], where
        assert reneg["client_renegotiations_success_count"] == 0, where
        resumption = completed(server, "session_resumption")
        assert resumption["session_id_resumption_result"] == "SERVER_IS_TLS_1_3_ONLY", where
        assert resumption["tls_ticket_resumption_result"] == "SERVER_IS_TLS_1_3_ONLY", where

        # The certificate: one chain, sent without the CA, verified against the org's CA for this
        # host name; an ECDSA P-256 (or stronger) key signed with ECDSA-SHA256 (or stronger).
        info = completed(server, "certificate_info")
        [deployment] = info["certificate_deployments"]
        validation = trusted_by_our_ca(deployment, ca)
        assert validation["was_validation_successful"], (where, validation["validation_error"])
        assert len(validation["verified_certificate_chain"]) == 2, where  # server cert -> org CA
        assert deployment["received_chain_has_valid_order"], where
        assert not deployment["received_chain_contains_anchor_certificate"], where
        assert not deployment["verified_chain_has_sha1_signature"], where
        leaf = deployment["received_certificate_chain"][0]
        sans = leaf["subject_alternative_name"]
        assert set(hostnames) <= {*sans["dns_names"], *sans["ip_addresses"]}, (where, sans)
        key = leaf["public_key"]
        assert key["algorithm"] == "ECPublicKey" and key["key_size"] >= 256, (where, key)
        assert key["ec_curve_name"] in {"secp256r1", "secp384r1", "secp521r1"}, (where, key)
        assert leaf["signature_algorithm_oid"]["name"] in {"ecdsa-with-SHA256", "ecdsa-with-SHA384", "ecdsa-with-SHA512"}

    # sslyze's own verdict against Mozilla's "modern" profile (see MODERN_PROFILE).
    assert scan.returncode == 0, scan.stdout
    assert scan.stdout.count("OK - Compliant.") == len(hostnames), scan.stdout

    # The hostname check is real: the same chain fails for a name the certificate lacks.
    [other] = foreign["server_scan_results"]
    [deployment] = completed(other, "certificate_info")["certificate_deployments"]
    assert not trusted_by_our_ca(deployment, ca)["was_validation_successful"]


async def test_tls_1_3_sessions_are_not_resumed(org):
    """sslyze's resumption scan covers TLS 1.2 only. In TLS 1.3 the server issues no session
    ticket (OP_NO_TICKET alone would still send two stateful ones), so a reconnect offering the
    previous session gets a full handshake, and the handshake deadline applies to every connection."""
    context = ssl.create_default_context(cadata=(org.data_dir / "tls" / "ca.pem").read_text())

    def connect(session: ssl.SSLSession | None) -> tuple[ssl.SSLSession | None, bool]:
        with socket.create_connection(org.address, timeout=5) as raw:
            tls = context.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
            tls.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                tls.recv(1)  # tickets come after the handshake; the server then waits for our hello
            tls.settimeout(5)
            got, reused = tls.session, tls.session_reused  # both gone after unwrap()
            tls.unwrap()  # a clean close, or OpenSSL would not offer the session again anyway
            return got, reused

    with trio.fail_after(20):
        first, _ = await trio.to_thread.run_sync(connect, None)
        # Python has a client-side session only once a ticket arrived.
        assert first is None or not first.has_ticket, f"the server issued a ticket valid {first.ticket_lifetime_hint} s"
        if first is not None:
            _, reused = await trio.to_thread.run_sync(connect, first)
            assert not reused
