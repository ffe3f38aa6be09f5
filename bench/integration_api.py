"""Notices per second through the HTTP integration API, each stored and archived durably.

What it measures (one JSON object on stdout, progress on stderr): an integration (made over
the control socket, with a `broadcast` rule for its bot) sends notices with
`POST /api/v1/notices` to a department of `--recipients` people, who are connected and receive
them live. `--connections` HTTPS keep-alive connections (TLS 1.3, HTTP/1.1, verified against the
organisation's CA) each keep one call in flight for `--seconds`; every 201 comes only after the
group commit that stored the notice and its archive entry. The server is pinned to one core
(`--taskset`, on by default on a machine with two), so `notices_per_s` is what one core carries.
Afterwards it checks that every acknowledged notice reached every recipient exactly once, and,
with the server stopped, that the archive holds one `notice` entry per notice with the
integration as its actor. Nothing but 127.0.0.1 is used; a hard deadline stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sqlite3
import ssl
import sys
import time
from pathlib import Path

import h11
import trio
from harness import (
    CpuSnapshot,
    ServerProcess,
    cpu_usage,
    enroll_all,
    latency_summary,
    log,
    open_wire_client,
    pin_generator,
    py_spy_path,
    run_against_server,
    start_profilers,
)

from corridor.client.transport import open_unix, running
from corridor.protocol.integrations import IntegrationAdd
from corridor.protocol.messages import DepartmentAdd, NoticeEvent, PolicySet, ProfileSet

TARGET_PER_S = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _set_up(data_dir: Path, names: list[str]) -> tuple[str, int]:
    """A department holding the recipients, the integration `oa` with a rate that never binds,
    and a broadcast rule for its bot; returns the integration's token and the department."""
    stream = await open_unix(str(data_dir / "control.sock"))
    async with running(stream) as admin:
        await admin.handshake()
        department = (await admin.request(DepartmentAdd(name="Finance"))).id
        for name in names:
            await admin.request(ProfileSet(user=name, departments=(department,)))
        token = (await admin.request(IntegrationAdd(name="oa", scopes=("notices",), rate_per_minute=600_000))).token
        await admin.request(PolicySet(kind="broadcast", department=department, subjects=("user:oa",)))
    return token, department


class HttpsCaller:
    """One keep-alive HTTPS connection making one call at a time (h11 for the HTTP/1.1 framing)."""

    def __init__(self, stream: trio.SSLStream, token: str, port: int):
        self.stream, self.token, self.port = stream, token, port
        self.http = h11.Connection(h11.CLIENT)

    async def post(self, path: str, body: bytes, key: str) -> tuple[int, bytes]:
        headers = [
            ("Host", f"127.0.0.1:{self.port}"),
            ("Authorization", f"Bearer {self.token}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ]
        if key:
            headers.append(("Idempotency-Key", key))
        data = self.http.send(h11.Request(method="POST", target=path, headers=headers))
        data += self.http.send(h11.Data(data=body)) + self.http.send(h11.EndOfMessage())
        await self.stream.send_all(data)
        status, answer = 0, b""
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                answer += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.http.start_next_cycle()
                return status, answer


async def _connect(port: int, context: ssl.SSLContext, token: str) -> HttpsCaller:
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1", https_compatible=True)
    await stream.do_handshake()
    return HttpsCaller(stream, token, port)


async def measure(args: argparse.Namespace, http_port: int, work: Path, server: ServerProcess) -> dict:
    names = [f"r{i:03d}" for i in range(args.recipients)]
    opened: list = []
    result: dict = {
        "benchmark": "integration_api_notices",
        "date": time.strftime("%Y-%m-%d"),
        "connections": args.connections,
        "notices_per_call": args.batch,
        "recipients": args.recipients,
        "seconds": args.seconds,
        "server_pinned_to_one_core": args.taskset,
        "target_per_s": TARGET_PER_S,
    }
    profiles = await enroll_all(work / "data", work / "profiles", names, 4, opened)
    token, department = await _set_up(work / "data", names)
    context = ssl.create_default_context(cafile=str(work / "data" / "tls" / "ca.pem"))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    received: dict[str, list[int]] = {name: [] for name in names}
    acked: list[int] = []  # every notice acknowledged, warm-up included
    latencies: list[float] = []  # ms, measured phase only
    failures: dict[str, int] = {}

    async def receive(name: str, profile, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with open_wire_client(profile) as client:
            task_status.started()
            async for event in client.events():
                if isinstance(event, NoticeEvent):
                    received[name].append(event.id)

    async def call_loop(index: int, until: float, timed: bool) -> None:
        caller = await _connect(http_port, context, token)
        sent = 0
        while trio.current_time() < until:
            sent += 1
            notices = [
                {
                    "id": f"c{index}-{sent}-{k}",
                    "title": "报销审批提醒",
                    "text": f"单据 {index}-{sent}-{k} 等待审批",
                    "departments": [department],
                }
                for k in range(args.batch)
            ]
            started = time.perf_counter()
            if args.batch == 1:
                body = {key: value for key, value in notices[0].items() if key != "id"}
                status, answer = await caller.post("/api/v1/notices", json.dumps(body).encode(), notices[0]["id"])
                results = [json.loads(answer)] if status == 201 else []
            else:
                status, answer = await caller.post("/api/v1/notices/batch", json.dumps({"notices": notices}).encode(), "")
                results = json.loads(answer)["results"] if status == 200 else []
            for outcome in results:
                if "error" in outcome:
                    code = outcome["error"]["code"]
                    failures[code] = failures.get(code, 0) + 1
                else:
                    acked.append(outcome["id"])
            if results and timed:
                latencies.append(1000 * (time.perf_counter() - started))
            if not results:
                failures[str(status)] = failures.get(str(status), 0) + 1
        await caller.stream.aclose()

    async def load(seconds: float, timed: bool) -> None:
        until = trio.current_time() + seconds
        async with trio.open_nursery() as nursery:
            for i in range(args.connections):
                nursery.start_soon(call_loop, len(acked) * 1000 + i, until, timed)

    def delivered() -> bool:
        wanted = set(acked)
        return all(wanted <= set(ids) for ids in received.values())

    async with trio.open_nursery() as receivers:
        for name, profile in zip(names, profiles, strict=True):
            await receivers.start(receive, name, profile)
        log(f"{len(names)} recipients connected; warming up for 1 s")
        await load(1.0, timed=False)
        warm = len(acked)
        log(f"measuring {args.seconds:g} s with {args.connections} connections")
        before = CpuSnapshot.take(server)
        profilers = start_profilers(args.py_spy, server.pid, args.seconds) if args.py_spy else []
        await load(args.seconds, timed=True)
        after = CpuSnapshot.take(server)
        for profiler in profilers:
            with trio.fail_after(30):
                await trio.to_thread.run_sync(profiler.wait)
        with trio.move_on_after(10):  # the last pushes are on their way
            while not delivered():
                await trio.sleep(0.1)
        receivers.cancel_scope.cancel()
    measured = len(acked) - warm
    wall = after.wall - before.wall
    with contextlib.closing(sqlite3.connect(f"file:{work / 'data' / 'corridor.sqlite'}?mode=ro", uri=True)) as conn:
        archived = conn.execute("SELECT count(*) FROM archive WHERE kind = 'notice' AND actor = 'oa'").fetchone()[0]
    result.update(
        {
            "notices": measured,
            "notices_per_s": round(measured / wall),
            "latency_ms": latency_summary(latencies),
            "refused": failures,
            **cpu_usage(before, after, server.pid, measured),
            "every_recipient_got_every_notice_once": delivered() and all(len(ids) == len(set(ids)) for ids in received.values()),
            "archived_with_integration_as_actor": archived == len(acked),
        }
    )
    result["meets_target"] = result["notices_per_s"] >= TARGET_PER_S
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=32, help="HTTPS connections, one call in flight each")
    parser.add_argument(
        "--batch", type=int, default=1, help="notices a call: 1 uses POST /api/v1/notices, more POST /api/v1/notices/batch"
    )
    parser.add_argument("--recipients", type=int, default=10, help="people in the department, all connected")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to measure")
    parser.add_argument("--taskset", action=argparse.BooleanOptionalAction, default=None, help="pin server and generator")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    parser.add_argument(
        "--py-spy", type=Path, metavar="PREFIX", help="profile server and generator (PREFIX-server.txt, PREFIX-generator.txt)"
    )
    args = parser.parse_args()
    if args.py_spy and py_spy_path() is None:
        raise SystemExit("--py-spy needs py-spy: .venv/bin/pip install py-spy")
    args.taskset = pin_generator(args.taskset)
    http_port = _free_port()

    async def run(work: Path, server: ServerProcess) -> dict:
        return await measure(args, http_port, work, server)

    def passed(result: dict) -> bool:
        return (
            result["every_recipient_got_every_notice_once"]
            and result["archived_with_integration_as_actor"]
            and not result["refused"]
        )

    return run_against_server(
        "corridor-bench-api-",
        run,
        timeout=120 + args.seconds * 3,
        out=args.out,
        passed=passed,
        cpu=0 if args.taskset else None,
        config=f'[http]\nlisten = "127.0.0.1:{http_port}"',
    )


if __name__ == "__main__":
    sys.exit(main())
