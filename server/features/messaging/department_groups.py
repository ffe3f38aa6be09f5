"""Department groups follow the directory: whoever is (actively) in the department or a
department below it is in the group, and nobody else but its owner.

The directory changes through many doors — an admin's `profile_set`, a CSV import, an LDAP sync,
a deactivation, a department removed — and its triggers bump one version for every one of them
(see `directory/migrations.py`). So rather than have each door remember the groups, one
background task watches that version: when it moved, it compares each department group's members
with the department's people, and when some differ it adds and removes them in one write, with
a system message in each group ("bob joined Engineering", "carol left Engineering"), delivered
like any group change. People who join see the group from that message on, as if added by hand.
Nobody changes a department group's members by hand; its owner is always in it.

A directory change reaches the groups within `FOLLOW_INTERVAL` seconds; it is also applied at
start-up, so changes made while the server was stopped are not missed.
"""

from __future__ import annotations

import logging
import sqlite3

from ...services import Services
from ..periodic import every
from . import group_store
from .handlers import MessagingHandlers

log = logging.getLogger("corridor.groups")

FOLLOW_INTERVAL = 1.0


class DepartmentFollower:
    """The background task that keeps department groups' members those of their departments."""

    def __init__(self, services: Services, messaging: MessagingHandlers):
        self.services = services
        self.messaging = messaging

    async def run(self) -> None:
        """Follow the directory for the server's whole life."""
        seen = None

        async def follow_a_change() -> None:
            nonlocal seen
            version = await self.services.db.read(group_store.directory_version)
            if version != seen:
                await self.follow()
                seen = version

        await every(FOLLOW_INTERVAL, follow_a_change, "department groups following the directory", first_wait=False)

    def _changes(self, conn: sqlite3.Connection, found: group_store.GroupRow) -> tuple[str | None, dict, dict]:
        """(department name or None if it is gone, who joins, who leaves) for one group."""
        department = group_store.department_name(conn, found.department)
        if department is None:
            return None, {}, {}
        wanted = group_store.department_people(conn, found.department)
        wanted[found.owner_id] = self.services.users.name_of(found.owner_id)
        present = set(group_store.member_ids(conn, found.id))
        joining = {i: name for i, name in wanted.items() if i not in present}
        leaving = {i: self.services.users.name_of(i) for i in present if i not in wanted}
        room = self.services.config.limits.max_group_members - (len(present) - len(leaving))
        if len(joining) > room:
            log.warning(
                "department group %d is full (limits.max_group_members): %d people of %s not added",
                found.id,
                len(joining) - max(room, 0),
                department,
            )
            joining = dict(sorted(joining.items())[: max(room, 0)])
        return department, joining, leaving

    async def follow(self) -> None:
        """Bring every department group in line with its department, in one write if any differ."""

        def pending(conn) -> bool:
            for found in group_store.department_groups(conn):
                department, joining, leaving = self._changes(conn, found)
                if department is None or joining or leaving:
                    return True
            return False

        if not await self.services.db.read(pending):
            return  # the usual case: the change touched no department group
        now = self.services.clock()

        def txn(conn):
            outcome = []
            for found in group_store.department_groups(conn):
                department, joining, leaving = self._changes(conn, found)
                owner = self.services.users.name_of(found.owner_id)
                said = []
                if department is None:
                    group_store.set_department_txn(conn, found.id, None)
                    text = "its department was removed: the group keeps its members and no longer follows the directory"
                    said.append(
                        group_store.system_message_txn(conn, found.id, by_id=found.owner_id, by=owner, text=text, now=now)
                    )
                said += group_store.remove_members_txn(
                    conn,
                    found,
                    by_id=found.owner_id,
                    by=owner,
                    members=leaving,
                    now=now,
                    says=lambda n, d=department: f"{n} left {d}",
                )
                said += group_store.add_members_txn(
                    conn,
                    found,
                    by_id=found.owner_id,
                    by=owner,
                    members=joining,
                    now=now,
                    says=lambda n, d=department: f"{n} joined {d}",
                )
                if said:
                    outcome.append((said, [*group_store.member_ids(conn, found.id), *leaving]))
            return outcome

        def committed(outcome) -> None:
            for said, tell in outcome:
                for message in said:
                    self.messaging.deliver(message, None, tell)

        await self.services.db.write(txn, after_commit=committed)
