"""`corridor cert`: status and its exit codes, renewal (names kept and added, key kept or rotated,
previous files kept), the offline CA, bad input, and an enrolled client that still connects
after a renewal and a restart because it pins the CA, not the certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from corridor.client.client import Client
from corridor.deploy import cert_cli, pki
from corridor.deploy.init import create_data_dir
from corridor.server.net.tls import EXPIRY_WARNING_DAYS

from .cli_helpers import RunningServer, employee, run
from .helpers import RawPeer


def cert_main(capsys, *args: str) -> tuple[int, str, str]:
    """`corridor cert ARGS…` in-process: (exit code, stdout, stderr)."""
    code = cert_cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cert_json(capsys, *args: str) -> tuple[int, dict]:
    code, out, _ = cert_main(capsys, *args, "--json")
    return code, json.loads(out)


def tls(data: Path, name: str) -> Path:
    return data / "tls" / name


def certificate(data: Path, name: str = "server.pem") -> x509.Certificate:
    return x509.load_pem_x509_certificate(tls(data, name).read_bytes())


def public_key_der(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def sans(cert: x509.Certificate) -> list:
    return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def install_cert(data: Path, ca_key_pem: bytes, ca_cert_pem: bytes, not_before: dt.datetime, not_after: dt.datetime) -> None:
    """Replace server.pem with one for the same key, signed by the given CA, valid for the given window."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = serialization.load_pem_private_key(tls(data, "server.key").read_bytes(), password=None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tls(data, "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_status_shows_names_dates_ca_and_ca_key(data_dir, capsys):
    code, out, err = cert_main(capsys, "status", str(data_dir))
    assert code == 0 and err == ""
    ca_sha256 = pki.fingerprint(tls(data_dir, "ca.pem").read_bytes())
    assert "host names   127.0.0.1, localhost" in out
    assert f"CA           sha256:{ca_sha256}" in out
    assert "CA key       in the data dir" in out and "status       OK" in out

    code, result = cert_json(capsys, "status", str(data_dir))
    cert = certificate(data_dir)
    assert code == 0 and result["ok"] is True and result["problems"] == []
    assert result["hostnames"] == ["127.0.0.1", "localhost"] and result["subject"] == "CN=127.0.0.1"
    assert result["not_after"] == cert.not_valid_after_utc.isoformat() and 89.9 <= result["days_left"] <= 90
    assert result["ca_sha256"] == ca_sha256 and result["ca_key_in_data_dir"] is True
    assert result["signed_by_ca"] is True and result["key_matches"] is True and result["warning_days"] == EXPIRY_WARNING_DAYS


@pytest.mark.parametrize(("days", "code"), [(5, 1), (EXPIRY_WARNING_DAYS, 1), (EXPIRY_WARNING_DAYS + 1, 0)])
def test_status_fails_inside_the_warning_window(data_dir, capsys, days, code):
    # The same window `corridor serve` warns in at start-up: fewer than EXPIRY_WARNING_DAYS days left.
    assert cert_main(capsys, "renew", str(data_dir), "--days", str(days))[0] == 0
    status, result = cert_json(capsys, "status", str(data_dir))
    assert status == code and result["ok"] is (code == 0)
    if code:
        assert result["problems"] == [f"expires in {result['days_left']:.1f} days, within the 14-day warning window"]
        text = cert_main(capsys, "status", str(data_dir))[1]
        assert "PROBLEM      expires in" in text and f"corridor cert renew {data_dir}" in text


def test_status_fails_for_an_expired_or_foreign_certificate(data_dir, capsys):
    ca_pem, ca_key = tls(data_dir, "ca.pem").read_bytes(), tls(data_dir, "ca.key").read_bytes()
    now = dt.datetime.now(dt.UTC)
    install_cert(data_dir, ca_key, ca_pem, now - dt.timedelta(days=30), now - dt.timedelta(days=2))
    code, result = cert_json(capsys, "status", str(data_dir))
    assert code == 1 and result["problems"][0].startswith("expired 2.0 days ago")

    other_pem, other_key = pki.create_ca("Someone Else")
    install_cert(data_dir, other_key, other_pem, now, now + dt.timedelta(days=60))
    code, result = cert_json(capsys, "status", str(data_dir))
    assert code == 1 and result["signed_by_ca"] is False
    assert any("not signed by the CA" in p for p in result["problems"])
    assert any("server.hostnames not in the certificate: localhost" in p for p in result["problems"])


def test_renew_keeps_the_names_and_the_key_and_adds_new_names(data_dir, capsys):
    before = certificate(data_dir)
    old_cert_pem, old_key_pem = tls(data_dir, "server.pem").read_bytes(), tls(data_dir, "server.key").read_bytes()
    code, result = cert_json(
        capsys, "renew", str(data_dir), "--hostname", "Chat.Example.Internal", "--hostname", "10.0.0.5", "--hostname", "localhost"
    )
    assert code == 0 and result["added"] == ["chat.example.internal", "10.0.0.5"] and result["new_key"] is False
    after = certificate(data_dir)
    assert sans(after) == [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
        x509.DNSName("chat.example.internal"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
    ]
    assert after.serial_number != before.serial_number and int(result["serial"], 16) == after.serial_number
    assert public_key_der(after) == public_key_der(before)  # the key was kept
    assert tls(data_dir, "server.key").read_bytes() == old_key_pem
    assert tls(data_dir, "server.pem.previous").read_bytes() == old_cert_pem
    assert tls(data_dir, "server.key.previous").read_bytes() == old_key_pem
    assert mode(tls(data_dir, "server.key")) == mode(tls(data_dir, "server.key.previous")) == 0o600
    after.verify_directly_issued_by(certificate(data_dir, "ca.pem"))
    assert dt.timedelta(days=89.9) < after.not_valid_after_utc - dt.datetime.now(dt.UTC) <= dt.timedelta(days=90)
    assert not [p for p in tls(data_dir, "").iterdir() if p.name.startswith(".")]  # no temporary files left

    # The next renewal keeps the names added by this one.
    assert cert_json(capsys, "renew", str(data_dir))[1]["hostnames"] == [
        "127.0.0.1",
        "localhost",
        "chat.example.internal",
        "10.0.0.5",
    ]


def test_renew_new_key_rotates_the_key(data_dir, capsys):
    before = certificate(data_dir)
    old_key_pem = tls(data_dir, "server.key").read_bytes()
    code, out, _ = cert_main(capsys, "renew", str(data_dir), "--new-key")
    assert code == 0 and "new server key" in out and "Reload the server to use it" in out
    after = certificate(data_dir)
    assert public_key_der(after) != public_key_der(before)
    new_key = serialization.load_pem_private_key(tls(data_dir, "server.key").read_bytes(), password=None)
    assert public_key_der(after) == new_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert tls(data_dir, "server.key.previous").read_bytes() == old_key_pem and mode(tls(data_dir, "server.key")) == 0o600
    # What the server loads: the new pair goes together, the old key does not fit the new certificate.
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls(data_dir, "server.pem"), tls(data_dir, "server.key"))
    with pytest.raises(ssl.SSLError):
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls(data_dir, "server.pem"), tls(data_dir, "server.key.previous"))
    assert cert_json(capsys, "status", str(data_dir))[0] == 0


def test_offline_ca_export_then_renew_needs_ca_key(data_dir, tmp_path, capsys):
    ca_key_pem = tls(data_dir, "ca.key").read_bytes()
    stick = tmp_path / "usb"
    stick.mkdir()
    taken = stick / "taken.key"
    taken.write_text("something precious")
    code, _, err = cert_main(capsys, "export-ca-key", str(data_dir), str(taken))
    assert code == 2 and "already exists; refusing to overwrite" in err
    assert taken.read_text() == "something precious" and tls(data_dir, "ca.key").exists()
    code, _, err = cert_main(capsys, "export-ca-key", str(data_dir), str(data_dir / "ca-copy.key"))
    assert code == 2 and "inside the data dir" in err

    out = stick / "corridor-ca.key"
    code, result = cert_json(capsys, "export-ca-key", str(data_dir), str(out))
    assert code == 0 and result["ca_key"] == str(out.resolve()) and result["removed"] == str(tls(data_dir, "ca.key"))
    assert out.read_bytes() == ca_key_pem and mode(out) == 0o600
    assert not tls(data_dir, "ca.key").exists()
    status = cert_json(capsys, "status", str(data_dir))[1]
    assert status["ca_key_in_data_dir"] is False and status["ok"] is True
    assert f"CA key       offline (not in {tls(data_dir, '')})" in cert_main(capsys, "status", str(data_dir))[1]

    before = tls(data_dir, "server.pem").read_bytes()
    code, _, err = cert_main(capsys, "renew", str(data_dir))
    assert code == 2 and "the CA private key is not in the data dir" in err and "pass --ca-key PATH" in err
    assert tls(data_dir, "server.pem").read_bytes() == before and not tls(data_dir, "server.pem.previous").exists()

    code, result = cert_json(capsys, "renew", str(data_dir), "--ca-key", str(out), "--hostname", "chat.example.internal")
    assert code == 0 and "chat.example.internal" in result["hostnames"]
    certificate(data_dir).verify_directly_issued_by(certificate(data_dir, "ca.pem"))
    assert not tls(data_dir, "ca.key").exists()  # using the offline key does not bring it back

    code, _, err = cert_main(capsys, "export-ca-key", str(data_dir), str(stick / "again.key"))
    assert code == 2 and "it is already offline" in err


def test_wrong_ca_key_or_bad_options_change_nothing(data_dir, tmp_path, capsys):
    before = tls(data_dir, "server.pem").read_bytes()
    _, other_key = pki.create_ca("Someone Else")
    foreign = tmp_path / "other-ca.key"
    foreign.write_bytes(other_key)
    cases = [
        (["--ca-key", str(foreign)], "this key does not belong to the CA"),
        (["--ca-key", str(tls(data_dir, "server.key"))], "this key does not belong to the CA"),
        (["--ca-key", str(tls(data_dir, "ca.pem"))], "not a PEM private key (expected the CA private key)"),
        (["--ca-key", str(tmp_path / "nowhere.key")], "CA private key not found"),
        (["--days", "0"], "--days must be between 1 and 90"),
        (["--days", "91"], "--days must be between 1 and 90"),
        (["--hostname", "bad name!"], "'bad name!' is not a host name or IP address"),
        (["--hostname", "*.example.internal"], "is not a host name or IP address"),
    ]
    for options, message in cases:
        code, _, err = cert_main(capsys, "renew", str(data_dir), *options)
        assert code == 2 and message in err and err.startswith("corridor cert renew: "), (options, err)
    assert tls(data_dir, "server.pem").read_bytes() == before and not tls(data_dir, "server.pem.previous").exists()

    tls(data_dir, "server.key").write_text("not a key")
    for action in ("status", "renew"):
        code, _, err = cert_main(capsys, action, str(data_dir))
        assert code == 2 and "server.key: not a PEM private key (expected the server key)" in err


def test_bad_usage_through_the_corridor_command(tmp_path):
    missing = run("cert", "renew")
    assert missing.returncode == 2 and "the following arguments are required: DIR" in missing.stderr
    nowhere = run("cert", "status", str(tmp_path / "nowhere"))
    assert nowhere.returncode == 2 and "corridor.toml: not found" in nowhere.stderr and "corridor init" in nowhere.stderr
    no_out = run("cert", "export-ca-key", str(tmp_path))
    assert no_out.returncode == 2 and "required: OUT" in no_out.stderr
    assert run("cert").returncode == 2


def serial_of(stream) -> int:
    """The serial of the certificate a TLS stream's server presented."""
    return x509.load_der_x509_certificate(stream.getpeercert(binary_form=True)).serial_number


def presented_serial(port: int, ca_pem: str) -> int:
    """The serial of the certificate the server shows to a client that pins `ca_pem`."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        return x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number


def test_enrolled_client_connects_after_renewal_and_restart(served, tmp_path):
    data, init, server = served
    port = int(init["listen"].rsplit(":", 1)[1])
    ca_pem = tls(data, "ca.pem").read_text()
    alice = employee(data, tmp_path, "alice", "Alice")
    employee(data, tmp_path, "bob", "Bob")
    first = run("send", "bob", "before the renewal", "--profile", alice, "--json")
    assert first.returncode == 0, first.stderr
    old_serial = presented_serial(port, ca_pem)

    renewed = run("cert", "renew", str(data), "--new-key", "--hostname", "chat.example.internal", "--json")
    assert renewed.returncode == 0, renewed.stderr
    serial = int(json.loads(renewed.stdout)["serial"], 16)
    assert presented_serial(port, ca_pem) == old_serial  # the running server keeps its certificate until restarted
    assert server.stop() == 0
    restarted = RunningServer(data, "--no-advertise")
    try:
        assert presented_serial(port, ca_pem) == serial != old_serial
        after = run("send", "bob", "after the renewal", "--profile", alice, "--json")
        assert after.returncode == 0, after.stderr  # same profile, no re-enrollment: it pins the CA
        assert json.loads(after.stdout)["seq"] == 2
    finally:
        assert restarted.stop() == 0

    # The control: a certificate from another CA is refused by the same profile, so the pin is real.
    other_pem, other_key = pki.create_ca("Someone Else")
    now = dt.datetime.now(dt.UTC)
    install_cert(data, other_key, other_pem, now, now + dt.timedelta(days=30))
    impostor = RunningServer(data, "--no-advertise")
    try:
        refused = run("send", "bob", "to an impostor", "--profile", alice)
        assert refused.returncode == 5 and "UNTRUSTED_SERVER" in refused.stderr
    finally:
        impostor.kill()


def test_export_that_fails_midway_leaves_the_key_in_the_data_dir(data_dir, tmp_path, capsys, monkeypatch):
    def medium_full(path: Path, data: bytes) -> None:
        path.write_bytes(data[:40])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pki, "write_private", medium_full)
    out = tmp_path / "ca.key"
    code, _, err = cert_main(capsys, "export-ca-key", str(data_dir), str(out))
    assert code == 1 and "No space left on device" in err
    assert not out.exists() and tls(data_dir, "ca.key").exists()  # no half copy that could pass for the key


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
def test_renew_as_root_keeps_the_owner_of_the_files(data_dir, capsys):
    # The server runs as its own OS user; an admin renewing as root must not leave it unable to read its key.
    for name in ("server.pem", "server.key"):
        os.chown(tls(data_dir, name), 65534, 65534)
    assert cert_main(capsys, "renew", str(data_dir), "--new-key")[0] == 0
    for name in ("server.pem", "server.key", "server.pem.previous", "server.key.previous"):
        info = tls(data_dir, name).stat()
        assert (info.st_uid, info.st_gid) == (65534, 65534), name


def test_names_match_in_any_case(tmp_path, capsys):
    # `corridor init` keeps host names as typed; DNS names are case-insensitive, so none is "missing" or doubled.
    data = tmp_path / "mixed"
    create_data_dir(data, "Test Org", "127.0.0.1:0", ["Chat.Example.Internal", "127.0.0.1"], "admin", "Administrator")
    assert cert_json(capsys, "status", str(data))[1]["missing_hostnames"] == []
    code, result = cert_json(capsys, "renew", str(data), "--hostname", "CHAT.example.internal")
    assert code == 0 and result["hostnames"] == ["chat.example.internal", "127.0.0.1"] and result["added"] == []
    assert cert_json(capsys, "status", str(data))[0] == 0


async def test_reload_switches_new_handshakes_and_keeps_open_connections(server, org, capsys):
    with trio.fail_after(30):
        data = server.config.data_dir
        alice = await org.user("alice")
        await org.user("bob")
        open_peer = RawPeer(await org.raw_tls())
        assert (await open_peer.hello())["re"] == 1
        old_serial = serial_of(open_peer.stream)
        code, result = cert_json(capsys, "renew", str(data), "--new-key")
        assert code == 0
        new_key = tls(data, "server.key").read_bytes()

        tls(data, "server.key").write_bytes(tls(data, "server.key.previous").read_bytes())  # a pair that does not fit
        assert server.reload_tls() is False
        assert serial_of(await org.raw_tls()) == old_serial  # still serving the pair it had

        tls(data, "server.key").write_bytes(new_key)
        assert server.reload_tls() is True
        assert serial_of(await org.raw_tls()) == int(result["serial"], 16) != old_serial
        await open_peer.send({"type": "hello", "id": 2, "versions": [1]})
        assert (await open_peer.frame())["re"] == 2  # the connection made before the reload still works
        async with Client.open(alice, receive=False) as client:
            assert (await client.send("bob", "after the reload")).seq == 1


def test_sighup_reloads_the_running_server(served, tmp_path):
    data, init, server = served
    port = int(init["listen"].rsplit(":", 1)[1])
    ca_pem = tls(data, "ca.pem").read_text()
    alice = employee(data, tmp_path, "alice", "Alice")
    employee(data, tmp_path, "bob", "Bob")
    renewed = run("cert", "renew", str(data), "--json")
    serial = int(json.loads(renewed.stdout)["serial"], 16)
    server.process.send_signal(signal.SIGHUP)
    for _ in range(100):
        if presented_serial(port, ca_pem) == serial:
            break
        time.sleep(0.05)
    assert presented_serial(port, ca_pem) == serial
    sent = run("send", "bob", "after SIGHUP", "--profile", alice, "--json")
    assert sent.returncode == 0, sent.stderr
    assert server.stop() == 0
    assert "reloaded the server certificate" in server.log()
