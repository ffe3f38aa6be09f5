"""The org directory: departments and profiles (admins), sync and search (everyone)."""

from __future__ import annotations

import trio

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    Department,
    DepartmentAdd,
    DepartmentAdded,
    DirectorySearch,
    DirectorySearchResult,
    DirectorySync,
    DirectorySyncResult,
    Empty,
    Person,
    ProfileSet,
)

from ...services import Services
from ...sessions import Session
from . import store


def _person(row: store.PersonRow) -> Person:
    return Person(
        user=row.user,
        display_name=row.display_name,
        title=row.title,
        departments=row.departments,
        email=row.email,
        phone=row.phone,
        extension=row.extension,
        employee_no=row.employee_no,
        manager=row.manager,
        active=row.active,
    )


class DirectoryHandlers:
    """Request handlers of the directory feature."""

    def __init__(self, services: Services):
        self.services = services
        self._refreshing = trio.Lock()

    def _user(self, username: str):
        user = self.services.users.by_name(username.lower())
        if user is None:
            raise make_error("NO_SUCH_USER", f"no user '{username}'")
        return user

    async def department_add(self, session: Session, msg: DepartmentAdd) -> DepartmentAdded:
        """Create a department; archived as an admin action."""
        name = msg.name.strip()
        if not name:
            raise make_error("BAD_MESSAGE", "a department needs a name")
        now, actor = self.services.clock(), session.actor.label
        department = await self.services.db.write(
            lambda conn: store.add_department_txn(conn, name=name, parent=msg.parent, actor=actor, now=now)
        )
        return DepartmentAdded(id=department)

    async def profile_set(self, session: Session, msg: ProfileSet) -> Empty:
        """Change the given profile fields and, if given, the departments; archived."""
        user = self._user(msg.user)
        manager_id: int | bool | None = False
        if msg.manager is not None:
            manager_id = self._user(msg.manager).id if msg.manager else None
            if manager_id == user.id:
                raise make_error("BAD_MESSAGE", "nobody is their own manager")
        fields = {name: getattr(msg, name) for name in store.PROFILE_FIELDS if getattr(msg, name) is not None}
        now, actor = self.services.clock(), session.actor.label
        await self.services.db.write(
            lambda conn: store.set_profile_txn(
                conn, user_id=user.id, fields=fields, manager_id=manager_id, department_ids=msg.departments, actor=actor, now=now
            )
        )
        return Empty()

    async def directory_sync(self, session: Session, msg: DirectorySync) -> DirectorySyncResult:
        """What changed after the client's version: an up-to-date client gets nothing."""
        found, departments, version, more = await self.services.db.read(lambda conn: store.changes(conn, msg.since, msg.limit))
        return DirectorySyncResult(
            version=version,
            more=more,
            people=tuple(_person(row) for row in found),
            departments=tuple(Department(id=d.id, name=d.name, parent=d.parent) for d in departments),
        )

    async def _refresh_search_keys(self) -> None:
        # One refresh at a time; the pinyin work runs in a thread, outside any transaction.
        async with self._refreshing:
            stale, version = await self.services.db.read(store.stale_search_keys)
            if not stale:
                return
            keys = await trio.to_thread.run_sync(store.compute_keys, stale)
            await self.services.db.write(lambda conn: store.store_search_keys_txn(conn, keys, version))

    async def directory_search(self, session: Session, msg: DirectorySearch) -> DirectorySearchResult:
        """People matching the query by name, pinyin, initials, username, title or department."""
        query = msg.query.strip()
        if not query:
            raise make_error("BAD_MESSAGE", "the search query is empty")
        await self._refresh_search_keys()
        found = await self.services.db.read(lambda conn: store.search(conn, query, msg.limit))
        return DirectorySearchResult(people=tuple(_person(row) for row in found))
