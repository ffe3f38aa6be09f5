"""Login, enrollment and account creation: the decisions; the SQL is in `store`."""

from __future__ import annotations

import logging

from corridor.protocol.errors import make_error
from corridor.protocol.messages import (
    DeactivateResult,
    DeviceInfo,
    DeviceList,
    DeviceListResult,
    DeviceRevoke,
    Empty,
    Enroll,
    InviteInfo,
    InviteList,
    InviteListResult,
    InviteReissue,
    InviteRevoke,
    InviteRevokeResult,
    Login,
    LoginResult,
    UserAdd,
    UserAddResult,
    UserDeactivate,
    UserReactivate,
)
from corridor.protocol.names import USERNAME, USERNAME_RULE

from ...services import Services
from ...sessions import DEPT_ADMIN, Actor, Session
from ..directory.store import handover_reports_txn, set_memberships_txn
from ..messaging.delivery import deliver
from ..messaging.group_store import handover_txn as group_handover_txn
from ..policies.store import handover_txn, rules
from . import store
from .tokens import digest, new_secret

log = logging.getLogger("corridor.auth")


class AccountHandlers:
    """Request handlers of the accounts feature."""

    def __init__(self, services: Services):
        self.services = services
        self.hasher = services.credentials.hasher
        self.throttle = services.credentials.throttle

    def _start_session(self, session: Session, user: store.UserRow, device_id: int, token: str | None) -> LoginResult:
        session.actor = Actor("user", user.id, user.username, user.role, device_id)
        self.services.sessions.add(session)
        return LoginResult(
            user=user.username, display_name=user.display_name, role=user.role, device_id=device_id, device_token=token
        )

    async def _new_device(self, user_id: int, name: str) -> tuple[int, str]:
        token = new_secret()
        now = self.services.clock()
        device_id = await self.services.db.write(
            lambda c: store.add_device_txn(c, user_id, name or "unnamed device", digest(token), now)
        )
        return device_id, token

    async def login(self, session: Session, msg: Login) -> LoginResult:
        """Password login (issues a new device token) or device-token login."""
        if session.actor.authenticated:
            raise make_error("ALREADY_AUTHENTICATED")
        username = msg.user.lower()
        users = self.services.users
        if msg.device_token is not None:
            found = await self.services.db.read(lambda c: store.device_for_token(c, digest(msg.device_token)))
            user = users.by_id(found[1]) if found else None
            if found and user is None:
                # Enrolled a moment ago through another serve process, whose news of the new
                # user has not arrived here yet: the database has it.
                user = await self.services.db.read(lambda c: store.user_row(c, found[1]))
                users.put(user)
            if user is None or user.username != username:
                raise make_error("LOGIN_FAILED")
            return self._start_session(session, user, found[0], None)
        if msg.password is None:
            raise make_error("BAD_MESSAGE", "login needs a password or a device token")
        user = await self.services.credentials.verify(username, msg.password, session.peer)
        device_id, token = await self._new_device(user.id, msg.device_name)
        return self._start_session(session, user, device_id, token)

    async def enroll(self, session: Session, msg: Enroll) -> LoginResult:
        """Redeem a one-time invite: set the password (a bot has none), register this device."""
        if session.actor.authenticated:
            raise make_error("ALREADY_AUTHENTICATED")
        address = f"address:{session.peer}"
        self.throttle.check(address)
        token_hash, now = digest(msg.token), self.services.clock()
        user = await self.services.db.read(lambda c: store.invited_user(c, token_hash, now))
        if user is None:
            self.throttle.failed(address)
            raise make_error("INVITE_INVALID")
        encoded = await self._new_password(user, msg.password)
        device_token = new_secret()

        def txn(conn):
            store.redeem_invite_txn(conn, token_hash, user.id, encoded, now)
            return store.add_device_txn(conn, user.id, msg.device_name or "unnamed device", digest(device_token), now)

        device_id = await self.services.db.write(txn)
        log.info("user %s enrolled a device from %s", user.username, session.peer)
        return self._start_session(session, user, device_id, device_token)

    async def _new_password(self, user: store.UserRow, password: str) -> str | None:
        """The hash to store for an enrolling user's password; None for a bot, which must not
        bring one (the invite stays usable after either refusal)."""
        if user.bot:
            if password:
                raise make_error("BAD_MESSAGE", "bot accounts have no password")
            return None
        minimum = self.services.config.accounts.min_password_length
        if len(password) < minimum:
            raise make_error("WEAK_PASSWORD", f"the password must have at least {minimum} characters")
        return await self.hasher.hash(password)

    async def user_add(self, session: Session, msg: UserAdd) -> UserAddResult:
        """Create an account and its one-time invite; the action is archived."""
        username = msg.username.lower()
        if not USERNAME.match(username):
            raise make_error("BAD_MESSAGE", USERNAME_RULE)
        if msg.role == DEPT_ADMIN:
            raise make_error(
                "BAD_MESSAGE", "a department admin needs its departments: add the user, then 'admin role set USER dept_admin'"
            )
        if msg.bot and msg.role != "user":
            raise make_error("BAD_MESSAGE", "a bot's role is always 'user'")
        token = new_secret()
        now = self.services.clock()
        expires = now + self.services.config.accounts.invite_ttl_hours * 3600

        def txn(conn):
            user = store.add_user_with_invite_txn(
                conn,
                username=username,
                display_name=msg.display_name,
                role=msg.role,
                token_hash=digest(token),
                actor=session.actor.label,
                now=now,
                expires_at=expires,
                departments=msg.departments,
                bot=msg.bot,
            )
            set_memberships_txn(conn, user.id, msg.departments)
            return user

        user = await self.services.db.write(txn, after_commit=self.services.users.put)
        log.info("%s added %s %s (%s)", session.actor.label, "bot" if user.bot else "user", user.username, user.role)
        return UserAddResult(user=user.username, invite=self.services.invite(token), expires=expires)

    # -- account lifecycle ----------------------------------------------------------------

    def _user(self, username: str) -> store.UserRow:
        user = self.services.users.by_name(username.lower())
        if user is None:
            raise make_error("NO_SUCH_USER", f"no user '{username}'")
        return user

    async def user_deactivate(self, session: Session, msg: UserDeactivate) -> DeactivateResult:
        """Deactivate: live sessions end now, logins are refused, messages and archive stay; with
        a successor, what the user held is handed over in the same transaction."""
        user = self._user(msg.user)
        successor = self._user(msg.handover) if msg.handover else None
        if successor is not None and (successor.id == user.id or not successor.active):
            raise make_error("BAD_MESSAGE", "the successor must be another, active user")
        now, actor = self.services.clock(), session.actor.label

        def txn(conn):
            handed, said = [], []
            if successor is not None:
                ids = {"user_id": user.id, "successor_id": successor.id}
                names = {"username": user.username, "successor": successor.username}
                groups, said = group_handover_txn(conn, **ids, **names, now=now)
                handed = handover_reports_txn(conn, **ids) + groups
                handed += handover_txn(conn, **ids, **names, rules=session.actor.role != DEPT_ADMIN)
                store.record_handover_txn(
                    conn, actor=actor, now=now, user=user.username, successor=successor.username, items=handed
                )
            return store.set_active_txn(conn, user_id=user.id, active=False, actor=actor, now=now), handed, rules(conn), said

        def committed(result):
            self.services.users.put(result[0])
            self.services.policy.set_rules(result[2])
            for message, members in result[3]:
                deliver(self.services, message, None, members)

        row, handed, _, _ = await self.services.db.write(txn, after_commit=committed)
        ended = self.services.sessions.end_sessions(make_error("ACCOUNT_DISABLED", "this account was deactivated"), user.id)
        log.info("%s deactivated %s (%d live sessions ended)", actor, row.username, ended)
        return DeactivateResult(sessions_ended=ended, handed_over=tuple(handed))

    async def user_reactivate(self, session: Session, msg: UserReactivate) -> Empty:
        """Let a deactivated account log in again."""
        user = self._user(msg.user)
        now, actor = self.services.clock(), session.actor.label
        await self.services.db.write(
            lambda conn: store.set_active_txn(conn, user_id=user.id, active=True, actor=actor, now=now),
            after_commit=self.services.users.put,
        )
        return Empty()

    async def invite_list(self, session: Session, msg: InviteList) -> InviteListResult:
        """Pending invites (unused, unexpired)."""
        user_id = self._user(msg.user).id if msg.user else None
        now = self.services.clock()
        found = await self.services.db.read(lambda conn: store.pending_invites(conn, user_id, now))
        return InviteListResult(invites=tuple(InviteInfo(user=u, created=c, expires=e) for u, c, e in found))

    async def invite_revoke(self, session: Session, msg: InviteRevoke) -> InviteRevokeResult:
        """Revoke a user's unused invites at once."""
        user = self._user(msg.user)
        now, actor = self.services.clock(), session.actor.label
        revoked = await self.services.db.write(
            lambda conn: store.revoke_invites_by_admin_txn(conn, user_id=user.id, actor=actor, now=now)
        )
        return InviteRevokeResult(revoked=revoked)

    async def invite_reissue(self, session: Session, msg: InviteReissue) -> UserAddResult:
        """A new one-time invite that replaces the unused ones (an admin's password reset)."""
        user = self._user(msg.user)
        if not user.active:
            raise make_error("BAD_MESSAGE", f"'{user.username}' is deactivated; reactivate the account first")
        token, now, actor = new_secret(), self.services.clock(), session.actor.label
        expires = now + self.services.config.accounts.invite_ttl_hours * 3600
        await self.services.db.write(
            lambda conn: store.reissue_invite_txn(
                conn, user_id=user.id, token_hash=digest(token), actor=actor, now=now, expires_at=expires
            )
        )
        return UserAddResult(user=user.username, invite=self.services.invite(token), expires=expires)

    async def device_list(self, session: Session, msg: DeviceList) -> DeviceListResult:
        """A user's devices (the policy lets users see only their own)."""
        user = self._user(msg.user)
        found = await self.services.db.read(lambda conn: store.devices(conn, user.id))
        return DeviceListResult(devices=tuple(DeviceInfo(id=d, name=n, created=c, revoked=r) for d, n, c, r in found))

    async def device_revoke(self, session: Session, msg: DeviceRevoke) -> Empty:
        """Revoke one device: its token stops working and its live sessions end now."""
        user = self._user(msg.user)
        now, actor = self.services.clock(), session.actor.label
        await self.services.db.write(
            lambda conn: store.revoke_device_txn(conn, user_id=user.id, device_id=msg.device_id, actor=actor, now=now)
        )
        self.services.sessions.end_sessions(make_error("ACCOUNT_DISABLED", "this device was revoked"), user.id, msg.device_id)
        return Empty()
