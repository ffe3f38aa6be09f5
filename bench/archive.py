"""The archive at scale: `corridor audit verify` and `audit search` on a million entries.

What it measures (one JSON object on stdout, progress on stderr): a fresh data dir's archive is
filled with `--entries` message entries through the server's own `append_txn` (the same code a
send runs, in transactions of 10,000; mixed Chinese and English texts of 20-200 characters, one
in 10,000 carrying a rare phrase) and indexed for search as the server's indexer does it; a
signed checkpoint is written as a stopping server writes it, and the real `corridor audit verify DIR --json` runs on it as an
auditor would: entries per second, and that it found the chain intact.

Then a real `corridor serve` starts on the data dir, an auditor enrolls, and each search below
runs `--repeat` times over TLS, as `corridor audit search` sends it: latency percentiles per
query, measured at the client. Last, one conversation (1/200 of the archive) is exported page by
page. The data dir is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from harness import ORG, PASSWORD, ServerProcess, latency_summary, log, watchdog

from corridor.client.client import Client
from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.client.transport import open_unix, running
from corridor.deploy.init import create_data_dir
from corridor.protocol.audit import AuditExport, AuditSearch
from corridor.protocol.messages import DepartmentAdd, PolicySet, UserAdd
from corridor.server.app import open_database
from corridor.server.config import load_config
from corridor.server.features.archive.checkpoints import checkpoint_txn, load_signing_key
from corridor.server.features.archive.indexer import INDEX_BATCH
from corridor.server.features.archive.store import append_txn, index_pending_txn

BATCH = 10_000
WORDS = ["合同", "请把", "发我", "会议", "明天", "上午", "contract", "meeting", "lunch", "report", "signed", "budget"]
RARE = "审计线索"  # in one message of 10,000: a needle
START = 1.7e9  # entry n is archived at START + n seconds
DAY = 86400.0
CORRIDOR = str(Path(sys.executable).parent / "corridor")


def fill(data_dir: Path, entries: int, seed: int) -> tuple[float, float]:
    """Append `entries` message entries, then index them as the server's indexer does (in
    batches of INDEX_BATCH); returns the seconds each took."""
    rng = random.Random(seed)
    db = open_database(load_config(data_dir))
    started = time.perf_counter()
    try:
        done = 0
        while done < entries:
            count = min(BATCH, entries - done)

            def batch(conn, first=done, count=count):
                for n in range(first, first + count):
                    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 40)))
                    if n % 10_000 == 5_000:
                        text = f"{text} {RARE}"
                    payload = {
                        "seq": n + 1,
                        "sender": 1 + n % 50,
                        "recipient": 2 + n % 49,
                        "device": 1,
                        "msg_id": f"b{n}",
                        "text": text,
                    }
                    append_txn(
                        conn, ts=START + n, actor=f"user{n % 50}", kind="message", conversation=1 + n % 200, payload=payload
                    )

            db.write_now(batch)
            done += count
            if done % 100_000 == 0 or done == entries:
                log(f"archived {done:,}/{entries:,}")
        db.write_now(lambda conn: checkpoint_txn(conn, load_signing_key(data_dir), time.time()))
        filled = time.perf_counter()
        while db.write_now(lambda conn: index_pending_txn(conn, INDEX_BATCH)) == INDEX_BATCH:
            pass
    finally:
        db.close()
    return filled - started, time.perf_counter() - filled


def queries(entries: int) -> dict[str, AuditSearch]:
    """The searches measured: full text with a one-day range in the middle (the target), a rare
    phrase, a word in no message, common words with a person, one person's day."""
    middle = START + entries / 2
    day = {"since": middle, "until": middle + DAY}
    return {
        "fulltext_day": AuditSearch(text="合同", **day),
        "fulltext_two_terms_day": AuditSearch(text="signed contract", **day),
        "rare_phrase_all": AuditSearch(text=RARE),
        "rare_phrase_day": AuditSearch(text=RARE, **day),
        "absent_word_all": AuditSearch(text="不存在的词"),
        "fulltext_and_person_all": AuditSearch(text="合同 budget", participant="user7"),
        "participant_day": AuditSearch(participant="user7", **day),
        "latest_page": AuditSearch(),
    }


async def timed(client: Client, requests: dict[str, AuditSearch], repeat: int, result: dict, prefix: str = "") -> None:
    """Run each request `repeat` times; record hits and latency percentiles under its name."""
    for name, request in requests.items():
        hits, latencies = 0, []
        for _ in range(repeat):
            started = time.perf_counter()
            hits = len((await client.request(request)).hits)
            latencies.append((time.perf_counter() - started) * 1000)
        result[prefix + name] = {"hits": hits, "ms": latency_summary(latencies)}
        log(f"{prefix}{name}: p50 {result[prefix + name]['ms']['p50']} ms, {hits} hits")


async def search(data: Path, work: Path, port: int, entries: int, repeat: int) -> dict:
    """Enroll two auditors, run each query `repeat` times as the one who reads everything, then
    as one an `archive_read` rule limits to a fifth of the people; then export a conversation."""
    stream = await open_unix(str(data / "control.sock"))
    profiles = {name: Profile(work / name) for name in ("auditor", "scoped")}
    try:
        async with running(stream) as admin:
            await admin.handshake()
            teams = [(await admin.request(DepartmentAdd(name=f"Team {t}"))).id for t in range(5)]
            for n in range(50):  # the people the filled archive names, so names resolve
                await admin.request(UserAdd(username=f"user{n}", display_name=f"User {n}", departments=(teams[n % 5],)))
            for name, profile in profiles.items():
                invite = (await admin.request(UserAdd(username=name, display_name=name, role="auditor"))).invite
                await enroll(profile, invite, PASSWORD, "bench")
            result: dict = {}
            async with Client.open(profiles["auditor"], receive=False, address=("127.0.0.1", port)) as client:
                await timed(client, queries(entries), repeat, result)
                started, exported, after, through = time.perf_counter(), 0, 0, 0
                while True:
                    page = await client.request(AuditExport(conversation=7, after=after, through=through))
                    through, exported = page.through, exported + len(page.items)
                    if not page.more:
                        break
                    after = page.items[-1].row.seq
                seconds = time.perf_counter() - started
                result["export_conversation"] = {
                    "entries": exported,
                    "s": round(seconds, 2),
                    "entries_per_s": round(exported / seconds),
                }
            await admin.request(PolicySet(kind="archive_read", department=teams[0], subjects=("user:scoped",)))
            async with Client.open(profiles["scoped"], receive=False, address=("127.0.0.1", port)) as client:
                await timed(client, queries(entries), repeat, result, prefix="scoped_")
        return result
    finally:
        for profile in profiles.values():
            profile.close()


def measure_search(data: Path, work: Path, entries: int, repeat: int) -> dict:
    """Serve the filled data dir and measure searches against it."""
    server = ServerProcess(data, work / "server.log", None)
    timer = watchdog(900, server, [work])
    try:
        port = server.start(timeout=120)
        result = trio.run(search, data, work, port, entries, repeat)
        result["server_exit_code"] = server.stop(timeout=60)
        return result
    finally:
        timer.cancel()
        server.kill()


def main(argv: list[str] | None = None) -> int:
    """Run the archive benchmark; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="archive entries to verify (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the texts")
    parser.add_argument("--timeout", type=float, default=600, help="hard limit for the verify run in seconds")
    parser.add_argument("--repeat", type=int, default=20, help="how many times each search runs (default 20)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.entries <= 20_000_000:
        parser.error("--entries must be 1-20,000,000")
    work = Path(tempfile.mkdtemp(prefix="corridor-bench-archive-"))
    try:
        data = work / "data"
        create_data_dir(data, ORG, "127.0.0.1:0", ["127.0.0.1"], "admin", "Administrator")
        fill_s, index_s = fill(data, args.entries, args.seed)
        size = (data / "corridor.sqlite").stat().st_size
        started = time.perf_counter()
        verified = subprocess.run(
            [CORRIDOR, "audit", "verify", str(data), "--json"], capture_output=True, text=True, timeout=args.timeout
        )
        verify_s = time.perf_counter() - started
        report = json.loads(verified.stdout)
        searched = measure_search(data, work, args.entries, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = report["entries"]
    result = {
        "benchmark": "archive",
        "date": time.strftime("%Y-%m-%d"),
        "entries": total,
        "database_mib": round(size / 2**20, 1),
        "fill_s": round(fill_s, 1),
        "fill_entries_per_s": round(args.entries / fill_s),
        "index_s": round(index_s, 1),
        "index_entries_per_s": round(args.entries / index_s),
        "verify_s": round(verify_s, 2),
        "verify_walk_s": report["seconds"],
        "verify_entries_per_s": round(total / report["seconds"]),
        "intact": report["ok"] and report["checkpoints"] == 1 and verified.returncode == 0,
        "search": searched,
        "search_target_met": all(
            searched[p + q]["ms"]["p90"] < 500
            for p in ("", "scoped_")
            for q in ("fulltext_day", "fulltext_two_terms_day", "rare_phrase_day")
        ),
    }
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["intact"] and searched["server_exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
