"""The client's local copy of the org directory: people, departments, and the version reached.

Why a copy: the directory of a 20,000-person organisation is megabytes. Sending it at every
login would cost each client that much every morning and the server as many times over. The
server numbers directory changes instead (the directory version); the client keeps what it has
in `PROFILE/directory.sqlite` together with the version it is complete up to, and asks only for
what changed after it (`directory_sync`). A client that is up to date downloads nothing but the
unchanged version, and reading the org tree needs no server at all.

Each page of changes is stored with its version in one transaction, so the copy always matches
the version stored with it: an interrupted sync leaves a consistent copy, and the next one
continues from there. The copy belongs to the organisation whose CA the profile pins; after the
profile is enrolled with another organisation it starts afresh. It is only a cache: deleting
the file costs one full download.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

from corridor.protocol.messages import Department, DirectorySearch, DirectorySync, DirectorySyncResult, Person

from .client import Client
from .profile import Profile, open_private_db

SYNC_PAGE = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ca_sha256 TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS view (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS departments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    parent INTEGER
);
CREATE TABLE IF NOT EXISTS people (
    user TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    title TEXT NOT NULL,
    departments TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    extension TEXT NOT NULL,
    employee_no TEXT NOT NULL,
    manager TEXT NOT NULL,
    active INTEGER NOT NULL,
    bot INTEGER NOT NULL DEFAULT 0
);
"""
_PERSON_COLUMNS = tuple(f.name for f in fields(Person))
_SELECT_PEOPLE = f"SELECT {', '.join(_PERSON_COLUMNS)} FROM people ORDER BY display_name, user"
_UPSERT_PERSON = f"INSERT OR REPLACE INTO people ({', '.join(_PERSON_COLUMNS)}) VALUES ({', '.join('?' * len(_PERSON_COLUMNS))})"


def _person_row(person: Person) -> tuple:
    values = person.to_fields()
    # A person's department ids are only ever read together with the person: one JSON column.
    values["departments"] = json.dumps(values["departments"])
    return tuple(values[column] for column in _PERSON_COLUMNS)


def _person(row: tuple) -> Person:
    values = dict(zip(_PERSON_COLUMNS, row, strict=True))
    values["departments"] = tuple(json.loads(values["departments"]))
    values["active"] = bool(values["active"])
    values["bot"] = bool(values["bot"])
    return Person(**values)


@dataclass(frozen=True)
class SyncReport:
    """What one sync did: the version reached and what was received on the way."""

    version: int
    people: int
    departments: int
    pages: int


@dataclass(frozen=True)
class Branch:
    """One department in the org tree, with its active people and its sub-departments."""

    department: Department
    people: tuple[Person, ...]
    children: tuple[Branch, ...]


@dataclass(frozen=True)
class OrgTree:
    """The top-level departments, and the active people who are in no department."""

    roots: tuple[Branch, ...]
    unassigned: tuple[Person, ...]


class Directory:
    """One profile's directory copy, opened (use as a context manager, or call `close()`)."""

    def __init__(self, profile: Profile):
        self._db = open_private_db(profile.path / "directory.sqlite", _SCHEMA)
        self._ca_sha256 = profile.credential().ca_sha256
        # In one transaction, so that a second process opening the copy at the same time cannot
        # wipe pages the first one has already stored.
        with self._transaction():
            if "bot" not in {column[1] for column in self._db.execute("PRAGMA table_info(people)")}:
                # A copy made before people had a bot flag: its people would all stay "not a bot"
                # (the server sends a person again only when they change), so add the column and
                # download everyone again.
                self._db.execute("ALTER TABLE people ADD COLUMN bot INTEGER NOT NULL DEFAULT 0")
                self._empty()
            row = self._db.execute("SELECT ca_sha256 FROM state WHERE id = 1").fetchone()
            if row is None or row[0] != self._ca_sha256:
                self._empty()  # another organisation's versions mean nothing to this one's server

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the directory database."""
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._db:  # commits, or rolls back on an exception
            self._db.execute("BEGIN IMMEDIATE")
            yield

    def _empty(self) -> None:
        self._db.execute("DELETE FROM people")
        self._db.execute("DELETE FROM departments")
        self._db.execute("DELETE FROM view")
        self._db.execute("INSERT OR REPLACE INTO state (id, ca_sha256, version) VALUES (1, ?, 0)", (self._ca_sha256,))

    def reset(self) -> None:
        """Empty the copy, so that the next sync downloads everything."""
        with self._transaction():
            self._empty()

    def version(self) -> int:
        """The directory version this copy is complete up to (0: empty)."""
        return self._db.execute("SELECT version FROM state WHERE id = 1").fetchone()[0]

    def view(self) -> str:
        """What the server called the view this copy was made with (which departments policy
        hides from this user); when it changes, the server sends everything again."""
        row = self._db.execute("SELECT key FROM view WHERE id = 1").fetchone()
        return row[0] if row else ""

    def apply(self, page: DirectorySyncResult) -> None:
        """Store one page of changes and the version it brings the copy to, atomically."""
        with self._transaction():
            if page.reset:
                self._empty()
            self._db.executemany("DELETE FROM people WHERE user = ?", [(u,) for u in page.removed_people])
            self._db.executemany("DELETE FROM departments WHERE id = ?", [(d,) for d in page.removed_departments])
            self._db.execute("INSERT OR REPLACE INTO view (id, key) VALUES (1, ?)", (page.view,))
            self._db.executemany(
                "INSERT OR REPLACE INTO departments (id, name, parent) VALUES (?, ?, ?)",
                [(d.id, d.name, d.parent) for d in page.departments],
            )
            self._db.executemany(_UPSERT_PERSON, [_person_row(p) for p in page.people])
            self._db.execute("UPDATE state SET version = ? WHERE id = 1", (page.version,))

    def people(self) -> list[Person]:
        """Everyone in the copy, by name; people who left stay in it with `active` false."""
        return [_person(row) for row in self._db.execute(_SELECT_PEOPLE)]

    def departments(self) -> list[Department]:
        """Every department, by name."""
        return [Department(*row) for row in self._db.execute("SELECT id, name, parent FROM departments ORDER BY name, id")]

    def tree(self) -> OrgTree:
        """The org tree for printing: departments nested under their parents, each with its
        active people; departments and people sorted by name. Someone in several departments
        appears in each."""
        departments = self.departments()
        known = {d.id for d in departments}
        members: dict[int, list[Person]] = defaultdict(list)
        unassigned = []
        for person in self.people():
            if not person.active:
                continue
            placed = [d for d in person.departments if d in known]
            for department in placed:
                members[department].append(person)
            if not placed:
                unassigned.append(person)
        children: dict[int | None, list[Department]] = defaultdict(list)
        for department in departments:
            children[department.parent if department.parent in known else None].append(department)

        def branch(department: Department) -> Branch:
            return Branch(department, tuple(members[department.id]), tuple(branch(c) for c in children[department.id]))

        return OrgTree(tuple(branch(d) for d in children[None]), tuple(unassigned))


async def sync_directory(client: Client, *, page_size: int = SYNC_PAGE) -> SyncReport:
    """Bring the client's profile's directory copy up to date, page by page.

    Starts from the stored version, so an up-to-date copy costs one empty answer and an
    interrupted sync resumes where it stopped."""
    with Directory(client.profile) as directory:
        since, view = directory.version(), directory.view()
        people = departments = pages = 0
        while True:
            page = await client.request(DirectorySync(since=since, limit=page_size, view=view))
            pages += 1
            if page.reset:
                # The policy now shows this user other departments: the server started from 0.
                since = 0
            elif page.version < since:
                # The server's directory is older than this copy (restored from a backup), so the
                # copy may hold what no longer exists there: download everything again.
                directory.reset()
                since = 0
                continue
            # Up to date: nothing to store. (A page that did not advance the version while saying
            # `more` would only be repeated: stopping is all a client can do about that.)
            if page.version > since or page.reset:
                directory.apply(page)
                people += len(page.people)
                departments += len(page.departments)
            if page.version == since or not page.more:
                return SyncReport(version=page.version, people=people, departments=departments, pages=pages)
            since, view = page.version, page.view


async def search_directory(client: Client, query: str, *, limit: int = 20) -> list[Person]:
    """People the server finds for `query`: by name, pinyin or initials of a Chinese name,
    username, title or department name."""
    result = await client.request(DirectorySearch(query=query, limit=limit))
    return list(result.people)
