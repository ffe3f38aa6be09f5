"""The auditor's and IT admin's commands as real processes against a real `corridor serve`:
search, export to every format and verify it (sqlite-utils searching the SQLite export in
Chinese), legal holds, retention, and the audit log of it all."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .cli_helpers import admin, employee, run

SQLITE_UTILS = str(Path(sys.executable).parent / "sqlite-utils")


def auditor(data, tmp_path, user: str) -> str:
    invite = admin(data, "user", "add", user, "--name", user.title(), "--role", "auditor")["invite"]
    profile = str(tmp_path / f"profile-{user}")
    assert run("enroll", invite, "--password-stdin", "--profile", profile, stdin="long-enough-pw\n").returncode == 0
    return profile


def setup(served, tmp_path):
    data, _, _ = served
    alice = employee(data, tmp_path, "alice", "Alice")
    employee(data, tmp_path, "bob", "Bob")
    for text in ("请把合同发我", "Lunch at noon?", "合同已经签好了"):
        assert run("send", "bob", text, "--profile", alice).returncode == 0
    return data, alice, auditor(data, tmp_path, "audrey")


def test_search_shows_hits_with_context_and_only_auditors_may(served, tmp_path):
    _, alice, audrey = setup(served, tmp_path)
    shown = run("audit", "search", "合同", "--context", "1", "--profile", audrey)
    assert shown.returncode == 0, shown.stderr
    assert "alice → bob: 合同已经签好了" in shown.stdout and "alice → bob: 请把合同发我" in shown.stdout
    assert "    #" in shown.stdout and "Lunch at noon?" in shown.stdout  # the context line
    hits = [json.loads(line) for line in run("audit", "search", "合同", "--json", "--profile", audrey).stdout.splitlines()]
    assert [h["entry"]["text"] for h in hits] == ["合同已经签好了", "请把合同发我"]
    paged = run("audit", "search", "--limit", "1", "--profile", audrey).stdout
    assert "… more: --before" in paged
    refused = run("audit", "search", "合同", "--profile", alice)
    assert refused.returncode == 3 and "FORBIDDEN" in refused.stderr
    bad = run("audit", "search", "--since", "yesterday", "--profile", audrey)
    assert bad.returncode == 2 and "is not a date" in bad.stderr


def test_exports_open_in_sqlite_utils_verify_and_name_a_changed_entry(served, tmp_path):
    data, _, audrey = setup(served, tmp_path)
    key = str(data / "tls" / "archive.pub")
    for suffix in ("jsonl", "csv", "html", "sqlite"):
        out = tmp_path / f"alice.{suffix}"
        exported = run("audit", "export", str(out), "--participant", "alice", "--json", "--profile", audrey)
        assert exported.returncode == 0, exported.stderr
        assert json.loads(exported.stdout)["entries"] == 3
        checked = run("audit", "verify", str(out), "--public-key", key, "--json")
        assert checked.returncode == 0 and json.loads(checked.stdout)["ok"], checked.stdout + checked.stderr
    again = run("audit", "export", str(tmp_path / "alice.sqlite"), "--profile", audrey)
    assert again.returncode != 0 and "exists" in again.stderr

    export = tmp_path / "alice.sqlite"
    found = subprocess.run([SQLITE_UTILS, "search", str(export), "entries", "请把合同"], capture_output=True, text=True)
    assert found.returncode == 0 and "请把合同发我" in found.stdout, found.stderr

    tampered = tmp_path / "tampered.sqlite"
    shutil.copy(export, tampered)
    with sqlite3.connect(tampered) as db:
        seq, payload = db.execute("SELECT seq, payload FROM entries WHERE text = '请把合同发我'").fetchone()
        db.execute("UPDATE entries SET payload = ? WHERE seq = ?", (payload.replace("发我".encode(), "给他".encode()), seq))
    broken = run("audit", "verify", str(tampered), "--public-key", key, "--json")
    verdict = json.loads(broken.stdout)
    assert broken.returncode == 1 and verdict["broken"] == seq and "was changed" in verdict["reason"]

    edited = tmp_path / "edited.sqlite"
    shutil.copy(export, edited)
    with sqlite3.connect(edited) as db:
        db.execute("UPDATE entries SET text = '请把合同给他' WHERE seq = ?", (seq,))
    shown = run("audit", "verify", str(edited))
    assert shown.returncode == 1 and f"entry {seq} was changed: its text" in shown.stdout

    with sqlite3.connect(tampered) as db:
        db.execute("DELETE FROM entries WHERE seq = ?", (seq,))
    cut = json.loads(run("audit", "verify", str(tampered), "--public-key", key, "--json").stdout)
    assert not cut["ok"] and "removed" in cut["reason"]
    foreign = tmp_path / "other.pub"
    foreign.write_bytes(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    wrong = run("audit", "verify", str(export), "--public-key", str(foreign))
    assert wrong.returncode == 1 and "signature does not hold under the key you trust" in wrong.stdout


def test_holds_retention_and_the_audit_log(served, tmp_path):
    data, _, audrey = setup(served, tmp_path)
    placed = run("audit", "hold", "place", "--user", "alice", "--reason", "case 2026-17", "--json", "--profile", audrey)
    assert placed.returncode == 0, placed.stderr
    hold = json.loads(placed.stdout)["id"]
    assert "user alice — case 2026-17" in run("audit", "hold", "list", "--profile", audrey).stdout
    assert admin(data, "retention", "set", "30")["days"] == 30
    assert admin(data, "retention", "list")["rules"] == [{"department": None, "days": 30}]
    assert admin(data, "purge", "--dry-run")["purged"] == 0  # nothing is 30 days old
    assert run("audit", "hold", "release", str(hold), "--profile", audrey).returncode == 0
    missing = run("audit", "hold", "release", str(hold), "--profile", audrey)
    assert missing.returncode == 4 and "NO_SUCH_HOLD" in missing.stderr

    run("audit", "search", "合同", "--profile", audrey)
    run("audit", "export", str(tmp_path / "all.jsonl"), "--profile", audrey)
    log = admin(data, "audit-log")["entries"]
    assert [(e["actor"], e["request"], e["results"]) for e in log] == [
        ("audrey", "audit_search", 2),
        ("audrey", "audit_export", 3),
    ]
    assert log[0]["query"]["text"] == "合同" and log[1]["total"] == 3
    text = run("admin", "--data", str(data), "audit-log").stdout
    assert "audrey" in text and "audit_export" in text
    refused = run("admin", "--remote", "--profile", audrey, "audit-log")
    assert refused.returncode == 3
