"""The org directory at company scale: a 20,000-person, 1,000-department org on a real server.

What it measures (one JSON object on stdout, progress on stderr):

- populating the org by importing one CSV file with `corridor admin import` (a real process,
  as an IT admin runs it), and importing the same file again (which must change nothing);
- a client's first, full `directory_sync`: pages, entries, frame bytes, seconds;
- the same client's next sync when nothing changed (it must download nothing), and after one
  profile change (it must download exactly that person);
- the first search, which computes every person's pinyin search key, and then the latency of
  searches by name, initials and department.

Frame bytes are the encoded protocol frames (before TLS). Everything runs on 127.0.0.1 with
`--no-advertise`, under a hard deadline, and cleans up after itself.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import trio
from harness import ServerProcess, enroll_all, latency_summary, log, open_wire_client, run_against_server

from corridor.client.transport import open_unix, running
from corridor.protocol.framing import encode_frame
from corridor.protocol.messages import DirectorySearch, DirectorySync, ProfileSet

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"


def frame_bytes(result) -> int:
    """Size of the result's frame on the wire, before TLS."""
    return len(encode_frame({**result.to_fields(), "type": "result", "re": 1}, max_frame_bytes=2**31))


def org_plan(people: int, departments: int, rng: random.Random) -> tuple[list[tuple[str, int | None]], list[tuple[str, str]]]:
    """Departments as (name, parent index) in creation order — 10 top-level ones, 10 below each,
    the rest below those — and people as (username, Chinese display name)."""
    tree: list[tuple[str, int | None]] = [(f"Division {i}", None) for i in range(10)]
    tree += [(f"Department {i}", i // 10) for i in range(min(100, departments - 10))]
    tree += [(f"Team {i}", 10 + i % 100) for i in range(departments - len(tree))]
    names = [
        (f"p{i:05d}", rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))) for i in range(people)
    ]
    return tree, names


def write_org_csv(path: Path, people: int, departments: int, rng: random.Random) -> list[tuple[str, str]]:
    """The org as the CSV an IT admin would import; returns (username, display name) of everyone."""
    tree, names = org_plan(people, departments, rng)
    paths: list[str] = []
    for name, parent in tree:
        paths.append(name if parent is None else f"{paths[parent]}/{name}")
    teams = paths[110:] or paths
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["username", "display_name", "title", "email", "departments", "manager"])
        for index, (user, display_name) in enumerate(names):
            manager = names[index // 20 * 20][0] if index % 20 else ""
            title = rng.choice(["Engineer", "Analyst", "Manager"])
            writer.writerow([user, display_name, title, f"{user}@example.com", rng.choice(teams), manager])
        writer.writerows([["", "", "", "", p, ""] for p in paths])  # every department, even an empty one
    return names


def timed_import(data_dir: Path, csv_path: Path) -> dict:
    """Run `corridor admin import` as a user would; its JSON result and the wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "corridor"), "admin", "--data", str(data_dir), "import", str(csv_path), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr.strip()}")
    result = json.loads(done.stdout)
    keys = ("created", "updated", "moved", "deactivated", "departments_created")
    return {"seconds": round(seconds, 2), **{key: result[key] for key in keys}, "changes_listed": len(result["changes"])}


def populate(work: Path, people: int, departments: int, rng: random.Random) -> dict:
    """Import the org from CSV, then import the same file again."""
    csv_path = work / "org.csv"
    names = write_org_csv(csv_path, people, departments, rng)
    first = timed_import(work / "data", csv_path)
    log(f"imported {first['created']} people and {first['departments_created']} departments in {first['seconds']} s")
    again = timed_import(work / "data", csv_path)
    log(f"imported the same file again in {again['seconds']} s: {again['created'] + again['updated']} changes")
    return {"csv_bytes": csv_path.stat().st_size, "import": first, "repeat_import": again, "names": names}


async def sync_all(client, since: int) -> dict:
    """Sync from `since` until up to date; returns what it took."""
    started = time.perf_counter()
    pages = people = departments = size = 0
    while True:
        page = await client.channel.request(DirectorySync(since=since))
        pages += 1
        people += len(page.people)
        departments += len(page.departments)
        size += frame_bytes(page)
        since = page.version
        if not page.more:
            break
    return {
        "pages": pages,
        "people": people,
        "departments": departments,
        "bytes": size,
        "seconds": round(time.perf_counter() - started, 3),
        "version": since,
    }


async def measure(args: argparse.Namespace, work: Path, server: ServerProcess) -> dict:
    rng = random.Random(args.seed)
    data_dir = work / "data"
    result: dict = {"benchmark": "directory", "people": args.people, "departments": args.departments}
    populated = await trio.to_thread.run_sync(populate, work, args.people, args.departments, rng)
    names = populated.pop("names")
    result["populate"] = populated
    opened = []
    try:
        (profile,) = await enroll_all(data_dir, work / "profiles", ["reader"], 1, opened)
        async with open_wire_client(profile) as client:
            full = await sync_all(client, 0)
            idle = await sync_all(client, full["version"])
            async with running(await open_unix(str(data_dir / "control.sock"))) as admin:
                await admin.handshake()
                await admin.request(ProfileSet(user=names[0][0], title="Chief Architect"))
            delta = await sync_all(client, idle["version"])
            result["sync"] = {"full": full, "up_to_date": idle, "after_one_change": delta}
            log(
                f"full sync {full['people']} people in {full['seconds']} s ({full['bytes']} bytes); after one change: {delta['people']} person, {delta['bytes']} bytes"
            )

            started = time.perf_counter()
            await client.channel.request(DirectorySearch(query=names[1][1]))
            result["first_search_s"] = round(time.perf_counter() - started, 2)  # builds every search key
            queries = []
            for _ in range(args.searches):
                user, display_name = rng.choice(names)
                queries.append(rng.choice([display_name, display_name[0], "".join(p[0] for p in user), "Team 7", "manager"]))
            latencies = []
            for query in queries:
                started = time.perf_counter()
                await client.channel.request(DirectorySearch(query=query, limit=20))
                latencies.append((time.perf_counter() - started) * 1000)
            result["search_latency_ms"] = latency_summary(latencies)
    finally:
        for profile in opened:
            profile.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the directory benchmark; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20_000, help="people in the org (default 20,000)")
    parser.add_argument("--departments", type=int, default=1_000, help="departments (default 1,000; at least 110)")
    parser.add_argument("--searches", type=int, default=200, help="searches to time (default 200)")
    parser.add_argument("--seed", type=int, default=4, help="random seed (names, queries)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--timeout", type=float, default=900, help="hard limit for the whole run in seconds")
    args = parser.parse_args(argv)
    if args.departments < 110:
        parser.error("--departments must be at least 110")

    def passed(result: dict) -> bool:
        sync, populate = result["sync"], result["populate"]
        return (
            sync["up_to_date"]["people"] == 0
            and sync["after_one_change"]["people"] == 1
            and populate["import"]["created"] == args.people
            and populate["repeat_import"]["changes_listed"] == 0
        )

    return run_against_server(
        "corridor-bench-dir-",
        lambda work, server: measure(args, work, server),
        timeout=args.timeout,
        out=args.out,
        passed=passed,
    )


if __name__ == "__main__":
    sys.exit(main())
