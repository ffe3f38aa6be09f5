"""An in-memory copy of the user table, for name ↔ id lookups on every message.

Loaded once at start-up and updated after each commit that changes a user, so the hot path
(send, sync) never touches SQL for names. With several server processes this cache would be
refreshed by bus events; that is the same seam as the bus itself.
"""

from __future__ import annotations

from .store import UserRow


class UserCache:
    """Users by id and by name."""

    def __init__(self, users: list[UserRow]):
        self._by_id: dict[int, UserRow] = {}
        self._by_name: dict[str, UserRow] = {}
        for user in users:
            self.put(user)

    def put(self, user: UserRow) -> None:
        """Add or replace a user (call after the change committed)."""
        self._by_id[user.id] = user
        self._by_name[user.username] = user

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
