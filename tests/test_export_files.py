"""Export files on a tiny real archive (correct hashes, a real Ed25519 signature): every format
reads back and verifies; tampered with the way someone holding the file would — a changed
byte, a deleted entry, an edited readable text — it fails naming the entry."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import random
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import sqlite_utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from corridor.client.export_files import FORMATS, ExportWriter, format_for, read_export
from corridor.protocol.archive_format import GENESIS, entry_hash, manifest_bytes, payload_digest, selection_digest, verify_export
from corridor.protocol.audit import ArchiveRow, AuditEntry, ExportItem, ExportManifest

SQLITE_UTILS = Path(sys.executable).with_name("sqlite-utils")
T0 = 1_717_200_000.25
SCRIPT_TEXT = "</script><b>x <!-- y"
SUFFIX = {"jsonl": ".jsonl", "csv": ".csv", "html": ".html", "sqlite": ".sqlite"}


def message(seq: int, recipient: int | None, text: str, **extra) -> dict:
    return {"seq": seq, "sender": 1, "recipient": recipient, "device": 1, "msg_id": f"m{seq}", "text": text, **extra}


# (actor, kind, conversation, payload, readable fields the server would show, purged)
SPECS = [
    ("alice", "message", 7, message(1, 2, "请把合同发我"), {"recipient": "bob", "subkind": "text"}, False),
    ("bob", "message", 7, message(2, 1, SCRIPT_TEXT), {"recipient": "alice", "subkind": "text"}, False),
    ("hr", "notice", None, {"id": 1, "title": "放假通知", "text": "明天放假", "targets": {"everyone": True}, "recipients": 3},
     {"subkind": "notice", "title": "放假通知"}, False),
    ("alice", "message", 9, message(1, None, "合同.pdf", kind="file", file={"sha256": "ab" * 32, "name": "合同.pdf", "size": 1234}),
     {"subkind": "file", "file_sha256": "ab" * 32, "file_size": 1234}, False),
    ("carol", "message", 9, message(2, None, "=HYPERLINK(\"x\")"), {"subkind": "text"}, False),
    ("carol", "message", 9, message(3, None, "secret"), {}, True),
]  # fmt: skip


def build_archive() -> tuple[ExportManifest, list[ExportItem]]:
    key = Ed25519PrivateKey.generate()
    items, prev = [], GENESIS
    for seq, (actor, kind, conversation, fields, shown, purged) in enumerate(SPECS, 1):
        ts = T0 + seq * 61.5
        payload = msgpack.packb(fields, use_bin_type=True)
        payload_hash = payload_digest(payload)
        digest = entry_hash(seq, ts, actor, kind, conversation, payload_hash, prev)
        row = ArchiveRow(seq, ts, actor, kind, conversation, None if purged else payload, payload_hash, prev, digest,
                         purged_at=ts + 86_400 if purged else None)  # fmt: skip
        if purged:
            entry = AuditEntry(seq, ts, actor, kind, conversation, purged=True)
        else:
            entry = AuditEntry(seq, ts, actor, kind, conversation, text=fields["text"], **shown)
        items.append(ExportItem(row=row, entry=entry))
        prev = digest
    query = json.dumps({"text": "合同", "participant": "", "since": T0, "conversation": None}, sort_keys=True)
    count, digest = selection_digest((item.row.seq, item.row.hash) for item in items)
    through, now = 20, T0 + 1000
    manifest = ExportManifest(
        query=query,
        through=through,
        count=count,
        digest=digest,
        ts=now,
        exporter="auditor1",
        signature=key.sign(manifest_bytes(query, through, count, digest, now, "auditor1")),
        public_key=key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
    )
    return manifest, items


@pytest.fixture(params=FORMATS)
def exported(request, tmp_path) -> tuple[str, Path, ExportManifest, list[ExportItem]]:
    """An export of the tiny archive in each format, written in two pages as the CLI does."""
    fmt = request.param
    manifest, items = build_archive()
    path = tmp_path / f"export{SUFFIX[fmt]}"
    with ExportWriter(path, fmt, manifest, org="Acme 公司") as writer:
        writer.write(items[:3])
        writer.write(iter(items[3:]))
    assert writer.count == len(items)
    return fmt, path, manifest, items


def verdict(path: Path):
    manifest, rows = read_export(path)
    return verify_export(manifest, rows)


# Edits to one entry's fields, done in each format the way a tamperer holding the file would.


def edit_entries(fmt: str, path: Path, change) -> None:
    """Apply `change(fields) -> fields | None` (None: delete) to each entry, in the JSON form."""
    if fmt == "jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = [lines[0]] + [json.dumps(f, ensure_ascii=False) for f in map(change, map(json.loads, lines[1:])) if f]
        path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    elif fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as file:
            header, *rows = list(csv.reader(file))
        changed = [change(dict(zip(header, row, strict=True))) for row in rows]
        with path.open("w", encoding="utf-8-sig", newline="") as file:
            csv.writer(file).writerows([header, *([f[c] for c in header] for f in changed if f)])
    elif fmt == "html":
        text = path.read_text(encoding="utf-8")
        start = text.index("[\n", text.index('id="corridor-export"')) + 2
        end = text.index("\n]}</script>")
        entries = [change(json.loads(line.rstrip(",").replace("\\u003c", "<"))) for line in text[start:end].split(",\n")]
        data = ",\n".join(json.dumps(f, ensure_ascii=False).replace("<", "\\u003c") for f in entries if f)
        path.write_text(text[:start] + data + text[end:], encoding="utf-8")
    else:
        with sqlite3.connect(path) as db:
            for (seq,) in db.execute("SELECT seq FROM entries").fetchall():
                row = db.execute("SELECT text, payload FROM entries WHERE seq = ?", (seq,)).fetchone()
                payload = None if row[1] is None else base64.b64encode(row[1]).decode()
                fields = change({"seq": seq, "text": row[0], "payload": payload})
                if fields is None:
                    db.execute("DELETE FROM entries WHERE seq = ?", (seq,))
                else:
                    new = None if fields["payload"] is None else base64.b64decode(fields["payload"])
                    db.execute("UPDATE entries SET text = ?, payload = ? WHERE seq = ?", (fields["text"], new, seq))
        db.close()


def on_entry(seq: int, change):
    return lambda fields: change(fields) if int(fields["seq"]) == seq else fields


def reworded(fields: dict, payload_too: bool) -> dict:
    """合同发我 -> 合同发你 in the text, and in the payload (same byte length, so still msgpack)."""
    fields = {**fields, "text": fields["text"].replace("发我", "发你")}
    if payload_too:
        payload = base64.b64decode(fields["payload"]).replace("发我".encode(), "发你".encode())
        fields["payload"] = base64.b64encode(payload).decode()
    return fields


def test_each_format_reads_back_and_verifies(exported):
    _, path, manifest, items = exported
    read_manifest, rows = read_export(path)
    assert read_manifest == manifest
    assert rows == [item.row for item in items]
    result = verify_export(read_manifest, rows)
    assert result.intact and result.entries == len(items)
    assert not list(path.parent.glob("*.part"))


def test_a_changed_payload_byte_is_named(exported):
    fmt, path, *_ = exported
    edit_entries(fmt, path, on_entry(1, lambda f: reworded(f, payload_too=True)))
    if fmt == "html":  # and in the readable transcript, so that it shows what the data says
        path.write_text(path.read_text(encoding="utf-8").replace("请把合同发我", "请把合同发你"), encoding="utf-8")
    result = verdict(path)
    assert not result.intact and result.broken == 1 and "entry 1" in result.reason


def test_a_deleted_entry_is_found(exported):
    fmt, path, *_ = exported
    edit_entries(fmt, path, on_entry(5, lambda f: None))
    if fmt == "html":  # a careful tamperer takes it out of the readable transcript too
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r'<div class="entry" id="e5">.*</div>\n', "", text), encoding="utf-8")
    result = verdict(path)
    assert not result.intact and "removed" in result.reason


def test_a_readable_text_edited_without_its_payload_is_named(exported):
    fmt, path, *_ = exported
    edit_entries(fmt, path, on_entry(1, lambda f: reworded(f, payload_too=False)))
    with pytest.raises(ValueError, match=r"entry 1 was changed: its text is not what its archived payload says"):
        read_export(path)


def test_html_transcript_edited_is_named(tmp_path):
    manifest, items = build_archive()
    path = tmp_path / "e.html"
    with ExportWriter(path, "html", manifest) as writer:
        writer.write(items)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("请把合同发我", "请把合同发你", 1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"entry 1 was changed in the readable transcript"):
        read_export(path)
    path.write_text(text.replace("Acme", "Evil").replace("auditor1</dd>", "someone</dd>"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"the header was changed"):
        read_export(path)
    path.write_text(text.replace("\n", "\r\n"), encoding="utf-8")  # saved again by a Windows editor
    assert verdict(path).intact


def test_html_is_self_contained_and_escapes_untrusted_text(tmp_path):
    manifest, items = build_archive()
    path = tmp_path / "e.html"
    with ExportWriter(path, "html", manifest, org="Acme <Ltd>") as writer:
        writer.write(items)
    text = path.read_text(encoding="utf-8")
    readable = text[: text.index('<script type="application/json"')]
    assert "&lt;/script&gt;&lt;b&gt;x &lt;!-- y" in readable and "<b>x" not in text
    assert text.count("</script>") == 1 and text.count("<script") == 1 and "<!--" not in text
    assert "<script src" not in text and "http://" not in text and "https://" not in text and "@import" not in text
    assert "Acme &lt;Ltd&gt;" in readable and "auditor1" in readable and "请把合同发我" in readable
    assert "<h2>Conversation 7</h2>" in readable and "<h2>Conversation 9</h2>" in readable
    assert "(erased by retention)" in readable and "secret" not in readable
    assert "合同.pdf · 1,234 bytes · SHA-256 " + "ab" * 32 in readable and "放假通知" in readable
    assert "since: 2024-06-01T00:00:00.250Z; text: 合同" in readable
    fingerprint = hashlib.sha256(manifest.public_key).hexdigest()
    assert " ".join(fingerprint[i : i + 4] for i in range(0, 64, 4)) in readable


def test_sqlite_is_searchable_by_sqlite_utils(tmp_path):
    manifest, items = build_archive()
    path = tmp_path / "e.sqlite"
    with ExportWriter(path, "sqlite", manifest) as writer:
        writer.write(items)
    db = sqlite_utils.Database(path)
    assert db["entries"].detect_fts() == "entries_fts"
    assert [row["seq"] for row in db["entries"].search("请把合同")] == [1]
    assert [row["seq"] for row in db["entries"].search("合同.pdf", quote=True)] == [4]
    assert [row["seq"] for row in db["entries"].search("放假通知")] == [3]
    assert db["entries"].get(1)["payload"] == items[0].row.payload
    assert db["manifest"].count == 1
    db.close()
    found = subprocess.run([str(SQLITE_UTILS), "search", str(path), "entries", "合同发"], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert "请把合同发我" in found.stdout and "合同.pdf" not in found.stdout


def test_jsonl_and_csv_keep_chinese_readable_and_defuse_formulas(tmp_path):
    manifest, items = build_archive()
    for fmt in ("jsonl", "csv"):
        with ExportWriter(tmp_path / f"e.{fmt}", fmt, manifest) as writer:
            writer.write(items)
    lines = (tmp_path / "e.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["type"] == "manifest" and "请把合同发我" in lines[1]
    assert json.loads(lines[1])["time"] == "2024-06-01T00:01:01.750Z"
    raw = (tmp_path / "e.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfseq,ts,time,") and "请把合同发我".encode() in raw
    assert b"'=HYPERLINK" in raw
    sidecar = json.loads((tmp_path / "e.csv.manifest.json").read_text(encoding="utf-8"))
    assert sidecar["type"] == "manifest" and sidecar["public_key"] == manifest.public_key.hex()


def test_refuses_to_overwrite_and_removes_a_failed_export(tmp_path):
    manifest, items = build_archive()
    taken = tmp_path / "taken.jsonl"
    taken.write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        ExportWriter(taken, "jsonl", manifest)
    assert taken.read_text() == "keep me"
    (tmp_path / "beside.csv.manifest.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"beside\.csv\.manifest\.json already exists"):
        ExportWriter(tmp_path / "beside.csv", "csv", manifest)
    for fmt in FORMATS:
        path = tmp_path / f"failed{SUFFIX[fmt]}"
        with pytest.raises(RuntimeError), ExportWriter(path, fmt, manifest) as writer:
            writer.write(items[:2])
            raise RuntimeError("connection lost")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["beside.csv.manifest.json", "taken.jsonl"]


def test_entries_out_of_order_are_refused(tmp_path):
    manifest, items = build_archive()
    with pytest.raises(ValueError, match="seq order"), ExportWriter(tmp_path / "e.jsonl", "jsonl", manifest) as writer:
        writer.write([items[1], items[0]])
    assert not list(tmp_path.iterdir())


def test_format_for():
    assert format_for(Path("a.JSONL"), None) == "jsonl"
    assert format_for(Path("a.htm"), None) == "html"
    assert format_for(Path("a.db"), None) == "sqlite"
    assert format_for(Path("a.txt"), "csv") == "csv"
    with pytest.raises(ValueError, match=r"cannot tell the export format from the name 'a\.txt'"):
        format_for(Path("a.txt"), None)
    with pytest.raises(ValueError, match=r"unknown export format 'xml': choose one of jsonl, csv, html, sqlite"):
        format_for(Path("a.jsonl"), "xml")


def test_files_that_are_not_exports_are_refused_clearly(tmp_path):
    cases = {
        "notes.txt": "Dear diary,\nnothing to see.\n",
        "notes.jsonl": '{"hello": "world"}\n',
        "broken.jsonl": "{not json\n",
        "people.csv": "name,email\nann,a@x\n",
        "page.html": "<!DOCTYPE html><p>hi</p>",
        "empty.jsonl": "",
    }
    for name, content in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    (tmp_path / "binary.db").write_bytes(bytes(range(256)))
    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    for path in sorted(tmp_path.iterdir()):
        with pytest.raises(ValueError, match=r"not a Corridor export|malformed") as caught:
            read_export(path)
        assert str(path) in str(caught.value)


def test_malformed_entries_and_a_missing_csv_manifest(exported):
    fmt, path, *_ = exported
    if fmt == "csv":
        path.with_name(path.name + ".manifest.json").unlink()
        with pytest.raises(ValueError, match=r"the manifest file export\.csv\.manifest\.json is missing"):
            read_export(path)
    elif fmt != "sqlite":
        edit_entries(fmt, path, on_entry(2, lambda f: {**f, "hash": "zz"}))
        with pytest.raises(ValueError, match=r"the entry is malformed"):
            read_export(path)
    else:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE entries SET hash = 'text' WHERE seq = 2")
        db.close()
        with pytest.raises(ValueError, match=r"entries row 2: the entry is malformed: field 'hash' must be bytes"):
            read_export(path)


def test_damaged_files_raise_only_value_error(exported):
    """Random damage to any format reads back or raises ValueError, never anything else."""
    fmt, path, *_ = exported
    original, rnd = path.read_bytes(), random.Random(fmt)
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rnd.choice((1, 2, 5))):
            data[rnd.randrange(len(data))] = (
                rnd.choice(b'{}[]",:0123456789 \n\\<>tfn') if rnd.random() < 0.7 else rnd.randrange(256)
            )
        path.write_bytes(bytes(data[: rnd.randrange(len(data))] if rnd.random() < 0.1 else data))
        try:
            read_export(path)
        except ValueError:
            pass
