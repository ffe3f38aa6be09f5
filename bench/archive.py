"""The archive at scale: how fast `corridor audit verify` checks a chain of a million entries.

What it measures (one JSON object on stdout, progress on stderr): a fresh data dir's archive is
filled with `--entries` message entries through the server's own `append_txn` (the same code a
send runs, in transactions of 10,000; mixed Chinese and English texts of 20-200 characters),
then a signed checkpoint is written as a stopping server writes it, and the real
`corridor audit verify DIR --json` runs on it as an auditor would: entries per second, and that
it found the chain intact. The data dir is removed afterwards.
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

from harness import ORG, log

from corridor.deploy.init import create_data_dir
from corridor.server.app import open_database
from corridor.server.config import load_config
from corridor.server.features.archive.checkpoints import checkpoint_txn, load_signing_key
from corridor.server.features.archive.store import append_txn

BATCH = 10_000
WORDS = ["合同", "请把", "发我", "会议", "明天", "上午", "contract", "meeting", "lunch", "report", "signed", "budget"]
CORRIDOR = str(Path(sys.executable).parent / "corridor")


def fill(data_dir: Path, entries: int, seed: int) -> float:
    """Append `entries` message entries; returns the seconds it took."""
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
                    payload = {
                        "seq": n + 1,
                        "sender": 1 + n % 50,
                        "recipient": 2 + n % 49,
                        "device": 1,
                        "msg_id": f"b{n}",
                        "text": text,
                    }
                    append_txn(
                        conn, ts=1.7e9 + n, actor=f"user{n % 50}", kind="message", conversation=1 + n % 200, payload=payload
                    )

            db.write_now(batch)
            done += count
            if done % 100_000 == 0 or done == entries:
                log(f"archived {done:,}/{entries:,}")
        db.write_now(lambda conn: checkpoint_txn(conn, load_signing_key(data_dir), time.time()))
    finally:
        db.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Run the archive benchmark; prints one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="archive entries to verify (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the texts")
    parser.add_argument("--timeout", type=float, default=600, help="hard limit for the verify run in seconds")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.entries <= 20_000_000:
        parser.error("--entries must be 1-20,000,000")
    work = Path(tempfile.mkdtemp(prefix="corridor-bench-archive-"))
    try:
        data = work / "data"
        create_data_dir(data, ORG, "127.0.0.1:0", ["127.0.0.1"], "admin", "Administrator")
        fill_s = fill(data, args.entries, args.seed)
        size = (data / "corridor.sqlite").stat().st_size
        started = time.perf_counter()
        verified = subprocess.run(
            [CORRIDOR, "audit", "verify", str(data), "--json"], capture_output=True, text=True, timeout=args.timeout
        )
        verify_s = time.perf_counter() - started
        report = json.loads(verified.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = report["entries"]
    result = {
        "benchmark": "archive_verify",
        "date": time.strftime("%Y-%m-%d"),
        "entries": total,
        "database_mib": round(size / 2**20, 1),
        "fill_s": round(fill_s, 1),
        "fill_entries_per_s": round(args.entries / fill_s),
        "verify_s": round(verify_s, 2),
        "verify_walk_s": report["seconds"],
        "verify_entries_per_s": round(total / report["seconds"]),
        "intact": report["ok"] and report["checkpoints"] == 1 and verified.returncode == 0,
    }
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["intact"] else 1


if __name__ == "__main__":
    sys.exit(main())
