"""What a running server reports about itself, gathered in one place for `server_status` and
the metrics endpoint.

With several serve processes, `sessions` and `users_online` count all of them (the others' as
they last announced, `cluster.py`), and `connections` this process's; `Health.here` has this
process's own counts, which the metrics endpoint shows beside the totals."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from dataclasses import dataclass

from cryptography import x509

from corridor.protocol.ops import ServerStatus, ServerStatusResult

from ...net.tls import EXPIRY_WARNING_DAYS
from ...services import Services
from ...sessions import Session
from ..archive import store as archive_store


def _midnight(now: float) -> float:
    """The start of the server's local day."""
    local = dt.datetime.fromtimestamp(now).astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


@dataclass(frozen=True)
class Here:
    """This process's own counts, and how many serve processes there are (itself included)."""

    instance: str
    sessions: int
    users_online: int
    processes: int


class Health:
    """Reads the server's vital signs; nothing here writes."""

    def __init__(self, services: Services):
        self.services = services
        self.version = importlib.metadata.version("corridor")
        self._cert_path = services.config.path(services.config.tls.certificate)

    def certificate_expires(self) -> float:
        """When the server certificate on disk expires (it is read each time: a renewal shows)."""
        cert = x509.load_pem_x509_certificate(self._cert_path.read_bytes())
        return cert.not_valid_after_utc.timestamp()

    async def gather(self) -> ServerStatusResult:
        """The status now."""
        services = self.services
        db, now = services.db, services.clock()

        def counts(conn):
            return archive_store.messages_since(conn, _midnight(now)), archive_store.head_seq(conn)

        today, entries = await db.read(counts)
        database = services.config.database_path
        size = sum(p.stat().st_size for p in (database, database.with_name(database.name + "-wal")) if p.exists())
        expires = self.certificate_expires()
        days = (expires - now) / 86400
        warnings = []
        if days <= 0:
            warnings.append("the server certificate has expired: clients refuse this server; renew it (corridor cert renew)")
        elif days < EXPIRY_WARNING_DAYS:
            warnings.append(f"the server certificate expires in {days:.0f} days: renew it (corridor cert renew)")
        return ServerStatusResult(
            version=self.version,
            organisation=services.config.organisation.name,
            started=services.started,
            connections=services.connections(),
            sessions=services.sessions.count_everywhere,
            users_online=services.sessions.online_users_everywhere,
            messages_today=today,
            archive_entries=entries,
            database_bytes=size,
            certificate_expires=expires,
            commits=db.commits,
            writes=db.writes,
            warnings=tuple(warnings),
        )

    def here(self) -> Here:
        """This process's counts (the status has every process's)."""
        sessions = self.services.sessions
        return Here(self.services.config.instance, sessions.count, sessions.online_users, 1 + len(sessions.cluster.peers))

    async def server_status(self, session: Session, msg: ServerStatus) -> ServerStatusResult:
        """The `server_status` request."""
        return await self.gather()
