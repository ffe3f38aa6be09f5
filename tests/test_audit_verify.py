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
    assert status == 0 and {**untouched, "seconds": 0, "checkpoints": 0} == {**live, "seconds": 0}
    assert untouched["checkpoints"] == 1  # the server signed its head when it stopped


def test_verify_refuses_what_is_not_a_data_dir(tmp_path):
    missing = run("audit", "verify", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "corridor.toml").write_text('[organisation]\nname = "X"\n')
    (tmp_path / "odd" / "corridor.sqlite").write_bytes(b"this is not a database at all, just text" * 50)
    odd = run("audit", "verify", str(tmp_path / "odd"))
    assert odd.returncode == 2 and "holds no Corridor archive" in odd.stderr, odd.stderr


def rewrite_from(database, first: int) -> str:
    """SQL that rewrites every entry from `first` on with a changed text and fresh, valid hashes:
    what someone without the archive key but with the sqlite3 tool could do to a chain."""
    from corridor.protocol.archive_format import entry_hash, payload_digest

    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT seq, ts, actor, kind, conversation_id, payload, prev_hash FROM archive WHERE seq >= ? ORDER BY seq", (first,)
        ).fetchall()
    statements, prev = ["DROP TRIGGER archive_no_update;"], rows[0][6]
    for seq, ts, actor, kind, conversation, payload, _ in rows:
        payload = payload.replace(b"signed", b"voided")
        body_hash = payload_digest(payload)
        digest = entry_hash(seq, ts, actor, kind, conversation, body_hash, prev)
        statements.append(
            f"UPDATE archive SET payload = X'{payload.hex()}', payload_hash = X'{body_hash.hex()}',"
            f" prev_hash = X'{prev.hex()}', hash = X'{digest.hex()}' WHERE seq = {seq};"
        )
        prev = digest
    return "\n".join(statements)


def test_signed_checkpoints_catch_a_cut_end_a_rewritten_chain_and_a_foreign_key(served, tmp_path):
    data, _, server = served
    alice = employee(data, tmp_path, "alice", "Alice")
    employee(data, tmp_path, "bob", "Bob")
    for text in ("Draft one", "The contract is signed", "Final words"):
        assert run("send", "bob", text, "--profile", alice).returncode == 0
    server.stop()  # signs a checkpoint of the last entry
    status, clean = verify(data)
    assert status == 0 and clean["checkpoints"] == 1
    last = clean["entries"]

    cut = tmp_path / "cut"
    shutil.copytree(data, cut)
    sqlite3_tool(cut / "corridor.sqlite", f"DROP TRIGGER archive_no_delete; DELETE FROM archive WHERE seq > {last - 2};")
    status, verdict = verify(cut)
    assert (status, verdict["broken"]) == (1, last - 1)
    assert (
        verdict["reason"]
        == f"the archive ends at entry {last - 2}, but entry {last} was signed: entries after {last - 2} were cut off"
    )

    rewritten = tmp_path / "rewritten"
    shutil.copytree(data, rewritten)
    with sqlite3.connect(data / "corridor.sqlite") as db:
        (contract,) = [seq for seq, payload in db.execute("SELECT seq, payload FROM archive") if b"contract" in payload]
    sqlite3_tool(rewritten / "corridor.sqlite", rewrite_from(rewritten / "corridor.sqlite", contract))
    status, verdict = verify(rewritten)
    assert (status, verdict["broken"]) == (1, last)  # every link holds; only the signature shows it
    assert verdict["reason"].startswith(f"entry {last} is not the one signed at ")
    chain_only = run("audit", "verify", str(rewritten), "--public-key", str(tmp_path / "none.pub"))
    assert chain_only.returncode == 2 and "cannot use" in chain_only.stderr

    other = tmp_path / "other"
    assert run("init", str(other), "--org", "Someone else").returncode == 0
    foreign = run("audit", "verify", str(data), "--public-key", str(other / "tls" / "archive.pub"), "--json")
    assert foreign.returncode == 1 and "bad signature" in json.loads(foreign.stdout)["reason"]
