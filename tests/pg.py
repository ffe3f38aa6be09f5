"""A real PostgreSQL server for tests, and a started database of either backend.

`postgres_cluster` (once a session) makes a throwaway cluster with Debian's binaries: `initdb`
into a temp dir, `pg_ctl start` listening on 127.0.0.1 at a free port only, its Unix socket in
the temp dir; stopped and removed at the end, after failures too. `initdb` refuses to run as
root, as CI does: there the cluster belongs to the `postgres` system user and its commands run
through `runuser`. `pg_dsn` gives each test a fresh database (`CREATE DATABASE … TEMPLATE
template0`), so tests cannot see each other's rows.

`any_db` is a started database of each backend (SQLite file, PostgreSQL database) with the
committer running in the test's nursery: a contract test written once runs on both.

Use them from a test module by importing the fixtures it needs and those they use, e.g.
`from .pg import any_db_fixture, closed_later_fixture, pg_dsn_fixture, postgres_cluster_fixture  # noqa: F401`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from corridor.server.storage.database import Database, GroupCommit
from corridor.server.storage.migrations import Migration, apply_migrations
from corridor.server.storage.postgres import PostgresDatabase

from .cli_helpers import free_port

START_TIMEOUT = 30  # seconds for pg_ctl to see the server accept connections
SUPERUSER = "corridor"
_databases = itertools.count()


def _bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(args: list[str]) -> list[str]:
    """`args` run as the cluster's owner: the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(name="postgres_cluster", scope="session")
def postgres_cluster_fixture() -> Iterator[str]:
    """A running throwaway cluster; yields the conninfo of its `postgres` database."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (`apt-get install postgresql`; .ci/run installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="corridor-pg-"))
    data, log = workdir / "data", workdir / "server.log"
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
    port = free_port()
    started = False
    try:
        # --no-sync and fsync=off: the tests check behaviour, not durability after a power cut; a
        # real server keeps PostgreSQL's defaults.
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--no-sync"]
        subprocess.run(_as_owner([*initdb, "--locale=C"]), check=True, capture_output=True, timeout=60)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off"
        start = [str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", str(START_TIMEOUT), "-o", options]
        started = True  # from here on, stop it whatever happens
        result = subprocess.run(_as_owner(start), capture_output=True, text=True, timeout=START_TIMEOUT + 10)
        if result.returncode != 0:
            pytest.fail(f"PostgreSQL did not start: {result.stdout}{result.stderr}\n{log.read_text() if log.exists() else ''}")
        yield f"host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres connect_timeout=10"
    finally:
        if started:
            stop = [str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "30"]
            subprocess.run(_as_owner(stop), capture_output=True, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(name="pg_dsn")
def pg_dsn_fixture(postgres_cluster: str) -> Iterator[str]:
    """The conninfo of a fresh, empty database of its own for one test; dropped after it."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_cluster, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    yield postgres_cluster.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(postgres_cluster, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def open_db(request: pytest.FixtureRequest, tmp_path: Path) -> GroupCommit:
    """An open database of the backend the test is parameterised with."""
    if request.param == "sqlite":
        return Database(tmp_path / "t.sqlite")
    from corridor.server.storage.postgres import PostgresDatabase

    return PostgresDatabase(request.getfixturevalue("pg_dsn"))


@pytest.fixture(name="closed_later", params=["sqlite", "postgresql"])
def closed_later_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GroupCommit]:
    """An open database of each backend, without a committer; closed after the test."""
    db = open_db(request, tmp_path)
    yield db
    db.close()


@pytest.fixture(name="any_db")
async def any_db_fixture(closed_later: GroupCommit, nursery: trio.Nursery) -> GroupCommit:
    """A database of each backend with its committer running in the test's nursery."""
    await nursery.start(closed_later.run_committer)
    return closed_later


@asynccontextmanager
async def two_processes(
    dsn: str, migrations: list[Migration], nursery: trio.Nursery
) -> AsyncIterator[tuple[PostgresDatabase, PostgresDatabase]]:
    """Two databases on one PostgreSQL database, as two `serve` processes would have, with the
    schema applied (the second finds it up to date) and their committers running."""
    first, second = PostgresDatabase(dsn), PostgresDatabase(dsn)
    try:
        for db in (first, second):
            apply_migrations(db, migrations)
            await nursery.start(db.run_committer)
        yield first, second
    finally:
        nursery.cancel_scope.cancel()
        await trio.sleep(0)  # let both committers end before closing their connections
        first.close()
        second.close()
