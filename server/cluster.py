"""This process among the other `serve` processes on one NATS bus: who they are, whether they
are still there, and what each one tells the others about the state it keeps in memory.

Theory of operation. Each process picks a random node id when it starts. Whatever it tells the
others is one plain-data message on the bus topic `cluster.state` (which `NatsBus` carries to
every other process, and `Bus` keeps in this one): `{"node", "seq", "kind", **fields}`. `seq`
numbers the node's messages, one sequence over all kinds, and NATS keeps one publisher's
messages in order, so a receiver that sees a gap knows it missed something (NATS was down, a
queue was full). The bus calls this process's own subscribers too; they ignore their node.

- Liveness: every `PERIOD` seconds a process announces itself (`alive`), with what the features
  add to it (the sessions it holds, the presence of its users): the whole of what it holds, so
  any loss is repaired within a period. A process not heard from for `SILENCE` periods is gone
  (killed, or cut off), and `on_gone` listeners forget what it said. One that stops cleanly says
  `bye`. Production: 5 s, gone after 15 s.
- Joining: a process not heard from before is answered with an announcement at once, so a
  process that just started learns the others' state within a round trip (its own first
  announcement, made once its bus is connected, is the question). What a process says before
  its bus is connected is lost, and repaired by its next announcement.
- Caches: a process that changed what others load from the database once (users, the policy's
  rules) says `changed` after its commit, with the kind, the ids and, where they are small, the
  new rows. The others apply the rows at once, in order with what the process says next (a
  session it ends logs in again with the new role), and re-read those ids in `run()`'s reloader,
  off the bus callback: two processes' changes to one row may arrive in either order, and the
  database has the last one. After a gap, or on first hearing a process that had already said
  something, everything registered is re-read: what was missed is in the database.

On the local bus (one process) nothing crosses and `run()` is not started: the messages go to
this process's own subscribers only, which ignore them.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from .bus import Bus

log = logging.getLogger("corridor.cluster")

TOPIC = "cluster.state"
# How often a process announces itself. Other processes forget a silent one after SILENCE
# periods: that bounds how long a killed process's users still look online elsewhere.
PERIOD = 5.0
SILENCE = 3
RELOAD_RETRY = 1.0  # seconds before a reload that failed on storage is tried again

Message = dict[str, Any]
Handler = Callable[[str, Message], None]  # (node, message)
Reload = Callable[[frozenset[int] | None], Awaitable[None]]  # ids, or None for everything


@dataclass
class Peer:
    """Another process, as last heard."""

    name: str
    seq: int
    heard: float  # trio.current_time() of its last message


class Cluster:
    """This process's view of the others, and its way to tell them things."""

    def __init__(self, bus: Bus):
        self.node = secrets.token_hex(6)
        self.name = ""  # the process's instance name, for people reading logs and metrics
        self.peers: dict[str, Peer] = {}
        self._bus = bus
        self._seq = 0
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._contributors: list[Callable[[], Message]] = []
        self._gone: list[Callable[[str], None]] = []
        self._reloads: dict[str, Reload] = {}
        self._applies: dict[str, Callable[[Message], None]] = {}
        self._pending: dict[str, set[int] | None] = {}
        self._reload_wakeup = trio.Event()
        self._announce_wakeup = trio.Event()
        bus.subscribe(TOPIC, self._received)

    # -- telling ----------------------------------------------------------------------------

    def publish(self, kind: str, **fields: Any) -> None:
        """Tell every other process (never waits; `fields` must be plain data)."""
        self._seq += 1
        self._bus.publish(TOPIC, {"node": self.node, "seq": self._seq, "kind": kind, **fields})

    def changed(self, kind: str, ids: list[int] | None = None, **rows: Any) -> None:
        """After a commit here: the other processes re-read these rows of `kind` (None: all),
        and apply `rows` (plain data) at once if given."""
        self.publish("changed", what=kind, ids=ids, **rows)

    # -- listening --------------------------------------------------------------------------

    def on(self, kind: str, handler: Handler) -> None:
        """Call `handler(node, message)` for every `kind` message from another process, in
        the order they were registered (the session registry's before presence's)."""
        self._handlers[kind].append(handler)

    def on_gone(self, listener: Callable[[str], None]) -> None:
        """Call `listener(node)` when a process said goodbye or fell silent."""
        self._gone.append(listener)

    def contributes(self, contribute: Callable[[], Message]) -> None:
        """Add `contribute()`'s fields to every announcement (the whole state it stands for)."""
        self._contributors.append(contribute)

    def on_change(self, kind: str, reload: Reload, apply: Callable[[Message], None] | None = None) -> None:
        """When another process changed rows of `kind`: `apply(message)` at once (the rows it
        sent), then `await reload(ids)` from `run()` (ids None: re-read everything)."""
        self._reloads[kind] = reload
        if apply is not None:
            self._applies[kind] = apply

    def _received(self, message: Message) -> None:
        node = message.get("node")
        if node == self.node or not isinstance(node, str):
            return  # our own, handed back inline by the bus
        seq, kind = message.get("seq", 0), message.get("kind", "")
        peer = self.peers.get(node)
        if peer is None:
            if kind == "bye":
                return
            peer = self.peers[node] = Peer(str(message.get("name", "")), seq, trio.current_time())
            log.info("process %s (%s) is here", peer.name or "?", node)
            self._announce_wakeup.set()  # tell it about us now rather than in a period
            if seq > 1:  # it has spoken before: perhaps of changes made before this process listened
                self._reload_everything()
        elif seq != peer.seq + 1:
            log.warning("missed messages %d-%d of process %s: re-reading what others change", peer.seq + 1, seq - 1, node)
            self._reload_everything()
        peer.seq, peer.heard = seq, trio.current_time()
        if kind == "alive":
            peer.name = str(message.get("name", ""))
        for handler in self._handlers.get(kind, ()):
            try:
                handler(node, message)
            except Exception:  # another process (another version?) said what this one cannot use
                log.exception("cluster message %r from %s not applied", kind, node)
        if kind == "changed":
            apply = self._applies.get(message.get("what"))
            if apply is not None:
                try:
                    apply(message)
                except Exception:
                    log.exception("change to %r from %s not applied", message.get("what"), node)
            self._want(message.get("what"), message.get("ids"))
        elif kind == "bye":
            log.info("process %s (%s) stopped", peer.name or "?", node)
            self._forget(node)

    def _reload_everything(self) -> None:
        for kind in self._reloads:
            self._want(kind, None)

    def _want(self, kind: Any, ids: Any) -> None:
        if kind not in self._reloads:
            return
        pending = self._pending.get(kind, set())
        if ids is None or pending is None:
            self._pending[kind] = None
        else:
            pending.update(int(i) for i in ids)
            self._pending[kind] = pending
        self._reload_wakeup.set()

    def _forget(self, node: str) -> None:
        self.peers.pop(node, None)
        for listener in self._gone:
            listener(node)

    # -- the task ---------------------------------------------------------------------------

    async def run(self, name: str = "") -> None:
        """Take part as process `name` until cancelled: announce every PERIOD, forget the
        silent, re-read what others changed; say goodbye when cancelled."""
        self.name = name
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reloader)
                # The NATS bus connects in the background: the first announcement, which asks
                # the others for theirs, waits until it is heard and their answers are too.
                flush = getattr(self._bus, "flush", None)
                if flush is not None:
                    await flush()
                next_round = -math.inf
                while True:
                    now = trio.current_time()
                    if now >= next_round or self._announce_wakeup.is_set():
                        self._announce_wakeup = trio.Event()
                        self.publish("alive", name=self.name, **self._contribution())
                    if now >= next_round:
                        self._expire(now)
                        next_round = now + PERIOD
                    with trio.move_on_at(next_round):
                        await self._announce_wakeup.wait()
        finally:
            self.publish("bye")  # best effort: the bus may be stopping too

    def _contribution(self) -> Message:
        fields: Message = {}
        for contribute in self._contributors:
            fields.update(contribute())
        return fields

    def _expire(self, now: float) -> None:
        silent = [node for node, peer in self.peers.items() if now - peer.heard > SILENCE * PERIOD]
        for node in silent:
            log.warning(
                "process %s (%s) silent for %g s: forgetting what it held", self.peers[node].name or "?", node, SILENCE * PERIOD
            )
            self._forget(node)

    async def _reloader(self) -> None:
        while True:
            await self._reload_wakeup.wait()
            self._reload_wakeup = trio.Event()
            pending, self._pending = self._pending, {}
            for kind, ids in pending.items():
                try:
                    await self._reloads[kind](None if ids is None else frozenset(ids))
                except Exception:  # a storage fault of either engine (sqlite3's, psycopg's): retried
                    log.exception("re-reading %s failed; trying again in %g s", kind, RELOAD_RETRY)
                    self._want(kind, None if ids is None else list(ids))
                    await trio.sleep(RELOAD_RETRY)
