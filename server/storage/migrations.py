"""Named, ordered schema migrations, each applied in one transaction with its own record.

Features contribute migrations; the app orders them (features in dependency order, each
feature's list in its own order). The database records every applied name; a database that
holds a name this code does not know was written by a newer Corridor and is refused, so an
older server never runs against a schema it does not understand.

A migration's `sql` is what both engines run; where PostgreSQL's differs (column types, identity
columns) the migration carries it as `postgresql`. The ledger and its semantics are the same on
both engines.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .database import GroupCommit

log = logging.getLogger("corridor.storage")


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of Corridor."""


@dataclass(frozen=True)
class Migration:
    """One schema change: a unique name like `messaging.0001_initial`, its SQL script, `then`, a
    step in Python for what SQL cannot compute (run after the script, in the same transaction),
    and `postgresql`, the script PostgreSQL runs instead of `sql` where the two differ."""

    name: str
    sql: str
    then: Callable[[sqlite3.Connection], None] | None = None
    postgresql: str | None = None

    def statements(self, dialect: str) -> list[str]:
        """The statements to run on `dialect` ("sqlite" or "postgresql")."""
        if dialect == "postgresql":
            # One execute without parameters runs a whole script on PostgreSQL, dollar-quoted
            # function bodies included, which splitting on semicolons would break.
            return [self.sql if self.postgresql is None else self.postgresql]
        return _statements(self.sql)


# The ledger per engine: (create, names in the order applied). PostgreSQL has no rowid, and its
# REAL is single precision.
_LEDGER = {
    "sqlite": (
        """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY,
    applied_at REAL NOT NULL
)
""",
        "SELECT name FROM schema_migrations ORDER BY rowid",
    ),
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (id BIGINT GENERATED ALWAYS AS IDENTITY, name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)",
        "SELECT name FROM schema_migrations ORDER BY id",
    ),
}


def _statements(script: str) -> list[str]:
    """Split a script into statements (executescript would commit our transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()[:60]}")
    return statements


def apply_migrations(db: GroupCommit, migrations: Iterable[Migration]) -> list[str]:
    """Apply pending migrations in order; returns the names applied. Raises SchemaError."""
    migrations = list(migrations)
    known = {m.name for m in migrations}
    if len(known) != len(migrations):
        raise SchemaError("two migrations share a name")
    create, select = _LEDGER[db.dialect]

    def applied_names(conn: sqlite3.Connection) -> list[str]:
        conn.execute(create)
        return [row[0] for row in conn.execute(select)]

    applied = db.write_now(applied_names)
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise SchemaError(
            f"the database {db.location} was written by a newer Corridor (unknown migrations: {', '.join(unknown)}); "
            "upgrade Corridor or restore a backup"
        )
    done = []
    for migration in migrations:
        if migration.name in applied:
            continue

        def apply(conn: sqlite3.Connection, migration: Migration = migration) -> bool:
            # Another server process starting at the same time may have applied it while this
            # one waited for the writers' lock (PostgreSQL): the ledger, read inside it, says.
            if migration.name in applied_names(conn):
                return False
            for statement in migration.statements(db.dialect):
                conn.execute(statement)
            if migration.then is not None:
                migration.then(conn)
            conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (migration.name, time.time()))
            return True

        if db.write_now(apply):
            log.info("applied migration %s", migration.name)
            done.append(migration.name)
    return done
