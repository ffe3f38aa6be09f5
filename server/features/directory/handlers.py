"""The org directory: departments and profiles (admins), sync and search (everyone)."""

from __future__ import annotations

import dataclasses
import logging
import weakref
from dataclasses import dataclass, field

import trio

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    Department,
    DepartmentAdd,
    DepartmentAdded,
    DirectoryImport,
    DirectorySearch,
    DirectorySearchResult,
    DirectorySync,
    DirectorySyncResult,
    Empty,
    ImportPerson,
    ImportResult,
    IssuedInvite,
    LdapSync,
    Person,
    ProfileSet,
)

from ...services import Services
from ...sessions import Session
from ..accounts.store import user_row
from ..accounts.tokens import digest, new_secret
from . import importer, store
from .ldap_source import LdapError, read_directory

log = logging.getLogger("corridor.directory")
MAX_STAGED = 200_000  # people (and as many departments) one import may stage
MAX_INVITES = 2000  # what one import answer can carry, with its changes, in a 1 MiB frame
MAX_WARNINGS_BYTES = 128 * 1024


@dataclass
class _Staged:
    people: list[ImportPerson] = field(default_factory=list)
    departments: list[tuple[str, ...]] = field(default_factory=list)


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
        bot=row.bot,
    )


def _fitting(warnings: list[str]) -> tuple[str, ...]:
    """As many warnings as fit in an answer, then how many more there were."""
    kept, size = [], 0
    for warning in warnings:
        size += len(warning.encode())
        if size > MAX_WARNINGS_BYTES or len(kept) == 4999:
            return (*kept, f"… and {len(warnings) - len(kept)} more warnings")
        kept.append(warning)
    return tuple(kept)


def _import_result(planned: importer.Plan, staged: int, *, applied: bool) -> ImportResult:
    return ImportResult(
        applied=applied,
        staged=staged,
        **planned.counts,
        departments_created=len(planned.new_departments),
        departments_removed=len(planned.removed_departments),
        changes=tuple(planned.changes),
        omitted=planned.omitted,
    )


class DirectoryHandlers:
    """Request handlers of the directory feature."""

    def __init__(self, services: Services):
        self.services = services
        self._refreshing = trio.Lock()
        # An import's batches, per connection; a closed connection's are dropped with it.
        self._staged: weakref.WeakKeyDictionary[Session, _Staged] = weakref.WeakKeyDictionary()
        self._importing = trio.Lock()

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
        """What changed after the client's version, as the policy lets them see it: an up-to-date
        client gets nothing; one whose view changed starts again from 0."""
        view = await self.services.policy.directory_view(session.actor)
        reset = msg.since > 0 and msg.view != view.key
        since = 0 if reset else msg.since
        page = await self.services.db.read(lambda conn: store.changes(conn, since, msg.limit, view.invisible))
        return DirectorySyncResult(
            version=page.version,
            more=page.more,
            people=tuple(_person(row) for row in page.people),
            departments=tuple(Department(id=d.id, name=d.name, parent=d.parent) for d in page.departments),
            view=view.key,
            reset=reset,
            removed_people=page.removed_people,
            removed_departments=page.removed_departments,
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
        view = await self.services.policy.directory_view(session.actor)
        found = await self.services.db.read(lambda conn: store.search(conn, query, msg.limit, view.invisible))
        return DirectorySearchResult(people=tuple(_person(row) for row in found))

    # -- bulk import and LDAP sync ------------------------------------------------------------

    async def directory_import(self, session: Session, msg: DirectoryImport) -> ImportResult:
        """Stage a batch; on the final one, check everything and apply it (or report, for a dry run)."""
        staged = self._staged.setdefault(session, _Staged())
        if len(staged.people) + len(msg.people) > MAX_STAGED or len(staged.departments) + len(msg.departments) > MAX_STAGED:
            del self._staged[session]
            raise make_error("BAD_MESSAGE", f"one import holds at most {MAX_STAGED:,} people and departments; nothing imported")
        staged.people += msg.people
        staged.departments += msg.departments
        if not msg.final:
            return ImportResult(applied=False, staged=len(staged.people))
        del self._staged[session]
        if len(staged.people) + len(staged.departments) != msg.total:
            raise make_error(
                "BAD_MESSAGE",
                f"the import was interrupted: {len(staged.people) + len(staged.departments)} of {msg.total} rows arrived "
                "on this connection; nothing imported, run it again",
            )
        return await self._apply(
            session, staged.people, staged.departments, source="csv", prune=False, dry_run=msg.dry_run, invites=msg.invites
        )

    async def ldap_sync(self, session: Session, msg: LdapSync) -> ImportResult:
        """Read the configured LDAP directory (in a thread: ldap3 blocks) and apply it."""
        config = self.services.config
        if not config.ldap.url:
            raise make_error("BAD_MESSAGE", "LDAP is not configured: add an [ldap] section to corridor.toml")
        try:
            spec, warnings = await trio.to_thread.run_sync(read_directory, config.ldap, config.data_dir)
        except LdapError as exc:
            raise make_error("LDAP_UNAVAILABLE", str(exc)) from None
        result = await self._apply(
            session,
            list(spec.people),
            list(spec.departments),
            source="ldap",
            prune=True,
            dry_run=msg.dry_run,
            invites=msg.invites,
        )
        return dataclasses.replace(result, warnings=_fitting(warnings))

    async def _apply(
        self,
        session: Session,
        people: list[ImportPerson],
        departments: list,
        *,
        source: str,
        prune: bool,
        dry_run: bool,
        invites: bool,
    ) -> ImportResult:
        async with self._importing:  # one bulk change at a time: each plans against the last one's result
            if dry_run:
                planned = await self.services.db.read(
                    lambda conn: importer.plan(conn, people, departments, source=source, prune=prune)
                )
                return _import_result(planned, len(people), applied=False)
            now, actor = self.services.clock(), session.actor.label
            expires = now + self.services.config.accounts.invite_ttl_hours * 3600

            def new_invite() -> tuple[str, bytes]:
                token = new_secret()
                return self.services.invite(token), digest(token)

            def txn(conn):
                planned = importer.plan(conn, people, departments, source=source, prune=prune)
                if invites and sum(p.active for p in planned.creates) > MAX_INVITES:
                    raise make_error(
                        "BAD_MESSAGE",
                        f"one import hands out at most {MAX_INVITES:,} invites; nothing imported (import in parts, "
                        "or without invites and then issue them with 'admin user invite')",
                    )
                applied = importer.apply_txn(
                    conn,
                    planned,
                    source=source,
                    actor=actor,
                    now=now,
                    new_invite=new_invite if invites else None,
                    invite_expires=expires,
                )
                return planned, applied, [user_row(conn, user_id) for user_id in applied.changed_users]

            def committed(outcome) -> None:
                self.services.users.put(*outcome[2])

            planned, applied, _ = await self.services.db.write(txn, after_commit=committed)
        ended = 0
        for user_id in applied.deactivated:
            ended += self.services.sessions.end_sessions(make_error("ACCOUNT_DISABLED", "this account was deactivated"), user_id)
        for user_id in applied.role_changed:  # sessions keep the role they logged in with
            ended += self.services.sessions.end_sessions(make_error("REAUTHENTICATE", "your role changed"), user_id)
        log.info("%s imported from %s: %s (%d sessions ended)", session.actor.label, source, planned.counts, ended)
        result = _import_result(planned, len(people), applied=True)
        return dataclasses.replace(result, invites=tuple(IssuedInvite(user=u, invite=i) for u, i in applied.invites))
