"""An in-memory copy of the user table, for name ↔ id lookups on every message.

Loaded once at start-up and updated after each commit that changes a user, so the hot path
(send, sync) never touches SQL for names. With several server processes each `put` is also
announced (`follow`): the others re-read those rows, so a user added through one process logs
in through any other at once.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

from .store import UserRow, all_users, user_row

if TYPE_CHECKING:
    from ...cluster import Cluster, Message
    from ...storage.database import GroupCommit

ANNOUNCED_ROWS = 500  # users per announcement (a bulk import changes thousands; NATS takes 1 MB)


class UserCache:
    """Users by id and by name."""

    def __init__(self, users: list[UserRow]):
        self._by_id: dict[int, UserRow] = {}
        self._by_name: dict[str, UserRow] = {}
        for user in users:
            self._store(user)
        self._cluster: Cluster | None = None
        # Puts counted, and the count at each user's last put: a re-read that started before
        # a put here must not overwrite it with the older row.
        self._puts = 0
        self._put_at: dict[int, int] = {}

    def follow(self, cluster: Cluster, db: GroupCommit) -> None:
        """From now on, tell the other processes about every `put` (with the rows), and take
        the users they change (and re-read them from `db`)."""
        self._cluster = cluster
        cluster.on_change("users", functools.partial(self._reload, db), self._apply)

    def put(self, *users: UserRow) -> None:
        """Add or replace users (call after the change committed)."""
        for user in users:
            self._store(user)
            self._puts += 1
            self._put_at[user.id] = self._puts
        if self._cluster is not None:
            for start in range(0, len(users), ANNOUNCED_ROWS):
                part = users[start : start + ANNOUNCED_ROWS]
                self._cluster.changed("users", [u.id for u in part], rows=[dataclasses.astuple(u) for u in part])

    def by_name(self, username: str) -> UserRow | None:
        """The user with this (normalised) name, active or not."""
        return self._by_name.get(username)

    def by_id(self, user_id: int) -> UserRow | None:
        """The user with this id."""
        return self._by_id.get(user_id)

    def name_of(self, user_id: int) -> str:
        """The username for an id (ids in stored rows always exist)."""
        return self._by_id[user_id].username

    def __len__(self) -> int:
        return len(self._by_id)

    def _store(self, user: UserRow) -> None:
        self._by_id[user.id] = user
        self._by_name[user.username] = user

    def _apply(self, message: Message) -> None:
        for row in message.get("rows", ()):
            self._store(UserRow(*row))

    async def _reload(self, db: GroupCommit, ids: frozenset[int] | None) -> None:
        puts = self._puts
        if ids is None:
            rows = await db.read(all_users)
        else:
            rows = await db.read(lambda conn: [user_row(conn, user_id) for user_id in sorted(ids)])
        for row in rows:
            if row is not None and self._put_at.get(row.id, 0) <= puts:
                self._store(row)
