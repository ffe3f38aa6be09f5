"""`corridor audit verify` on real data dirs, tampered with the `sqlite3` command-line tool as
someone with access to the server's disk would: one changed byte, one deleted row, nothing."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess

from .cli_helpers import employee, run

SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"


def sqlite3_tool(database, sql: str) -> None:
    done = subprocess.run([SQLITE3, str(database)], input=sql, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def verify(data) -> tuple[int, dict]:
    result = run("audit", "verify", str(data), "--json")
    return result.returncode, json.loads(result.stdout)


def test_verify_passes_untouched_and_names_a_changed_byte_and_a_deleted_row(served, tmp_path):
    data, _, server = served
    alice = employee(data, tmp_path, "alice", "Alice")
    employee(data, tmp_path, "bob", "Bob")
    for text in ("Lunch at noon?", "The contract is signed", "See you there"):
        assert run("send", "bob", text, "--profile", alice).returncode == 0
    status, live = verify(data)  # on the running server's data dir
    assert status == 0 and live["ok"] and live["entries"] == live["verified"] >= 5
    assert run("audit", "verify", str(data)).stdout.startswith(f"archive intact: {live['entries']:,} entries verified")
    server.stop()

    copies = {name: tmp_path / name for name in ("changed", "deleted", "untouched")}
    for copy in copies.values():
        shutil.copytree(data, copy)
    with sqlite3.connect(data / "corridor.sqlite") as db:
        rows = db.execute("SELECT seq, payload FROM archive WHERE kind = 'message'").fetchall()
    seq, payload = next((seq, payload) for seq, payload in rows if b"contract" in payload)
    forged = payload.replace(b"signed", b"signee")  # one byte
    database = copies["changed"] / "corridor.sqlite"
    sqlite3_tool(database, f"DROP TRIGGER archive_no_update; UPDATE archive SET payload = X'{forged.hex()}' WHERE seq = {seq};")
    status, changed = verify(copies["changed"])
    assert status == 1 and not changed["ok"]
    assert changed["broken"] == seq and changed["reason"].startswith(f"entry {seq} was changed")
    assert changed["verified"] == seq - 1

    sqlite3_tool(copies["deleted"] / "corridor.sqlite", "DROP TRIGGER archive_no_delete; DELETE FROM archive WHERE seq = 3;")
    status, deleted = verify(copies["deleted"])
    assert (status, deleted["broken"], deleted["reason"]) == (1, 3, "entry 3 is missing (deleted)")
    text = run("audit", "verify", str(copies["deleted"])).stdout
    assert text.startswith("archive BROKEN at entry 3: entry 3 is missing (deleted)")

    status, untouched = verify(copies["untouched"])
    assert status == 0 and {**untouched, "seconds": 0} == {**live, "seconds": 0}


def test_verify_refuses_what_is_not_a_data_dir(tmp_path):
    missing = run("audit", "verify", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "corridor.toml").write_text('[organisation]\nname = "X"\n')
    (tmp_path / "odd" / "corridor.sqlite").write_bytes(b"this is not a database at all, just text" * 50)
    odd = run("audit", "verify", str(tmp_path / "odd"))
    assert odd.returncode == 2 and "holds no Corridor archive" in odd.stderr, odd.stderr
