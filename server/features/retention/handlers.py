"""Request handlers of retention: rules, legal holds, and purging on request."""

from __future__ import annotations

from corridor.protocol.audit import (
    ArchivePurge,
    HoldList,
    HoldListResult,
    HoldPlace,
    HoldRelease,
    LegalHold,
    PurgeResult,
    RetentionList,
    RetentionListResult,
    RetentionRemove,
    RetentionSet,
)
from corridor.protocol.errors import make_error
from corridor.protocol.messages import Empty

from ...services import Services
from ...sessions import Session
from ..messaging import store as messaging_store
from . import store
from .purge import Purger


class RetentionHandlers:
    def __init__(self, services: Services, purger: Purger):
        self.services, self.purger = services, purger

    async def retention_set(self, session: Session, msg: RetentionSet) -> Empty:
        """Create or replace a rule."""
        now = self.services.clock()
        await self.services.db.write(lambda conn: store.set_rule_txn(conn, msg.department, msg.days, session.actor.username, now))
        return Empty()

    async def retention_remove(self, session: Session, msg: RetentionRemove) -> Empty:
        """Remove a rule."""
        now = self.services.clock()
        await self.services.db.write(lambda conn: store.remove_rule_txn(conn, msg.department, session.actor.username, now))
        return Empty()

    async def retention_list(self, session: Session, msg: RetentionList) -> RetentionListResult:
        """Every rule."""
        return RetentionListResult(rules=await self.services.db.read(store.rules))

    async def hold_place(self, session: Session, msg: HoldPlace) -> LegalHold:
        """Hold a user's or a conversation's archive against retention."""
        if bool(msg.user) == (msg.conversation is not None):
            raise make_error("BAD_MESSAGE", "a legal hold names a user or a conversation (one of them)")
        user_id = None
        if msg.user:
            user = self.services.users.by_name(msg.user.lower())
            if user is None:
                raise make_error("NO_SUCH_USER", f"nobody is called {msg.user!r}")
            user_id = user.id
        now, actor = self.services.clock(), session.actor.username

        def place(conn):
            if msg.conversation is not None and not messaging_store.conversation_exists(conn, msg.conversation):
                raise make_error("NO_SUCH_CONVERSATION", f"no conversation {msg.conversation}")
            return store.place_hold_txn(conn, user_id, msg.conversation, msg.reason, actor, now)

        return await self.services.db.write(place)

    async def hold_release(self, session: Session, msg: HoldRelease) -> Empty:
        """Release a hold."""
        now = self.services.clock()
        await self.services.db.write(lambda conn: store.release_hold_txn(conn, msg.hold, session.actor.username, now))
        return Empty()

    async def hold_list(self, session: Session, msg: HoldList) -> HoldListResult:
        """The holds in force."""
        return HoldListResult(holds=await self.services.db.read(store.holds))

    async def archive_purge(self, session: Session, msg: ArchivePurge) -> PurgeResult:
        """Run a retention pass now."""
        return await self.purger.purge(session.actor.username, dry_run=msg.dry_run)
