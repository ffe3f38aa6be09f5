"""Builds the server in a fixed, readable order and runs it until asked to stop.

Order: take the data dir lock → open the database and apply pending migrations → load the
user cache → build the features and the router → start the committer, the NATS bus (if
configured) and the features' background tasks → bind listeners → advertise → start the HTTP
component (if configured) → report ready. Stopping reverses it (see `shutdown.py` for the
signal side): stop accepting, give in-flight requests a deadline, close connections, stop the
tasks and the bus (which sends what it still holds), flush the committer.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import ssl

import trio

from corridor.protocol.versions import SUPPORTED_VERSIONS

from .bus import Bus
from .config import Config
from .features import (
    accounts,
    archive,
    directory,
    files,
    integrations,
    messaging,
    notices,
    ops,
    policies,
    presence,
    retention,
    session,
)
from .features.accounts.credentials import Credentials
from .features.accounts.store import all_users
from .features.accounts.users import UserCache
from .features.policies.store import rules
from .http.app import build_app
from .http.console import console_routes
from .http.server import http_context, serve_http
from .net.advertise import advertise
from .net.connection import ConnectionHandler, ConnectionTracker
from .net.listeners import bound_addresses, open_control_listener, open_tls_listeners, serve_control, serve_tls
from .net.tls import reload_certificate, server_context, warn_if_expiring
from .policy import Policy
from .router import Router
from .services import Services
from .sessions import LOCAL_ADMIN, Actor, SessionRegistry
from .storage.database import Database, GroupCommit
from .storage.migrations import apply_migrations

log = logging.getLogger("corridor.server")

# Features in dependency order: migrations run in this order, and so do their tables' references.
MIGRATIONS = (
    *accounts.MIGRATIONS,
    *archive.MIGRATIONS,
    *messaging.MIGRATIONS,
    *files.MIGRATIONS,
    *directory.MIGRATIONS,
    *policies.MIGRATIONS,
    *notices.MIGRATIONS,
    *presence.MIGRATIONS,
    *retention.MIGRATIONS,
    *integrations.MIGRATIONS,
)


class DataDirBusy(RuntimeError):
    """Another server process is using this data dir."""


def open_database(config: Config) -> GroupCommit:
    """Open the configured database (the data dir's SQLite file, or PostgreSQL) and bring its
    schema up to date."""
    if config.storage.backend == "postgresql":
        # Imported here: a server on SQLite never loads psycopg.
        from .storage.postgres import PostgresDatabase

        db: GroupCommit = PostgresDatabase(config.storage.dsn)
    else:
        db = Database(config.database_path)
    try:
        for name in apply_migrations(db, MIGRATIONS):
            log.info("database migrated: %s", name)
    except BaseException:
        db.close()
        raise
    return db


def _ca_fingerprint(config: Config) -> str:
    """What invites carry and clients pin: SHA-256 of the CA certificate's DER form."""
    pem = config.path(config.tls.ca).read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def build_bus(config: Config) -> Bus:
    """The in-process bus, or the NATS one that also reaches other serve processes."""
    if config.bus.backend == "local":
        return Bus()
    # Imported here: a server on the local bus never loads nats-py.
    from .nats_bus import NatsBus

    return NatsBus(config.bus.nats_url, config.bus.cluster, stop_grace=config.limits.shutdown_grace)


def build_services(config: Config, db: GroupCommit) -> Services:
    """The shared parts every feature gets."""
    bus = build_bus(config)
    users = UserCache(db.write_now(all_users))
    return Services(
        config=config,
        db=db,
        bus=bus,
        sessions=SessionRegistry(bus),
        users=users,
        policy=Policy(db, users, db.write_now(rules)),
        credentials=Credentials(db, users, config.limits),
        ca_sha256=_ca_fingerprint(config),
    )


def build_router(services: Services, gate: integrations.IntegrationGate) -> Router:
    """Every feature's routes and actions; fails at start-up if a request type has no handler."""
    return Router(
        [
            session.feature(services),
            accounts.feature(services),
            messaging.feature(services),
            presence.feature(services),
            directory.feature(services),
            policies.feature(services),
            archive.feature(services),
            notices.feature(services),
            files.feature(services),
            retention.feature(services),
            ops.feature(services),
            integrations.feature(services, gate),
        ],
        services.policy,
    )


def _lock(config: Config) -> int:
    fd = os.open(config.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        named = f" as instance {config.instance!r}" if config.instance else ""
        raise DataDirBusy(f"another 'corridor serve' is running on {config.data_dir}{named}") from None
    return fd


class Server:
    """One Corridor server process over one data dir."""

    def __init__(self, config: Config, *, advertise: bool | None = None):
        self.config = config
        self.advertise = config.server.advertise if advertise is None else advertise
        self.addresses: list[tuple[str, int]] = []
        self.http_addresses: list[tuple[str, int]] = []  # the integration API and web console, if on
        self.services: Services | None = None
        self.tracker = ConnectionTracker(config.limits.max_connections_per_address)
        self._stop = trio.Event()
        self._tls: ssl.SSLContext | None = None
        self._http_tls: ssl.SSLContext | None = None

    def stop(self) -> None:
        """Ask the server to stop gracefully (what SIGTERM does)."""
        self._stop.set()

    def reload_tls(self) -> bool:
        """Re-read the server certificate and key (what SIGHUP does), e.g. after `corridor cert
        renew`: new connections get them, open ones are not dropped. A pair that does not load
        is logged and the current one kept. Returns whether the new pair is in use."""
        if self._tls is None:
            log.warning("not serving yet; the certificate is read at start-up anyway")
            return False
        cert, key = self.config.path(self.config.tls.certificate), self.config.path(self.config.tls.key)
        try:
            for context in (self._tls, self._http_tls):
                if context is not None:
                    reload_certificate(context, cert, key)
        except OSError as exc:
            log.error("kept the current certificate: %s with %s does not load: %s", cert, key, exc)
            return False
        days = warn_if_expiring(cert)
        log.info("reloaded the server certificate %s (%.0f days left)", cert, days)
        return True

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `stop()`; reports the bound (host, port) list through `task_status`."""
        config = self.config
        lock = _lock(config)
        db = None
        try:
            db = open_database(config)
            services = self.services = build_services(config, db)
            services.connections = self.tracker.total
            gate = integrations.IntegrationGate(services)
            router = build_router(services, gate)
            context = self._tls = server_context(config.path(config.tls.certificate), config.path(config.tls.key))
            if config.http.listen:
                self._http_tls = http_context(config.path(config.tls.certificate), config.path(config.tls.key))
            warn_if_expiring(config.path(config.tls.certificate))
            config.control_socket.unlink(missing_ok=True)  # stale: the lock says no server owns it
            async with trio.open_nursery() as root:
                await root.start(db.run_committer)
                if config.bus.backend == "nats":
                    # Cancelled with the root nursery, after the connections closed: it sends
                    # their last deliveries, then disconnects within the grace period.
                    await root.start(services.bus.run)
                for task in router.tasks:
                    root.start_soon(task)
                async with trio.open_nursery() as connections:

                    async def handle(stream: trio.abc.Stream, peer: str, actor: Actor | None = None) -> None:
                        handler = ConnectionHandler(
                            stream,
                            peer=peer,
                            router=router,
                            sessions=services.sessions,
                            limits=config.limits,
                            tracker=self.tracker,
                            actor=actor,
                        )
                        await handler.run()

                    async def handle_admin(stream: trio.abc.Stream, peer: str) -> None:
                        await handle(stream, peer, Actor(LOCAL_ADMIN))

                    accepting = await connections.start(self._accept, context, handle, handle_admin, connections)
                    if config.http.listen:
                        # In the connections nursery: on stop it finishes open requests within the grace period.
                        self.http_addresses = await connections.start(
                            serve_http,
                            build_app(router, gate, console_routes(router, services)),
                            config.http.listen,
                            self._http_tls,
                            self._stop.wait,
                            config.limits.shutdown_grace,
                        )
                    task_status.started(self.addresses)
                    await self._stop.wait()
                    await self._drain(accepting, connections)
                root.cancel_scope.cancel()
            for stop in router.stops:
                stop()
            log.info("stopped; %d writes in %d group commits", db.writes, db.commits)
        finally:
            if db is not None:
                db.close()
            config.control_socket.unlink(missing_ok=True)
            os.close(lock)

    async def _accept(
        self, context, handle, handle_admin, connections: trio.Nursery, task_status=trio.TASK_STATUS_IGNORED
    ) -> None:
        config, services = self.config, self.services
        listeners = await open_tls_listeners(config.server.listen)
        control = await open_control_listener(config.control_socket)
        self.addresses = bound_addresses(listeners)
        services.port = self.addresses[0][1]
        with trio.CancelScope() as accepting:
            async with trio.open_nursery() as acceptors:
                tracker = self.tracker
                acceptors.start_soon(
                    serve_tls,
                    listeners,
                    context,
                    handle,
                    tracker.admit,
                    tracker.release,
                    config.limits,
                    connections,
                    frozenset(config.server.proxy_protocol_from),
                )
                acceptors.start_soon(serve_control, control, handle_admin, connections)
                if self.advertise:
                    await acceptors.start(
                        functools.partial(
                            advertise,
                            org=config.organisation.name,
                            ca_sha256=services.ca_sha256,
                            versions=SUPPORTED_VERSIONS,
                            tls_host=config.server.hostnames[0],
                            addresses=self._advertised(),
                        )
                    )
                task_status.started(accepting)
        for listener in [*listeners, control]:
            await listener.aclose()

    def _advertised(self) -> list[tuple[str, int]]:
        """The addresses on the first listener's port: one mDNS service record has one port."""
        port = self.addresses[0][1]
        skipped = [f"{h}:{p}" for h, p in self.addresses if p != port]
        if skipped:
            log.warning("not advertising %s: mDNS advertises one port (%d)", ", ".join(skipped), port)
        return [(h, p) for h, p in self.addresses if p == port]

    async def _drain(self, accepting: trio.CancelScope, connections: trio.Nursery) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, then close."""
        accepting.cancel()
        self.tracker.closing = True
        with trio.move_on_after(self.config.limits.shutdown_grace) as grace:
            await self.tracker.wait_idle()
        if grace.cancelled_caught:
            log.warning(
                "%d requests still in flight after %.1f s; closing anyway",
                self.tracker.in_flight,
                self.config.limits.shutdown_grace,
            )
        connections.cancel_scope.cancel()
