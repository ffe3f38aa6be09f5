"""IT admins' requests about integrations: add, list, rotate a token, revoke."""

from __future__ import annotations

import ipaddress
import logging

from corridor.protocol.errors import make_error
from corridor.protocol.integrations import (
    IntegrationAdd,
    IntegrationInfo,
    IntegrationList,
    IntegrationListResult,
    IntegrationRevoke,
    IntegrationRotate,
    IntegrationToken,
)
from corridor.protocol.messages import Empty
from corridor.protocol.names import USERNAME, USERNAME_RULE

from ...services import Services
from ...sessions import Session
from ..accounts.tokens import digest, new_secret
from . import store

log = logging.getLogger("corridor.integrations")


def networks(allow_from: tuple[str, ...]) -> tuple[str, ...]:
    """The allowlist in canonical form (10.1.0.0/16); BAD_MESSAGE names an entry that is not
    an address or network."""
    canonical = []
    for entry in allow_from:
        try:
            canonical.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise make_error("BAD_MESSAGE", f"allow_from: {entry!r} is not an IP address or network like 10.1.0.0/16") from None
    return tuple(canonical)


class IntegrationHandlers:
    """Request handlers of the integrations feature."""

    def __init__(self, services: Services, forget):
        self.services = services
        self._forget = forget  # the gate drops what it remembers of a revoked or rotated token

    async def integration_add(self, session: Session, msg: IntegrationAdd) -> IntegrationToken:
        """Create the integration and its bot account; the token is shown once."""
        name = msg.name.lower()
        if not USERNAME.match(name):
            raise make_error("BAD_MESSAGE", USERNAME_RULE)
        if not msg.scopes:
            raise make_error("BAD_MESSAGE", "an integration needs at least one scope")
        allow_from = networks(msg.allow_from)
        token, now = new_secret(), self.services.clock()

        def txn(conn):
            return store.add_txn(
                conn,
                name=name,
                display_name=msg.display_name or name,
                scopes=tuple(sorted(set(msg.scopes))),
                allow_from=allow_from,
                rate_per_minute=msg.rate_per_minute,
                token_hash=digest(token),
                # The bot's device exists for idempotency (device, msg_id); nobody holds its token.
                device_token_hash=digest(new_secret()),
                actor=session.actor.label,
                now=now,
            )

        await self.services.db.write(txn, after_commit=self.services.users.put)
        log.info("%s added integration %s (%s)", session.actor.label, name, ", ".join(sorted(set(msg.scopes))))
        return IntegrationToken(name=name, token=token)

    async def integration_list(self, session: Session, msg: IntegrationList) -> IntegrationListResult:
        """The integrations in force."""
        rows = await self.services.db.read(store.active)
        return IntegrationListResult(
            integrations=tuple(
                IntegrationInfo(
                    name=r.name,
                    display_name=r.display_name,
                    scopes=r.scopes,
                    allow_from=r.allow_from,
                    rate_per_minute=r.rate_per_minute,
                    created=r.created,
                    last_used=r.last_used,
                )
                for r in rows
            )
        )

    async def integration_rotate(self, session: Session, msg: IntegrationRotate) -> IntegrationToken:
        """A new token; the old one is refused from now on."""
        name, token, now = msg.name.lower(), new_secret(), self.services.clock()
        await self.services.db.write(
            lambda conn: store.rotate_txn(conn, name=name, token_hash=digest(token), actor=session.actor.label, now=now),
            after_commit=lambda _: self._forget(),
        )
        log.info("%s rotated the token of integration %s", session.actor.label, name)
        return IntegrationToken(name=name, token=token)

    async def integration_revoke(self, session: Session, msg: IntegrationRevoke) -> Empty:
        """Refuse the integration's token from now on."""
        name, now = msg.name.lower(), self.services.clock()
        await self.services.db.write(
            lambda conn: store.revoke_txn(conn, name=name, actor=session.actor.label, now=now),
            after_commit=lambda _: self._forget(),
        )
        log.info("%s revoked integration %s", session.actor.label, name)
        return Empty()
