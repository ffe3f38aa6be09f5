"""What the features share: config, database, bus, sessions, the user cache, the policy, and the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from corridor.protocol.invites import Invite

from .bus import Bus
from .config import Config
from .sessions import SessionRegistry
from .storage.database import Database

if TYPE_CHECKING:
    from .features.accounts.credentials import Credentials
    from .features.accounts.users import UserCache
    from .policy import Policy


@dataclass
class Services:
    """The server's shared parts, built once by `app.build_services`."""

    config: Config
    db: Database
    bus: Bus
    sessions: SessionRegistry
    users: UserCache
    policy: Policy
    credentials: Credentials
    ca_sha256: str
    port: int = 0  # the bound TLS port, known once the listeners are up
    clock: Callable[[], float] = field(default=time.time)
    started: float = field(default_factory=time.time)
    # Open connections (logged in or not): the server's tracker counts them once it runs.
    connections: Callable[[], int] = field(default=lambda: 0)

    def invite(self, token: str) -> str:
        """The invite string for a token, naming this server's first host name and its public
        port (the load balancer's, if configured) or bound port."""
        port = self.config.server.public_port or self.port
        return str(Invite(self.config.server.hostnames[0], port, token, self.ca_sha256))
