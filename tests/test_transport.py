"""`Channel` against a scripted server over in-memory streams: requests submitted without
waiting are all on the wire before any answer, each answer reaches its own caller whatever the
order, an answer nobody waits for is dropped without harming the link, and a closed link fails
whatever is still unanswered."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from corridor.client.transport import running
from corridor.protocol import NEED_DATA, Connection, ReceivedRequest
from corridor.protocol.errors import CorridorError, make_error
from corridor.protocol.messages import Hello, HelloResult
from corridor.protocol.versions import SUPPORTED_VERSIONS


async def received(server: Connection, stream: trio.abc.Stream, count: int) -> list[ReceivedRequest]:
    """Read until the scripted server has `count` requests."""
    found: list[ReceivedRequest] = []
    while len(found) < count:
        server.receive_data(await stream.receive_some())
        while (event := server.next_event()) is not NEED_DATA:
            found.append(event)
    return found


def hello(name: str) -> Hello:
    return Hello(versions=SUPPORTED_VERSIONS, client=name)


def result(name: str) -> HelloResult:
    return HelloResult(version=SUPPORTED_VERSIONS[-1], server=name, org="Test Org")


async def test_submitted_requests_are_written_at_once_and_answered_to_their_own_callers():
    client_end, server_end = trio.testing.memory_stream_pair()
    server = Connection("server")
    with trio.fail_after(5):
        async with running(client_end) as channel:
            first, second, _ = [await channel.submit(hello(f"c{i}")) for i in range(3)]
            requests = await received(server, server_end, 3)  # nothing was answered yet
            assert [r.message.client for r in requests] == ["c0", "c1", "c2"]

            await server_end.send_all(
                server.send_result(requests[2].id, result("to c2"))
                + server.send_result(requests[1].id, result("to c1"))
                + server.send_failure(requests[0].id, make_error("BAD_MESSAGE", "not you"))
            )
            assert (await second).server == "to c1"
            with pytest.raises(CorridorError) as refused:
                await first
            assert refused.value.code == "BAD_MESSAGE"

            # nobody awaited the third: its answer was dropped and the link is still good
            after = await channel.submit(hello("c3"))
            (request,) = await received(server, server_end, 1)
            await server_end.send_all(server.send_result(request.id, result("to c3")))
            assert (await after).server == "to c3"
            assert channel.error is None and channel.conn.in_flight == 0

            unanswered = await channel.submit(hello("c4"))
            await received(server, server_end, 1)
            await server_end.aclose()
            with pytest.raises(CorridorError) as lost:
                await unanswered
            with pytest.raises(CorridorError) as dead:
                await (await channel.submit(hello("c5")))
    assert lost.value.code == dead.value.code == "CONNECTION_LOST"
