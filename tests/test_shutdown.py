"""A graceful stop (what SIGTERM does) under a stream of sends loses nothing and duplicates nothing."""

from dataclasses import replace

import trio

from corridor.client.client import Client
from corridor.server.app import Server
from corridor.server.config import load_config

from .helpers import Org


def server_on(data_dir, port: int) -> Server:
    config = load_config(data_dir)
    return Server(replace(config, server=replace(config.server, listen=(f"127.0.0.1:{port}",))), advertise=False)


async def test_stop_under_load_then_restart(data_dir, tmp_path):
    acked = []
    with trio.fail_after(60):
        async with trio.open_nursery() as outer:
            first, stopped = server_on(data_dir, 0), trio.Event()

            async def run_first(task_status=trio.TASK_STATUS_IGNORED):
                await first.run(task_status=task_status)
                stopped.set()

            await outer.start(run_first)
            port = first.addresses[0][1]
            org = Org(first, tmp_path)
            alice, bob = await org.user("alice"), await org.user("bob")

            async with Client.open(alice, receive=False, backoff=(0.05, 0.2)) as sender:

                async def stream():
                    for i in range(400):
                        acked.append((await sender.send("bob", f"m{i}", msg_id=f"id{i}")).seq)

                async with trio.open_nursery() as inner:
                    inner.start_soon(stream)
                    while len(acked) < 50:
                        await trio.sleep(0.01)
                    first.stop()  # stop accepting, finish in-flight, close, flush
                    await stopped.wait()
                    await trio.sleep(0.3)
                    second = server_on(data_dir, port)  # the same address: the client reconnects
                    await outer.start(second.run)
            assert alice.outbox() == []
            async with Client.open(bob) as receiver:
                seqs = []
                async for event in receiver.events():
                    seqs.append((event.seq, event.text))
                    if len(seqs) == 400:
                        break
            second.stop()
    assert acked == list(range(1, 401))
    assert seqs == [(i + 1, f"m{i}") for i in range(400)]
