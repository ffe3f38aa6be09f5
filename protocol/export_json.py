"""An archive export's records in their JSON form, pure: the columns each entry carries (its
raw archive row, which the signature covers through the entry hashes, and beside it the readable
form people read), and the manifest line. A JSON Lines export is the manifest's line followed by
one line per entry (docs/archive.md); the client writes every export format from these, and the
server's web console writes JSON Lines downloads with them, so `corridor audit verify` reads
both the same way."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from .audit import ExportItem, ExportManifest

COLUMNS = (
    "seq", "ts", "time", "actor", "kind", "conversation", "recipient", "subkind", "title", "text", "ref",
    "file_sha256", "file_size", "purged", "payload", "payload_hash", "prev_hash", "hash", "purged_at",
)  # fmt: skip
HASHES = ("payload_hash", "prev_hash", "hash")
MANIFEST_BYTES = ("digest", "signature", "public_key")


def iso_time(ts: float) -> str:
    """A timestamp as ISO 8601 UTC with milliseconds (what an entry's `time` column holds)."""
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"(no such time: {ts!r})"  # only in a file someone edited


def entry_values(item: ExportItem) -> dict:
    """An entry's fields in COLUMNS order, bytes as bytes; the row's copy of the shared fields
    wins, since that is what the hash covers."""
    values = {**item.entry.to_fields(), **item.row.to_fields(), "time": iso_time(item.row.ts)}
    return {name: values[name] for name in COLUMNS}


def entry_json(item: ExportItem) -> dict:
    """The JSON form of an entry (jsonl, csv, html): hashes as hex, the payload as base64."""
    values = entry_values(item)
    payload = None if values["payload"] is None else base64.b64encode(values["payload"]).decode()
    return {"type": "entry", **values, "payload": payload, **{name: values[name].hex() for name in HASHES}}


def manifest_json(manifest: ExportManifest) -> dict:
    """The JSON form of an export's signed manifest: its bytes as hex."""
    fields = manifest.to_fields()
    return {"type": "manifest", **fields, **{name: fields[name].hex() for name in MANIFEST_BYTES}}


def jsonl_line(record: dict) -> str:
    """One line of a JSON Lines export (UTF-8 text kept readable, not escaped)."""
    return json.dumps(record, ensure_ascii=False) + "\n"
