"""In-process publish/subscribe between features and sessions.

Topics are strings (`user:42` for deliveries to one user's sessions, `session.started`, …).
Callbacks are synchronous and must not block: they queue work (a session puts a frame in its
bounded outbound queue). This is the seam a NATS implementation replaces when one process is
not enough (DESIGN.md §9): same topics, same publish/subscribe calls.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("corridor.bus")

Callback = Callable[[Any], None]


class Bus:
    """Synchronous in-process bus."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callback]] = defaultdict(list)

    def subscribe(self, topic: str, callback: Callback) -> Callable[[], None]:
        """Call `callback(event)` for every event on `topic`; returns the unsubscribe function."""
        self._subscribers[topic].append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(topic)
            if callbacks and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del self._subscribers[topic]

        return unsubscribe

    def publish_to_users(self, user_ids: Iterable[int], event: Any, about: str) -> None:
        """Deliver one event to the `user:<id>` topics of many people (a group's message, a
        notice). `about` names what they share (`conversation.42`), for a bus that carries it
        across processes once rather than once per person."""
        for user_id in dict.fromkeys(user_ids):
            self.publish(f"user:{user_id}", event)

    def publish(self, topic: str, event: Any) -> int:
        """Deliver `event` to every subscriber of `topic`; returns how many got it."""
        callbacks = self._subscribers.get(topic)
        if not callbacks:
            return 0
        for callback in list(callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("subscriber of %s failed", topic)
        return len(callbacks)
