"""Login, enrollment and account creation: the decisions; the SQL is in `store`."""

from __future__ import annotations

import logging
import re

from corridor.protocol.errors import make_error
from corridor.protocol.messages import Enroll, Login, LoginResult, UserAdd, UserAddResult

from ...services import Services
from ...sessions import Actor, Session
from . import store
from .passwords import PasswordHasher
from .throttle import LoginThrottle
from .tokens import digest, new_secret

log = logging.getLogger("corridor.auth")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
USERNAME_RULE = "a username is 1-64 of a-z, 0-9, '.', '_', '-' and starts with a letter or digit"


class AccountHandlers:
    """Request handlers of the accounts feature."""

    def __init__(self, services: Services):
        self.services = services
        limits = services.config.limits
        self.hasher = PasswordHasher(limits.password_hash_concurrency)
        self.throttle = LoginThrottle(limits.failed_logins_per_hour)

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
            if user is None or user.username != username:
                raise make_error("LOGIN_FAILED")
            return self._start_session(session, user, found[0], None)
        if msg.password is None:
            raise make_error("BAD_MESSAGE", "login needs a password or a device token")
        keys = (f"account:{username}", f"address:{session.peer}")
        self.throttle.check(*keys)
        user = users.by_name(username)
        encoded = await self.services.db.read(lambda c: store.password_hash(c, user.id)) if user else None
        if not await self.hasher.verify(msg.password, encoded):
            self.throttle.failed(*keys)
            raise make_error("LOGIN_FAILED")
        self.throttle.succeeded(keys[0])
        device_id, token = await self._new_device(user.id, msg.device_name)
        return self._start_session(session, user, device_id, token)

    async def enroll(self, session: Session, msg: Enroll) -> LoginResult:
        """Redeem a one-time invite: set the password, register this device."""
        if session.actor.authenticated:
            raise make_error("ALREADY_AUTHENTICATED")
        address = f"address:{session.peer}"
        self.throttle.check(address)
        token_hash, now = digest(msg.token), self.services.clock()
        user = await self.services.db.read(lambda c: store.invited_user(c, token_hash, now))
        if user is None:
            self.throttle.failed(address)
            raise make_error("INVITE_INVALID")
        minimum = self.services.config.accounts.min_password_length
        if len(msg.password) < minimum:
            raise make_error("WEAK_PASSWORD", f"the password must have at least {minimum} characters")
        encoded = await self.hasher.hash(msg.password)
        device_token = new_secret()

        def txn(conn):
            store.redeem_invite_txn(conn, token_hash, user.id, encoded, now)
            return store.add_device_txn(conn, user.id, msg.device_name or "unnamed device", digest(device_token), now)

        device_id = await self.services.db.write(txn)
        log.info("user %s enrolled a device from %s", user.username, session.peer)
        return self._start_session(session, user, device_id, device_token)

    async def user_add(self, session: Session, msg: UserAdd) -> UserAddResult:
        """Create an account and its one-time invite; the action is archived."""
        username = msg.username.lower()
        if not USERNAME.match(username):
            raise make_error("BAD_MESSAGE", USERNAME_RULE)
        token = new_secret()
        now = self.services.clock()
        expires = now + self.services.config.accounts.invite_ttl_hours * 3600

        user = await self.services.db.write(
            lambda conn: store.add_user_with_invite_txn(
                conn,
                username=username,
                display_name=msg.display_name,
                role=msg.role,
                token_hash=digest(token),
                actor=session.actor.label,
                now=now,
                expires_at=expires,
            ),
            after_commit=self.services.users.put,
        )
        log.info("%s added user %s (%s)", session.actor.label, user.username, user.role)
        return UserAddResult(user=user.username, invite=self.services.invite(token), expires=expires)
