"""One bad peer harms only itself: malformed frames, deadlines, floods and slow readers."""

import logging

import pytest
import trio

from corridor.client.client import Client
from corridor.protocol.framing import encode_frame

from .conftest import serve_with
from .helpers import Org, RawPeer


async def assert_still_serving(org: Org, name: str) -> None:
    """Another user can still enroll and send while the bad peer misbehaves."""
    sender = await org.user(name)
    async with Client.open(sender, receive=False) as client:
        ack = await client.send("admin", "still here")
    assert ack.seq >= 1


async def test_garbage_gets_error_frame_and_close(org):
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.send_bytes(b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1")
        error = await peer.frame()
        assert (error["type"], error["code"]) == ("error", "BAD_FRAME")
        assert await peer.frame() is None
        await assert_still_serving(org, "carol")


async def test_oversized_length_is_refused_before_the_body(org):
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.hello()
        await peer.send_bytes((2**31).to_bytes(4, "big"))  # declares 2 GiB; no body follows
        error = await peer.frame()
        assert error["code"] == "FRAME_TOO_LARGE"
        assert await peer.frame() is None
        await assert_still_serving(org, "carol")


async def test_wrong_types_and_unknown_type_are_answered_and_the_connection_survives(org):
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        assert (await peer.hello())["type"] == "result"
        await peer.send({"type": "login", "id": 2, "user": 42, "password": ["x"]})
        wrong = await peer.frame()
        assert (wrong["re"], wrong["code"]) == (2, "BAD_MESSAGE") and "'user'" in wrong["message"]
        await peer.send({"type": "teleport", "id": 3})
        unknown = await peer.frame()
        assert (unknown["re"], unknown["code"]) == (3, "UNKNOWN_TYPE")
        await peer.send({"type": "send", "id": 4, "to": "admin", "msg_id": "x", "text": "hi"})
        refused = await peer.frame()
        assert (refused["re"], refused["code"]) == (4, "NOT_AUTHENTICATED")


async def test_non_map_frame_and_missing_id_close_the_connection(org):
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.hello()
        await peer.send_bytes(encode_frame({"type": "ping"}))  # a request without an id
        assert (await peer.frame())["code"] == "BAD_FRAME"
        assert await peer.frame() is None


async def test_hello_must_come_first_and_versions_must_overlap(org):
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.send({"type": "ping", "id": 1})
        assert (await peer.frame())["code"] == "HELLO_REQUIRED"
        peer = RawPeer(await org.raw_tls())
        await peer.send({"type": "hello", "id": 1, "versions": [99]})
        assert (await peer.frame())["code"] == "UNSUPPORTED_VERSION"
        assert await peer.frame() is None


async def test_no_login_before_the_deadline_is_disconnected(data_dir, nursery, tmp_path):
    # login_timeout is 30 s in production: it bounds how long an unauthenticated peer holds a slot.
    org = await serve_with(nursery, data_dir, tmp_path, login_timeout=0.5)
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.hello()
        assert (await peer.frame())["code"] == "TIMEOUT"
        assert await peer.frame() is None


async def test_a_connection_that_logged_in_and_only_listens_outlives_the_login_deadline(data_dir, nursery, tmp_path):
    # A client that logs in and then only receives sends nothing until its first ping; the login
    # deadline must stop applying at login, not at the next frame it sends.
    org = await serve_with(nursery, data_dir, tmp_path, login_timeout=0.5, idle_timeout=3)
    bob, alice = await org.user("bob"), await org.user("alice")
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.log_in(bob)
        await trio.sleep(1.0)  # twice the login deadline, in silence
        async with Client.open(alice, receive=False) as a:
            await a.send("bob", "still there?")
        assert (await peer.frame())["text"] == "still there?"


async def test_connections_per_address_are_limited(data_dir, nursery, tmp_path):
    org = await serve_with(nursery, data_dir, tmp_path, max_connections_per_address=2)
    with trio.fail_after(10):
        held = [RawPeer(await org.raw_tls()) for _ in range(2)]
        for peer in held:
            await peer.hello()
        third = RawPeer(await org.raw_tls())
        assert (await third.frame())["code"] == "TOO_MANY_CONNECTIONS"
        await held[0].stream.aclose()
        await trio.sleep(0.2)
        fresh = RawPeer(await org.raw_tls())
        assert (await fresh.hello())["type"] == "result"


async def test_requests_beyond_the_in_flight_limit_are_refused_one_answer_each(data_dir, nursery, tmp_path):
    org = await serve_with(nursery, data_dir, tmp_path, max_in_flight=2)
    with trio.fail_after(15):
        peer = RawPeer(await org.raw_tls())
        await peer.hello()
        # Enroll requests are slow (Argon2id), so pipelined ones pile up behind the first.
        frames = b"".join(encode_frame({"type": "enroll", "id": i, "token": "bogus", "password": "x" * 12}) for i in range(2, 12))
        await peer.send_bytes(frames)
        answers = [await peer.frame() for _ in range(10)]
        assert sorted(a["re"] for a in answers) == list(range(2, 12))
        codes = {a["code"] for a in answers}
        assert codes <= {"INVITE_INVALID", "TOO_MANY_REQUESTS", "RATE_LIMITED"}
        assert "TOO_MANY_REQUESTS" in codes


async def test_a_client_that_stops_reading_is_dropped_and_others_are_not_slowed(data_dir, nursery, tmp_path, caplog):
    # outbound_queue is 1024 frames in production; 16 makes the overflow quick to reach.
    caplog.set_level(logging.INFO, logger="corridor.net")
    org = await serve_with(nursery, data_dir, tmp_path, outbound_queue=16)
    alice, bob, carol = await org.user("alice"), await org.user("bob"), await org.user("carol")
    with trio.fail_after(60):
        stalled = RawPeer(await org.raw_tls())
        await stalled.log_in(bob)
        # bob's raw connection never reads again; alice floods him with large messages.
        async with Client.open(alice, receive=False) as a, Client.open(carol) as c:
            for i in range(300):
                await a.send("bob", f"{i:04d} " + "x" * 4000)
            ack = await a.send("carol", "you are unaffected")
            async for event in c.events():
                assert event.text == "you are unaffected"
                break
        frames = []
        while (frame := await stalled.frame()) is not None:
            frames.append(frame)
        # Its socket buffers were full, so the reason may not reach it; the server logs it.
        assert len([f for f in frames if f["type"] == "message"]) < 300
        assert "SLOW_CONSUMER" in caplog.text
        # Nothing is lost: bob's next session gets all 300 in order.
        async with Client.open(bob) as b:
            got = []
            async for event in b.events():
                got.append(event.text[:4])
                if len(got) == 300:
                    break
        assert got == [f"{i:04d}" for i in range(300)] and ack.seq == 1


async def test_a_client_that_pauses_reading_gets_every_frame_intact_and_in_order(org):
    # Frames are written at once while the socket takes them and queued once it is full; the
    # frame OpenSSL had begun when the socket filled must go out first and whole.
    bob = await org.user("bob")
    alice = await org.user("alice")
    with trio.fail_after(60):
        paused = RawPeer(await org.raw_tls())
        await paused.log_in(bob)
        async with Client.open(alice, receive=False) as a:
            for i in range(200):  # 3.2 MB: more than the loopback socket buffers hold
                await a.send("bob", f"{i:04d} " + "y" * 16_000)
        texts = []
        while len(texts) < 200:
            frame = await paused.frame()
            assert frame is not None, f"connection closed after {len(texts)} messages"
            if frame["type"] == "message":
                assert frame["seq"] == len(texts) + 1
                texts.append(frame["text"])
        assert texts == [f"{i:04d} " + "y" * 16_000 for i in range(200)]


@pytest.mark.parametrize("frame", [{"type": "hello", "id": 1, "versions": "1"}, {"type": "hello", "id": True, "versions": [1]}])
async def test_malformed_hello_does_not_crash(org, frame):
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.send(frame)
        assert (await peer.frame())["type"] == "error"
        await assert_still_serving(org, "dave")


async def test_a_peer_that_never_finishes_the_tls_handshake_is_dropped(data_dir, nursery, tmp_path):
    # handshake_timeout is 10 s in production: it bounds what a slow-loris peer can hold.
    org = await serve_with(nursery, data_dir, tmp_path, handshake_timeout=0.5)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(*org.address)
        started = trio.current_time()
        try:
            assert await stream.receive_some(4096) == b""  # silence, then the server hangs up
        except trio.BrokenResourceError:
            pass
        assert 0.4 < trio.current_time() - started < 5
        await assert_still_serving(org, "erin")


async def test_an_idle_logged_in_connection_is_closed(data_dir, nursery, tmp_path):
    # idle_timeout is 300 s in production (clients ping every 60 s).
    org = await serve_with(nursery, data_dir, tmp_path, idle_timeout=0.5)
    bob = await org.user("bob")
    with trio.fail_after(10):
        peer = RawPeer(await org.raw_tls())
        await peer.log_in(bob)
        for i in range(3):  # pings keep it open past the timeout
            await trio.sleep(0.3)
            await peer.send({"type": "ping", "id": 3 + i})
            assert (await peer.frame())["type"] == "result"
        assert (await peer.frame())["code"] == "TIMEOUT"
        assert await peer.frame() is None


async def test_a_refused_reconnect_backs_off_and_retries(data_dir, nursery, tmp_path):
    """A reconnect refused at login (here: the address's only connection slot is taken) is retried
    with backoff, not fatal: the client gets back in once the slot is free."""
    org = await serve_with(nursery, data_dir, tmp_path, max_connections_per_address=1)
    bob = await org.user("bob")
    with trio.fail_after(20):
        async with Client.open(bob, receive=False, backoff=(0.5, 1.0)) as client:
            await client.aclose_connection()  # bob's link drops; he waits ≥ 0.25 s before reconnecting
            await trio.sleep(0.1)
            squatter = RawPeer(await org.raw_tls())  # takes the only slot meanwhile
            await squatter.hello()
            await trio.sleep(1.0)  # bob's reconnects are refused with TOO_MANY_CONNECTIONS
            await squatter.stream.aclose()
            ack = await client.send("bob", "back in")
            assert ack.seq == 1 and client.connects == 2
