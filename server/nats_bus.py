"""The bus across processes: `Bus` plus NATS, so that a delivery accepted by one `serve`
process reaches the recipient's sessions connected to another.

What crosses, and nothing else:
- `user:<id>` topics carrying a `sessions.Delivery` (messages, notices, read and delivered marks,
  typing, resync), on the NATS subject `corridor.<cluster>.user.<id>`, as msgpack
  `{"event": {"type": TYPE, **fields}, "urgent": bool}`. A delivery's `origin` is a session id
  of the process that published it, so it is not sent: in other processes every session of the
  user gets the event.
- one event for many people (`publish_to_users`: a group's message, a notice) with more than
  `FANOUT_MIN` recipients, on `corridor.<cluster>.many.<about>` (`about` is `conversation.<id>`
  or `notice.<id>`), as msgpack `{"users": [ids], "event": …, "urgent": bool}`: one NATS
  message per process instead of one per member. Every process subscribes to them all and
  delivers to the listed users it has sessions for; a 2,000-member group's message is then 2
  NATS messages with three processes, not 2,000.
- `cluster.<name>` topics (`CLUSTER_TOPIC`), whose events are plain data (what msgpack packs:
  dicts, lists, str, int, bool, None), on `corridor.<cluster>.cluster.<name>`. Every process
  subscribes to all of them, so they are how processes tell each other what changed in state
  they each keep in memory (presence, caches, sessions to end).
`session.started`/`session.ended` and `message.stored` carry Python objects and stay in their
process.

Theory of operation. nats-py runs on asyncio and the server on trio, so the NATS connection
lives in one thread with its own asyncio loop. `run()` (a task in the server's root nursery)
runs that loop through `trio.to_thread.run_sync`, which waits for the thread to return even
when cancelled, so stopping the server joins the thread. The two loops meet at three points,
and none of them blocks trio:

- publish (trio → asyncio): local subscribers are called inline, exactly as `Bus` does; then
  the encoded delivery goes into a bounded `queue.Queue` (`put_nowait`) and the loop is woken
  with `call_soon_threadsafe`. One asyncio task, the pump, owns the connection and drains the
  queue into `nc.publish` in order.
- interest (trio → asyncio): the first local subscriber of a `user:` topic, and the last one
  leaving, append a subscribe or unsubscribe to a deque that the pump applies, so a process
  subscribes on NATS to exactly the users it has sessions for.
- receive (asyncio → trio): a NATS message is handed to `TrioToken.run_sync_soon`, which runs
  callbacks on the trio loop in arrival order; there it is decoded and delivered like a local
  publish.

The connection is made with NATS's `no_echo` option: the NATS server never sends a process its
own publications, which its local subscribers already had (one connection per process).

Failure: when the queue is full or NATS cannot take a publication, it is dropped, counted and
logged (the first and every 1000th); nothing blocks or raises. Nothing durable is lost: messages
are stored before they are published, and clients catch up by sequence whenever they sync (at
login, after reconnecting, on a `ResyncEvent`). nats-py reconnects (and resubscribes) by itself;
while it is reconnecting it buffers publications up to its pending limit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import nats
import nats.errors
import trio
from nats.aio.subscription import Subscription

from corridor.protocol.messages import EVENTS

from .bus import Bus, Callback
from .sessions import Delivery

log = logging.getLogger("corridor.bus.nats")

USER_TOPIC = "user:"
CLUSTER_TOPIC = "cluster."
# Up to this many recipients, per-user subjects (only processes with their sessions hear them);
# beyond, one message on a subject every process hears.
FANOUT_MIN = 4
QUEUE_SIZE = 10_000  # deliveries waiting for the NATS thread; beyond this they are dropped
RECONNECT_WAIT = 2.0  # seconds between attempts to reach NATS (nats-py's default)
# What nats-py may raise when it cannot take a publication or a flush now.
NATS_FAILURES = (nats.errors.Error, OSError, asyncio.TimeoutError)


def encode(delivery: Delivery) -> bytes:
    """The NATS payload for a delivery (its `origin` stays behind: see the module docstring)."""
    event = delivery.event
    return msgpack.packb({"event": {"type": event.TYPE, **event.to_fields()}, "urgent": delivery.urgent})


def decode(payload: bytes) -> Delivery:
    """The delivery a payload from `encode` carries; raises on anything else."""
    return _delivery(msgpack.unpackb(payload))


def encode_many(user_ids: list[int], delivery: Delivery) -> bytes:
    """The NATS payload for one delivery to many users."""
    event = delivery.event
    return msgpack.packb({"users": user_ids, "event": {"type": event.TYPE, **event.to_fields()}, "urgent": delivery.urgent})


def decode_many(payload: bytes) -> tuple[list[int], Delivery]:
    """The users and delivery a payload from `encode_many` carries; raises on anything else."""
    data = msgpack.unpackb(payload)
    users = data["users"]
    if not isinstance(users, list) or not all(type(u) is int for u in users):
        raise ValueError("users must be a list of ids")
    return users, _delivery(data)


def _delivery(data: dict) -> Delivery:
    fields = dict(data["event"])
    return Delivery(EVENTS[fields.pop("type")].from_fields(fields), urgent=bool(data["urgent"]))


class NatsBus(Bus):
    """A `Bus` whose `user:<id>` deliveries also reach that user's sessions in other processes.

    Counters (for tests, logs and status): `sent` to NATS, `received` from other processes,
    `dropped` (queue full, or not running) and `failed` (NATS refused them)."""

    def __init__(
        self,
        url: str,
        cluster: str,
        *,
        stop_grace: float,
        reconnect_wait: float = RECONNECT_WAIT,
        queue_size: int = QUEUE_SIZE,
    ):
        super().__init__()
        self._url = url
        self._user_prefix = f"corridor.{cluster}.user."
        self._cluster_prefix = f"corridor.{cluster}.cluster."
        self._many_prefix = f"corridor.{cluster}.many."
        self._stop_grace = stop_grace
        self._reconnect_wait = reconnect_wait
        self._outbox: queue.Queue[tuple[str, bytes]] = queue.Queue(queue_size)
        # Every process hears every cluster topic: one wildcard subscription, made at connect.
        self._interest: collections.deque[tuple[bool, str]] = collections.deque(
            [(True, self._cluster_prefix + ">"), (True, self._many_prefix + ">")]
        )
        self._interested: set[str] = set()  # `user:` topics with local subscribers
        self._loop: asyncio.AbstractEventLoop | None = None  # while the NATS thread may be called
        self._wake = asyncio.Event()
        self._stopping = False
        self._flush_waiters: list[Callable[[], None]] = []  # touched on the NATS thread only
        self.sent = self.failed = 0  # counted on the NATS thread
        self.received = self.dropped = 0  # counted on the trio thread

    # -- the trio side ----------------------------------------------------------------------

    def subscribe(self, topic: str, callback: Callback) -> Callable[[], None]:
        """As `Bus.subscribe`; the first subscriber of a `user:` topic subscribes on NATS too."""
        unsubscribe_local = super().subscribe(topic, callback)
        if topic.startswith(USER_TOPIC) and topic not in self._interested:
            self._interested.add(topic)
            self._change_interest(True, topic)

        def unsubscribe() -> None:
            unsubscribe_local()
            if topic in self._interested and topic not in self._subscribers:
                self._interested.discard(topic)
                self._change_interest(False, topic)

        return unsubscribe

    def publish(self, topic: str, event: Any) -> int:
        """As `Bus.publish` (the count is of local subscribers); a `Delivery` on a `user:` topic,
        and any `cluster.` event, is also queued for NATS, without waiting."""
        count = super().publish(topic, event)
        if topic.startswith(USER_TOPIC) and isinstance(event, Delivery):
            self._send(self._subject(topic), encode(event))
        elif topic.startswith(CLUSTER_TOPIC):
            self._send(self._cluster_prefix + topic[len(CLUSTER_TOPIC) :], msgpack.packb(event))
        return count

    def publish_to_users(self, user_ids: Iterable[int], event: Any, about: str) -> None:
        """As `Bus.publish_to_users`; beyond `FANOUT_MIN` people the other processes get the
        event once, on a subject all of them hear, with the list of users."""
        users = list(dict.fromkeys(user_ids))
        if len(users) <= FANOUT_MIN or not isinstance(event, Delivery):
            super().publish_to_users(users, event, about)
            return
        for user_id in users:
            super().publish(f"{USER_TOPIC}{user_id}", event)  # this process's sessions only
        self._send(self._many_prefix + about, encode_many(users, event))

    async def flush(self) -> None:
        """Wait until the NATS server has every subscription change and publication made so far
        (a round trip), through an outage if there is one. For tests and tools that must know a
        user's subject is live before another process publishes to it."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the NATS bus is not running")
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        loop.call_soon_threadsafe(self._flush_waiters.append, lambda: token.run_sync_soon(done.set))
        loop.call_soon_threadsafe(self._wake.set)
        await done.wait()

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Carry deliveries through NATS until cancelled, then send what is queued and close the
        connection within `stop_grace` seconds. Started at once: NATS being unreachable is not an
        error (publications are dropped and counted until it is back)."""
        token = trio.lowlevel.current_trio_token()
        loop = asyncio.new_event_loop()
        self._stopping = False
        self._wake = asyncio.Event()
        self._loop = loop
        async with trio.open_nursery() as nursery:
            # Not cancellable: on cancellation the nursery waits for the thread to finish.
            nursery.start_soon(trio.to_thread.run_sync, self._thread, loop, token)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._loop = None  # from here on publications stay local (counted as dropped)
                self._stopping = True
                loop.call_soon_threadsafe(self._wake.set)
        log.info(
            "bus stopped: %d sent to NATS, %d received, %d dropped, %d refused",
            self.sent,
            self.received,
            self.dropped,
            self.failed,
        )

    def _subject(self, topic: str) -> str:
        return self._user_prefix + topic[len(USER_TOPIC) :]

    def _topic(self, subject: str) -> str:
        if subject.startswith(self._cluster_prefix):
            return CLUSTER_TOPIC + subject[len(self._cluster_prefix) :]
        return USER_TOPIC + subject[len(self._user_prefix) :]

    def _send(self, subject: str, payload: bytes) -> None:
        loop = self._loop
        if loop is None:
            self._drop("the NATS bus is not running")
            return
        try:
            self._outbox.put_nowait((subject, payload))
        except queue.Full:
            self._drop("the NATS queue is full")
            return
        loop.call_soon_threadsafe(self._wake.set)

    def _change_interest(self, wanted: bool, topic: str) -> None:
        self._interest.append((wanted, self._subject(topic)))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped % 1000 == 1:
            log.warning("%s: %d deliveries to other processes dropped so far (clients resync)", why, self.dropped)

    def _deliver_remote(self, subject: str, payload: bytes) -> None:
        if subject.startswith(self._many_prefix):
            self._deliver_many(subject, payload)
            return
        topic = self._topic(subject)
        try:
            event = msgpack.unpackb(payload) if topic.startswith(CLUSTER_TOPIC) else decode(payload)
        except Exception as exc:  # another process (of another version?) sent what this one cannot read
            log.warning("dropped an unreadable NATS message for %s: %r", topic, exc)
            return
        self.received += 1
        super().publish(topic, event)

    def _deliver_many(self, subject: str, payload: bytes) -> None:
        try:
            users, delivery = decode_many(payload)
        except Exception as exc:
            log.warning("dropped an unreadable NATS message on %s: %r", subject, exc)
            return
        self.received += 1
        for user_id in users:
            topic = f"{USER_TOPIC}{user_id}"
            if topic in self._subscribers:
                super().publish(topic, delivery)

    # -- the NATS thread --------------------------------------------------------------------

    def _thread(self, loop: asyncio.AbstractEventLoop, token: trio.lowlevel.TrioToken) -> None:
        try:
            loop.run_until_complete(self._main(token))
        finally:
            # nats-py may leave tasks behind (a reconnect in progress while NATS is down):
            # finished here, they do not outlive the loop and fail when collected.
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self, token: trio.lowlevel.TrioToken) -> None:
        nc = nats.NATS()
        connecting = asyncio.create_task(self._connect(nc))
        subscriptions: dict[str, Subscription] = {}
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                # Read before the pump: once it is set, trio publishes nothing more to the
                # queue, so this pump sends the last of it.
                stopping = self._stopping
                await self._pump(nc, subscriptions, token)
                if stopping:
                    break
        finally:
            unsent = self._outbox.qsize()  # NATS was never reached: they had nowhere to go
            if unsent:
                self.failed += unsent
                log.warning("%d deliveries to other processes never reached NATS (clients resync)", unsent)
            connecting.cancel()  # does nothing once connected
            await asyncio.gather(connecting, return_exceptions=True)
            # nats-py cannot close a connection whose first connect never completed.
            if not connecting.cancelled() and connecting.exception() is None:
                try:
                    await asyncio.wait_for(self._close(nc), self._stop_grace)
                except NATS_FAILURES as exc:
                    log.warning("closing the NATS connection: %r", exc)

    async def _connect(self, nc: nats.NATS) -> None:
        async def disconnected() -> None:
            if not nc.is_closed:  # closed: it is this bus stopping
                log.warning("bus lost NATS at %s; reconnecting", self._url)

        async def reconnected() -> None:
            log.info("bus reconnected to NATS at %s", self._url)
            self._wake.set()  # what waited for the connection can go now

        async def error(exc: Exception) -> None:
            log.debug("NATS: %r", exc)  # every failed attempt; disconnected() said it once

        await nc.connect(
            self._url,
            name="corridor",
            no_echo=True,
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # also retries the first connection for ever
            reconnect_time_wait=self._reconnect_wait,
            # A publication that finds nats-py's buffer full waits for the socket at most this
            # long (then it is refused), so a stalled NATS cannot hold up the server's stop.
            flush_timeout=self._stop_grace,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        log.info("bus connected to NATS at %s", self._url)
        self._wake.set()

    async def _pump(self, nc: nats.NATS, subscriptions: dict[str, Subscription], token: trio.lowlevel.TrioToken) -> None:
        """Apply interest changes (once connected: nats-py resubscribes after a reconnect by
        itself), send the queue, then answer `flush()` callers."""
        while self._interest and nc.is_connected:
            wanted, subject = self._interest.popleft()
            try:
                if wanted and subject not in subscriptions:
                    subscriptions[subject] = await nc.subscribe(subject, cb=self._receiver(token))
                elif not wanted and subject in subscriptions:
                    await subscriptions.pop(subject).unsubscribe()
            except NATS_FAILURES as exc:
                self._interest.appendleft((wanted, subject))  # retried on the next wake-up
                log.warning("NATS subscription change for %s: %r", subject, exc)
                break
        # Before the first connection nats-py takes no publication at all (its reconnect buffer
        # is set up by connect): they wait here, in the bounded queue, until it is up.
        while nc.is_connected or nc.is_reconnecting:
            try:
                subject, payload = self._outbox.get_nowait()
            except queue.Empty:
                break
            try:
                await nc.publish(subject, payload)
            except NATS_FAILURES as exc:
                self.failed += 1
                if self.failed % 1000 == 1:
                    log.warning("NATS refused a delivery (%r): %d refused so far (clients resync)", exc, self.failed)
            else:
                self.sent += 1
        if self._flush_waiters and nc.is_connected:
            # Only these: a caller arriving during the round trip may have queued more since.
            waiters, self._flush_waiters = self._flush_waiters, []
            try:
                await nc.flush()
            except NATS_FAILURES as exc:
                log.warning("NATS flush: %r", exc)
                self._flush_waiters[:0] = waiters  # retried on the next wake-up
                return
            for waiter in waiters:
                _tell_trio(waiter)

    def _receiver(self, token: trio.lowlevel.TrioToken):
        async def received(msg) -> None:
            _tell_trio(lambda: token.run_sync_soon(self._deliver_remote, msg.subject, msg.data))

        return received

    async def _close(self, nc: nats.NATS) -> None:
        if nc.is_connected:
            await nc.flush()
        await nc.close()


def _tell_trio(call: Callable[[], None]) -> None:
    try:
        call()
    except trio.RunFinishedError:
        pass  # the server's trio run is over: nobody is left to tell
