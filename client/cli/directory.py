"""`corridor directory …`: sync this profile's copy of the org directory, search it on the
server, print the org tree."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator

from corridor.protocol.messages import Person

from ..client import Client
from ..directory import Branch, Directory, search_directory, sync_directory
from ..profile import Profile
from .commands import _client_options, _common, _connection, _run
from .output import EXIT_OK, emit

INDENT = "  "


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _who(person: Person) -> str:
    """`display_name (user) — title`, marking bots and people who left."""
    line = f"{person.display_name} ({person.user})"
    if person.bot:
        line += " [bot]"
    if person.title:
        line += f" — {person.title}"
    return line if person.active else f"{line} [inactive]"


async def _sync(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        report = await sync_directory(client)
    emit(
        {"ok": True, **dataclasses.asdict(report)},
        args.json,
        f"directory at version {report.version}: {_plural(report.people, 'person', 'people')}, "
        f"{_plural(report.departments, 'department', 'departments')} updated",
    )
    return EXIT_OK


async def _search(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        found = await search_directory(client, args.query, limit=args.limit)
        # Results name departments by id; the synced local copy names them.
        await sync_directory(client)
    with Directory(profile) as directory:
        names = {d.id: d.name for d in directory.departments()}
    for person in found:
        departments = ", ".join(names.get(d, str(d)) for d in person.departments)
        emit(person.to_fields(), args.json, f"{_who(person)} — {departments}" if departments else _who(person))
    if not found and not args.json:
        print(f"no one matches {args.query!r}")
    return EXIT_OK


def _branch_lines(branch: Branch, depth: int) -> Iterator[str]:
    yield INDENT * depth + branch.department.name
    for person in branch.people:
        yield INDENT * (depth + 1) + _who(person)
    for child in branch.children:
        yield from _branch_lines(child, depth + 1)


def _branch_json(branch: Branch) -> dict:
    return {
        **branch.department.to_fields(),
        "people": [p.to_fields() for p in branch.people],
        "children": [_branch_json(c) for c in branch.children],
    }


async def _tree(args: argparse.Namespace, profile: Profile) -> int:
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        report = await sync_directory(client)
    with Directory(profile) as directory:
        tree = directory.tree()
    lines = [line for root in tree.roots for line in _branch_lines(root, 0)]
    if tree.unassigned:
        lines += ["(no department)", *(INDENT + _who(p) for p in tree.unassigned)]
    emit(
        {
            "version": report.version,
            "departments": [_branch_json(b) for b in tree.roots],
            "unassigned": [p.to_fields() for p in tree.unassigned],
        },
        args.json,
        "\n".join(lines),
    )
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor directory` and its subcommands to the root parser."""
    directory = sub.add_parser("directory", help="the org directory: sync it, search it, print the org tree")
    actions = directory.add_subparsers(dest="action", metavar="ACTION", required=True)

    sync = actions.add_parser("sync", help="bring this profile's copy of the directory up to date")
    sync.set_defaults(run=_run("directory sync", _sync))

    search = actions.add_parser("search", help="find people by name, pinyin or initials, username, title or department")
    search.add_argument("query", metavar="QUERY", help='what to look for, e.g. "zs", "zhangsan", "张三" or "platform"')
    search.add_argument("--limit", type=int, default=20, metavar="N", help="at most N people (default 20, at most 200)")
    search.set_defaults(run=_run("directory search", _search))

    tree = actions.add_parser("tree", help="sync, then print the org tree with everyone in it")
    tree.set_defaults(run=_run("directory tree", _tree))

    for command in (sync, search, tree):
        _common(command)
        _connection(command)
