"""Reading back the fields of an auditor's archive export, shared by every format (their JSON
form, written by every format, is `corridor.protocol.export_json`).

The readable form is not hashed, so reading checks it against the payload it was made from: a
file whose text was edited while its payload was left alone is refused naming the entry
(`ExportTampered`), instead of verifying while showing words nobody wrote (a recipient is a user
id in the payload, so that field cannot be checked).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import msgpack

from corridor.protocol.archive_format import payload_digest
from corridor.protocol.audit import ArchiveRow, AuditEntry, ExportManifest
from corridor.protocol.errors import CorridorError
from corridor.protocol.export_json import COLUMNS, HASHES, MANIFEST_BYTES, iso_time

NOT_EXPORT = "not a Corridor export"


def _typed(cls: type, fields: Any, where: str, hexed: bool) -> Any:
    """A manifest or entry record (`cls`) from its fields (`hexed`: bytes are text, as in JSON
    and CSV); raises ValueError saying what is wrong with it, and where."""
    kind = "manifest" if cls is ExportManifest else "entry"
    if not isinstance(fields, dict) or (hexed and fields.get("type") != kind):
        raise ValueError(f"{where}: {NOT_EXPORT}: no export {kind} here")
    fields = dict(fields)
    try:
        if hexed:
            if isinstance(fields.get("payload"), str):
                fields["payload"] = base64.b64decode(fields["payload"], validate=True)
            for name in (*HASHES, *MANIFEST_BYTES):
                if isinstance(fields.get(name), str):
                    fields[name] = bytes.fromhex(fields[name])
        missing = [name for name in COLUMNS if name not in fields] if kind == "entry" else []
        if missing:
            raise ValueError(f"it has no {', '.join(missing)}")
        return cls.from_fields(fields), fields
    except (ValueError, CorridorError) as e:
        raise ValueError(f"{where}: the {kind} is malformed: {e}") from None


class ExportTampered(ValueError):
    """The file is an export, but its readable part no longer says what its archived entries
    say: someone edited it. `seq` names the entry, when one is to blame."""

    def __init__(self, message: str, seq: int | None = None):
        super().__init__(message)
        self.seq = seq


def manifest_from(fields: Any, where: str, hexed: bool = True) -> ExportManifest:
    return _typed(ExportManifest, fields, where, hexed)[0]


def row_from(fields: Any, where: str, hexed: bool = True) -> ArchiveRow:
    """An entry's archive row, once its readable fields are found to agree with it."""
    row, fields = _typed(ArchiveRow, fields, where, hexed)
    entry = _typed(AuditEntry, {**fields, "type": "entry"}, where, False)[0]
    damage = _readable_damage(row, entry, fields["time"])
    if damage:
        raise ExportTampered(damage, row.seq)
    return row


def _readable_damage(row: ArchiveRow, entry: AuditEntry, time: Any) -> str | None:
    """What in the readable fields contradicts the row (None: nothing). A payload that fails its
    own hash is left alone: `verify_export` names that entry as changed."""
    if time != iso_time(row.ts):
        return f"entry {row.seq} was changed: its time is not its timestamp"
    if row.payload is None:
        archived = AuditEntry(row.seq, row.ts, row.actor, row.kind, row.conversation, purged=True).to_fields()
    elif payload_digest(row.payload) != row.payload_hash:
        return None
    else:
        try:
            fields = msgpack.unpackb(row.payload, raw=False)
        except (ValueError, msgpack.UnpackException):
            return None  # signed as it is, so nothing readable was made from it
        archived = _archived_view(row.kind, fields) if isinstance(fields, dict) else {}
    shown = entry.to_fields()
    changed = next((name for name, value in archived.items() if shown[name] != value), None)
    return changed and f"entry {row.seq} was changed: its {changed.replace('_', ' ')} is not what its archived payload says"


def _archived_view(kind: str, fields: dict) -> dict:
    """The readable fields the server makes from a payload (those that can be made here)."""
    view = {"purged": False, "text": fields.get("text", "")}
    if kind == "notice":
        view.update(subkind="notice", title=fields.get("title", ""))
    elif kind == "file":
        view.update(subkind="file", file_sha256=fields.get("sha256", ""), file_size=fields.get("size", 0))
    elif kind == "message":
        file = fields["file"] if isinstance(fields.get("file"), dict) else {}
        view.update(subkind=fields.get("kind", "text"), ref=fields.get("ref", 0))
        view.update(file_sha256=file.get("sha256", ""), file_size=file.get("size", 0))
    return view


def part_path(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".part")


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{where}: {NOT_EXPORT}: not JSON ({e})") from None
