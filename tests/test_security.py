"""Security promises: TLS 1.3 pinned to the organisation CA, nothing before login, identical
login failures, throttled guessing, one-time invites, private files."""

import socket
import ssl
import stat
import statistics
import time

import pytest
import trio

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.client.transport import open_tls, running
from corridor.deploy import pki
from corridor.protocol.errors import AuthenticationError, LimitExceeded, RequestError, ServerUnavailable
from corridor.protocol.invites import Invite, parse_invite
from corridor.protocol.messages import Login

from .helpers import PASSWORD, RawPeer


async def test_server_with_another_ca_is_refused(org):
    other_ca, _ = pki.create_ca("Impostor Inc")
    with trio.fail_after(10), pytest.raises(ServerUnavailable) as info:
        await open_tls(*org.address, other_ca.decode(), "127.0.0.1", 5)
    assert info.value.code == "UNTRUSTED_SERVER"


async def test_enroll_refuses_a_server_whose_ca_does_not_match_the_invite(org, tmp_path):
    invite = parse_invite(await org.invite("mallory"))
    forged = Invite(invite.host, invite.port, invite.token, "0" * 64)
    profile = Profile(tmp_path / "victim")
    with trio.fail_after(10), pytest.raises(ServerUnavailable) as info:
        await enroll(profile, str(forged), PASSWORD, "dev")
    assert info.value.code == "UNTRUSTED_SERVER"
    assert not profile.ca_path.exists()


async def test_plaintext_client_gets_no_protocol(org):
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(*org.address)
        await stream.send_all(b"\x00\x00\x00\x0e\x82\xa4type\xa5hello\xa2id\x01")
        received = b""
        try:
            while chunk := await stream.receive_some(4096):
                received += chunk
        except trio.BrokenResourceError:
            pass  # reset: the server closed with our unread plaintext still in its buffer
        # At most a TLS alert record (content type 0x15), never a Corridor frame.
        assert received == b"" or received[0] == 0x15
        await stream.aclose()


async def test_tls_1_2_is_refused(org):
    context = ssl.create_default_context(cadata=(org.data_dir / "tls" / "ca.pem").read_text())
    context.maximum_version = ssl.TLSVersion.TLSv1_2

    def handshake() -> None:
        with socket.create_connection(org.address, timeout=5) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1"):
            pass

    with trio.fail_after(10), pytest.raises(ssl.SSLError):
        await trio.to_thread.run_sync(handshake)


async def test_nothing_but_hello_login_enroll_before_login(org):
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.hello()
        for i, frame in enumerate(
            [
                {"type": "sync"},
                {"type": "history", "with_user": "admin"},
                {"type": "query_presence", "users": ["admin"]},
                {"type": "user_add", "username": "x", "display_name": "X"},
                {"type": "ping"},
            ],
            start=2,
        ):
            await peer.send({**frame, "id": i})
            answer = await peer.frame()
            assert (answer["re"], answer["code"]) == (i, "NOT_AUTHENTICATED")


async def login_error(org, user: str, password: str) -> tuple[AuthenticationError, float]:
    async with running(await org.raw_tls()) as channel:
        await channel.handshake()
        started = time.perf_counter()
        with pytest.raises(AuthenticationError) as info:
            await channel.request(Login(user=user, password=password))
        return info.value, time.perf_counter() - started


async def test_unknown_user_and_wrong_password_look_the_same(org):
    await org.user("alice")
    with trio.fail_after(30):
        wrong = [await login_error(org, "alice", f"wrong-{i}") for i in range(3)]
        unknown = [await login_error(org, f"ghost{i}", "whatever") for i in range(3)]
    assert {(e.code, e.message) for e, _ in wrong + unknown} == {("LOGIN_FAILED", wrong[0][0].message)}
    # Both paths run the same Argon2id hash, so neither is measurably quicker.
    ratio = statistics.median(t for _, t in unknown) / statistics.median(t for _, t in wrong)
    assert 0.5 < ratio < 2.0


async def test_password_guessing_is_throttled_but_the_owner_keeps_working(org):
    alice = await org.user("alice")
    with trio.fail_after(30):
        codes = []
        for i in range(6):
            async with running(await org.raw_tls()) as channel:
                await channel.handshake()
                try:
                    await channel.request(Login(user="alice", password=f"guess-{i}"))
                except (AuthenticationError, LimitExceeded) as exc:
                    codes.append(exc.code)
        assert codes[:3] == ["LOGIN_FAILED"] * 3 and "RATE_LIMITED" in codes[3:]
        # alice's enrolled device logs in with its token, which guessing cannot lock out.
        async with Client.open(alice, receive=False) as a:
            assert a.login.user == "alice"


async def test_invite_is_single_use_and_password_policy_applies(org, tmp_path):
    invite = await org.invite("bob")
    with trio.fail_after(20):
        with pytest.raises(RequestError) as weak:
            await enroll(Profile(tmp_path / "p1"), invite, "short", "dev")
        assert weak.value.code == "WEAK_PASSWORD"
        await enroll(Profile(tmp_path / "p2"), invite, PASSWORD, "dev")
        with pytest.raises(AuthenticationError) as reused:
            await enroll(Profile(tmp_path / "p3"), invite, PASSWORD, "dev")
    assert reused.value.code == "INVITE_INVALID"


async def test_a_device_token_works_only_for_its_own_user(org):
    alice, _ = await org.user("alice"), await org.user("bob")
    with trio.fail_after(10):
        async with running(await org.raw_tls()) as channel:
            await channel.handshake()
            with pytest.raises(AuthenticationError):
                await channel.request(Login(user="bob", device_token=alice.credential().device_token))


async def test_secrets_and_the_control_socket_are_private(org):
    data = org.data_dir
    for path in [data / "control.sock", data / "tls" / "ca.key", data / "tls" / "server.key", data / "tls" / "archive.key"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    profile = await org.user("alice")
    assert stat.S_IMODE((profile.path / "profile.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE(profile.path.stat().st_mode) == 0o700


def test_server_certificate_is_signed_by_the_ca_with_the_given_names(tmp_path):
    from cryptography import x509

    ca, ca_key = pki.create_ca("Acme")
    cert, _ = pki.issue_server_cert(ca, ca_key, ["chat.acme.internal", "10.1.2.3"])
    parsed = x509.load_pem_x509_certificate(cert)
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["chat.acme.internal"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days <= 90
    parsed.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))


def test_an_expiring_server_certificate_is_logged(tmp_path, caplog):
    from corridor.server.net.tls import warn_if_expiring

    ca, ca_key = pki.create_ca("Acme")
    cert, _ = pki.issue_server_cert(ca, ca_key, ["localhost"], days=3)
    (tmp_path / "server.pem").write_bytes(cert)
    assert 2.9 < warn_if_expiring(tmp_path / "server.pem") < 3.1
    assert "expires in 3.0 days" in caplog.text


async def test_password_hashing_is_capped(data_dir, nursery, tmp_path, monkeypatch):
    """A burst of password logins runs at most `password_hash_concurrency` Argon2id hashes at once
    (each takes 19 MiB and ~60 ms of CPU); the rest wait their turn."""
    import threading

    from corridor.server.features.accounts import passwords

    from .conftest import serve_with

    active, peak, lock = 0, 0, threading.Lock()
    real = passwords.verify_password_sync

    def observed(password, encoded):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return real(password, encoded)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(passwords, "verify_password_sync", observed)
    org = await serve_with(nursery, data_dir, tmp_path, password_hash_concurrency=2)

    async def attempt(i):
        async with running(await org.raw_tls()) as channel:
            await channel.handshake()
            with pytest.raises(AuthenticationError):
                await channel.request(Login(user=f"nobody{i}", password="wrong password"))

    with trio.fail_after(30):
        async with trio.open_nursery() as burst:
            for i in range(8):
                burst.start_soon(attempt, i)
    assert peak == 2


async def test_nobody_reads_a_conversation_they_are_not_in(org):
    from corridor.client.client import Client
    from corridor.protocol.messages import Cursor, Sync

    alice, _, carol = await org.user("alice"), await org.user("bob"), await org.user("carol")
    with trio.fail_after(20):
        async with Client.open(alice, receive=False) as a:
            ack = await a.send("bob", "between alice and bob")
        async with Client.open(carol, receive=False) as c:
            # carol names alice and bob's conversation in her cursors and asks for everything
            snooped = await c.request(Sync(after=(Cursor(conversation=ack.conversation, seq=0),)))
            history = await c.history("alice")
    assert snooped.messages == () and history.messages == () and history.conversation is None
