"""The files of an auditor's archive export — JSON Lines, CSV, an HTML transcript, SQLite — each
holding the server's signed manifest and every entry's raw archive row, so `verify_export` can
check the file long after, without the server.

Writing streams: entries arrive a page at a time and an export can hold hundreds of thousands,
so each format appends to `<path>.part` as they come; it is renamed into place only when the
block ends cleanly, so a half-written file never passes for an export.

Every format holds the same fields per entry (COLUMNS): the raw row, which the signature covers
through the entry hashes, and beside it the readable form people read. That form is not hashed,
so reading checks it against the payload it was made from: a file whose text was edited while
its payload was left alone is refused naming the entry, instead of verifying while showing words
nobody wrote (a recipient is a user id in the payload, so that field cannot be checked). Reading
an HTML file renders its transcript again from the embedded data and compares, for the same
reason. CSV cells of free text that begin like a formula get a leading `'` (as do those that
begin with `'`) so that Excel shows a message such as `=HYPERLINK(…)` rather than running it.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack

from corridor.protocol.archive_format import payload_digest
from corridor.protocol.audit import ArchiveRow, AuditEntry, ExportItem, ExportManifest
from corridor.protocol.errors import CorridorError

FORMATS = ("jsonl", "csv", "html", "sqlite")
COLUMNS = (
    "seq", "ts", "time", "actor", "kind", "conversation", "recipient", "subkind", "title", "text", "ref",
    "file_sha256", "file_size", "purged", "payload", "payload_hash", "prev_hash", "hash", "purged_at",
)  # fmt: skip
_SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".html": "html", ".htm": "html", ".sqlite": "sqlite", ".db": "sqlite"}
_HASHES = ("payload_hash", "prev_hash", "hash")
_MANIFEST_BYTES = ("digest", "signature", "public_key")
_SHEET_TEXT = ("actor", "kind", "recipient", "subkind", "title", "text")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_SCRIPT_OPEN = '<script type="application/json" id="corridor-export">'
_TRANSCRIPT_END = "</main>\n"
_NOT_EXPORT = "not a Corridor export"


def format_for(path: Path, given: str | None) -> str:
    """The format: `given` if set, else from the suffix (.jsonl .csv .html/.htm .sqlite/.db);
    raises ValueError with a clear message otherwise."""
    if given and given not in FORMATS:
        raise ValueError(f"unknown export format {given!r}: choose one of {', '.join(FORMATS)}")
    fmt = given or _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the export format from the name {Path(path).name!r}: end it in .jsonl, .csv, .html or "
            f".sqlite, or name the format ({', '.join(FORMATS)})"
        )
    return fmt


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"(no such time: {ts!r})"  # only in a file someone edited


def _values(item: ExportItem) -> dict:
    """An entry's fields in COLUMNS order, bytes as bytes; the row's copy of the shared fields
    wins, since that is what the hash covers."""
    values = {**item.entry.to_fields(), **item.row.to_fields(), "time": _iso(item.row.ts)}
    return {name: values[name] for name in COLUMNS}


def _entry_json(item: ExportItem) -> dict:
    """The JSON form of an entry (jsonl, csv, html): hashes as hex, the payload as base64."""
    values = _values(item)
    payload = None if values["payload"] is None else base64.b64encode(values["payload"]).decode()
    return {"type": "entry", **values, "payload": payload, **{name: values[name].hex() for name in _HASHES}}


def _manifest_json(manifest: ExportManifest) -> dict:
    fields = manifest.to_fields()
    return {"type": "manifest", **fields, **{name: fields[name].hex() for name in _MANIFEST_BYTES}}


def _typed(cls: type, fields: Any, where: str, hexed: bool) -> Any:
    """A manifest or entry record (`cls`) from its fields (`hexed`: bytes are text, as in JSON
    and CSV); raises ValueError saying what is wrong with it, and where."""
    kind = "manifest" if cls is ExportManifest else "entry"
    if not isinstance(fields, dict) or (hexed and fields.get("type") != kind):
        raise ValueError(f"{where}: {_NOT_EXPORT}: no export {kind} here")
    fields = dict(fields)
    try:
        if hexed:
            if isinstance(fields.get("payload"), str):
                fields["payload"] = base64.b64decode(fields["payload"], validate=True)
            for name in (*_HASHES, *_MANIFEST_BYTES):
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


def _manifest_from(fields: Any, where: str, hexed: bool = True) -> ExportManifest:
    return _typed(ExportManifest, fields, where, hexed)[0]


def _row_from(fields: Any, where: str, hexed: bool = True) -> ArchiveRow:
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
    if time != _iso(row.ts):
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


def _part(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".part")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


class _Jsonl:
    def __init__(self, path: Path, manifest: ExportManifest, org: str):
        self.file = _part(path).open("w", encoding="utf-8", newline="\n")
        self.file.write(json.dumps(_manifest_json(manifest), ensure_ascii=False) + "\n")

    def add(self, item: ExportItem) -> None:
        self.file.write(json.dumps(_entry_json(item), ensure_ascii=False) + "\n")

    def finish(self) -> None:
        self.file.close()

    abort = finish


class _Csv(_Jsonl):
    def __init__(self, path: Path, manifest: ExportManifest, org: str):
        text = json.dumps(_manifest_json(manifest), ensure_ascii=False, indent=2) + "\n"
        _part(_sidecar(path)).write_text(text, encoding="utf-8")
        # utf-8-sig: the BOM is what makes Excel read UTF-8 rather than the ANSI code page.
        self.file = _part(path).open("w", encoding="utf-8-sig", newline="")
        self.rows = csv.writer(self.file)
        self.rows.writerow(COLUMNS)

    def add(self, item: ExportItem) -> None:
        self.rows.writerow([_cell(name, value) for name, value in _entry_json(item).items() if name != "type"])


def _cell(name: str, value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "", True: "true", False: "false"}[value]
    return "'" + value if name in _SHEET_TEXT and value.startswith(_FORMULA_START) else str(value)


def _csv_fields(cells: list[str], where: str) -> dict:
    if len(cells) != len(COLUMNS):
        raise ValueError(f"{where}: the entry is malformed: it has {len(cells)} cells, not {len(COLUMNS)}")
    raw = dict(zip(COLUMNS, cells, strict=True))
    fields: dict[str, Any] = {"type": "entry", **raw, "purged": {"true": True, "false": False}.get(raw["purged"], raw["purged"])}
    fields.update((name, raw[name][1:]) for name in _SHEET_TEXT if raw[name].startswith("'"))
    try:
        fields.update((name, int(raw[name])) for name in ("seq", "ref", "file_size"))
        fields.update(ts=float(raw["ts"]), payload=raw["payload"] or None)
        fields.update(conversation=int(raw["conversation"]) if raw["conversation"] else None)
        fields.update(purged_at=float(raw["purged_at"]) if raw["purged_at"] else None)
    except ValueError as e:
        raise ValueError(f"{where}: the entry is malformed: {e}") from None
    return fields


def _script_json(value: Any) -> str:
    # In JSON `<` only occurs inside strings, where \u003c means the same; left alone, a text
    # holding `</script>` or `<!--` would end or break the script element.
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


class _Html:
    def __init__(self, path: Path, manifest: ExportManifest, org: str):
        self.manifest, self.org, self.first = _manifest_json(manifest), org, True
        self.file = _part(path).open("w", encoding="utf-8", newline="\n")
        # The embedded data comes after the transcript, so until then it waits in a temporary
        # file beside the export rather than in memory.
        self.data = tempfile.TemporaryFile("w+", encoding="utf-8", dir=path.parent)
        self.transcript = _Transcript()
        self.file.write(self.transcript.head(self.manifest, org))

    def add(self, item: ExportItem) -> None:
        fields = _entry_json(item)
        self.file.write(self.transcript.entry(fields))
        self.data.write(("" if self.first else ",\n") + _script_json(fields))
        self.first = False

    def finish(self) -> None:
        manifest, org = _script_json(self.manifest), _script_json(self.org)
        self.file.write(f'{_TRANSCRIPT_END}{_SCRIPT_OPEN}{{"manifest": {manifest}, "org": {org}, "entries": [\n')
        self.data.seek(0)
        shutil.copyfileobj(self.data, self.file)
        self.file.write("\n]}</script>\n</body>\n</html>\n")
        self.abort()

    def abort(self) -> None:
        self.data.close()
        self.file.close()


def _e(text: str) -> str:
    # Line ends become \n, so that the file saved again with CRLF still matches on reading.
    return html.escape(text.replace("\r\n", "\n").replace("\r", "\n"))


_CSS = (
    "body{font:14px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
    "header{border-bottom:2px solid #444}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}"
    "dt{font-weight:600}dd{margin:0}h2{font-size:1.05em;background:#eee;padding:.3em .5em;margin:1.5em 0 .3em}"
    ".entry{padding:.35em .5em;border-bottom:1px solid #ddd}.meta{color:#666;font-size:.85em}"
    ".text{white-space:pre-wrap;overflow-wrap:anywhere;margin:.2em 0}.note{color:#666;font-style:italic;margin:.2em 0}"
)


class _Transcript:
    """The readable part of the HTML, made from the JSON form alone so that reading can make it
    again and compare."""

    def __init__(self) -> None:
        self.conversation: object = ()  # no heading yet (None is a conversation's value)

    def head(self, manifest: dict, org: str) -> str:
        key = hashlib.sha256(bytes.fromhex(manifest["public_key"])).hexdigest()
        title = f"{org} — archive export" if org else "Corridor archive export"
        facts = (
            ("Selection", _selection(manifest["query"])),
            ("Exported by", manifest["exporter"]),
            ("Exported at", _iso(manifest["ts"])),
            ("Entries", f"{manifest['count']:,} (of the archive's first {manifest['through']:,})"),
            ("Archive key", "SHA-256 " + " ".join(key[i : i + 4] for i in range(0, len(key), 4))),
        )
        rows = "".join(f"<dt>{name}</dt><dd>{_e(value)}</dd>" for name, value in facts)
        return (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n<header><h1>{_e(title)}</h1><dl>{rows}</dl>\n<p>Check this file "
            "against the archive's signature with <code>corridor audit verify FILE</code>.</p></header>\n<main>\n"
        )

    def entry(self, f: dict) -> str:
        heading = ""
        if f["conversation"] != self.conversation:
            self.conversation = f["conversation"]
            heading = "Outside conversations" if f["conversation"] is None else f"Conversation {f['conversation']}"
            heading = f"<h2>{heading}</h2>\n"
        who = _e(f["actor"]) + (f" → {_e(f['recipient'])}" if f["recipient"] else "")
        meta = f'<div class="meta">#{f["seq"]} · {_iso(f["ts"])} · {who} · {_e(f["kind"])}</div>'
        return f'{heading}<div class="entry" id="e{f["seq"]}">{meta}{_body(f)}</div>\n'


def _body(f: dict) -> str:
    text = f'<p class="text">{_e(f["text"])}</p>' if f["text"] else ""
    if f["purged"]:
        return '<p class="note">(erased by retention)</p>'
    if f["subkind"] == "notice":
        return f'<p class="text"><b>Notice: {_e(f["title"])}</b></p>{text}'
    if f["subkind"] == "file":
        name = _e(f["text"]) if f["text"] else "(an upload)"
        return f'<p class="text">File {name} · {f["file_size"]:,} bytes · SHA-256 {_e(f["file_sha256"])}</p>'
    if f["subkind"] in ("recall", "edit"):
        done = "recalled" if f["subkind"] == "recall" else "edited"
        return f'<p class="note">{done} message {f["ref"]} of this conversation</p>{text}'
    if f["subkind"] in ("system", "welcome"):
        return f'<p class="note">{_e(f["text"])}</p>'
    return text


def _selection(query: str) -> str:
    """The filter an export was made with, in words; `since`/`until` are Unix seconds."""
    try:
        shown = [f"{k}: {_iso(v) if k in ('since', 'until') else v}" for k, v in json.loads(query).items() if v]
    except (ValueError, TypeError, AttributeError):
        return query
    return "; ".join(shown) or "everything"


_SQLITE_SCHEMA = """
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
CREATE TABLE manifest (query TEXT, through INTEGER, count INTEGER, digest BLOB, ts REAL, exporter TEXT,
    signature BLOB, public_key BLOB);
CREATE TABLE entries (seq INTEGER PRIMARY KEY, ts REAL, time TEXT, actor TEXT, kind TEXT, conversation INTEGER,
    recipient TEXT, subkind TEXT, title TEXT, text TEXT, ref INTEGER, file_sha256 TEXT, file_size INTEGER,
    purged INTEGER, payload BLOB, payload_hash BLOB, prev_hash BLOB, hash BLOB, purged_at REAL);
-- content="entries" is how sqlite-utils and Datasette find a table's index, so both search it
-- with no configuration; trigram, unlike unicode61, matches inside a Chinese sentence.
CREATE VIRTUAL TABLE entries_fts USING fts5(title, text, content="entries", tokenize="trigram");
"""


class _Sqlite:
    def __init__(self, path: Path, manifest: ExportManifest, org: str):
        _part(path).unlink(missing_ok=True)  # a stale part of an interrupted export
        self.db = sqlite3.connect(_part(path))
        self.db.executescript(_SQLITE_SCHEMA)
        fields = manifest.to_fields()
        self.db.execute(f"INSERT INTO manifest ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})", [*fields.values()])

    def add(self, item: ExportItem) -> None:
        self.db.execute(f"INSERT INTO entries VALUES ({', '.join('?' * len(COLUMNS))})", [*_values(item).values()])

    def finish(self) -> None:
        self.db.execute("INSERT INTO entries_fts(entries_fts) VALUES('rebuild')")
        self.db.commit()
        self.db.close()

    def abort(self) -> None:
        self.db.close()


_SINKS = {"jsonl": _Jsonl, "csv": _Csv, "html": _Html, "sqlite": _Sqlite}


class ExportWriter:
    """Writes one export file. Use: `with ExportWriter(path, fmt, manifest, org="Acme") as w:
    w.write(items)` (write may be called many times, with items in seq order); on a clean exit
    the file is complete; if the block raises, the partial file is removed. A CSV export's
    manifest goes beside it, in `<path>.manifest.json`. `count` is how many entries were written."""

    def __init__(self, path: Path, fmt: str, manifest: ExportManifest, org: str = ""):
        self.path, self.manifest, self.org = Path(path), manifest, org
        self.fmt = format_for(self.path, fmt)
        # The data file comes last, to go into place last: a complete CSV has its manifest.
        self._targets = [*([_sidecar(self.path)] if self.fmt == "csv" else []), self.path]
        self._refuse_existing()
        self._sink: Any = None
        self.count = self._last = 0

    def _refuse_existing(self) -> None:
        for target in self._targets:
            if target.exists():
                raise FileExistsError(f"{target} already exists: an export never overwrites a file; choose another name")

    def __enter__(self) -> ExportWriter:
        try:
            self._sink = _SINKS[self.fmt](self.path, self.manifest, self.org)
        except BaseException:
            self._remove_parts()
            raise
        return self

    def write(self, items: Iterable[ExportItem]) -> None:
        """Append entries, in increasing seq order (as the server sends them)."""
        for item in items:
            if item.row.seq <= self._last:
                raise ValueError(f"export entries must come in seq order: entry {item.row.seq} came after {self._last}")
            self._sink.add(item)
            self._last = item.row.seq
            self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        sink, self._sink = self._sink, None
        try:
            if exc_type is None:
                sink.finish()
                self._refuse_existing()  # someone may have made the file while the export ran
                for target in self._targets:
                    _part(target).replace(target)
        finally:
            sink.abort()  # closes whatever is still open (all of it, if the block raised)
            self._remove_parts()

    def _remove_parts(self) -> None:
        for target in self._targets:
            _part(target).unlink(missing_ok=True)


def read_export(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    """Read back an export in any of the four formats (told from its contents, else its suffix):
    its manifest and archive rows, for `verify_export`. Raises ValueError saying what is wrong
    for a file that is not a Corridor export or is malformed; ExportTampered (a ValueError) when
    its readable fields were changed."""
    path = Path(path)
    try:
        return _READERS[_detect(path)](path)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: {_NOT_EXPORT}: it is not UTF-8 text") from None
    except ExportTampered:
        raise
    except (ValueError, csv.Error) as e:
        raise ValueError(f"{path}: {e}") from None


def _detect(path: Path) -> str:
    with path.open("rb") as file:
        head = file.read(512)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    for fmt, start in (("sqlite", "SQLite format 3\x00"), ("jsonl", "{"), ("html", "<!DOCTYPE html"), ("csv", ",".join(COLUMNS))):
        if text.startswith(start):
            return fmt
    if path.suffix.lower() not in _SUFFIXES:
        raise ValueError(f"{_NOT_EXPORT}: it is none of JSON Lines, CSV, HTML or SQLite")
    return _SUFFIXES[path.suffix.lower()]


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{where}: {_NOT_EXPORT}: not JSON ({e})") from None


def _read_jsonl(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    manifest, rows = None, []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if line.strip():
                fields, where = _json(line, f"line {number}"), f"line {number}"
                if manifest is None:
                    manifest = _manifest_from(fields, where)
                else:
                    rows.append(_row_from(fields, where))
    if manifest is None:
        raise ValueError(f"{_NOT_EXPORT}: the file is empty")
    return manifest, rows


def _read_csv(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    rows = []
    # A payload cell is base64 of up to the protocol's longest payload, which can exceed the
    # csv module's default field limit of 128 KiB; raising it process-wide only loosens a check.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        if next(reader, None) != list(COLUMNS):
            raise ValueError(f"{_NOT_EXPORT}: the first row is not an export's header ({', '.join(COLUMNS[:4])}, …)")
        for cells in reader:
            where = f"line {reader.line_num}"
            rows += [_row_from(_csv_fields(cells, where), where)] if cells else []
    side = _sidecar(path)
    if not side.exists():
        raise ValueError(f"the manifest file {side.name} is missing: a CSV export's signed manifest is kept beside it")
    return _manifest_from(_json(side.read_text(encoding="utf-8"), side.name), side.name), rows


def _read_html(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    text = path.read_text(encoding="utf-8")  # universal newlines: see _e
    start = text.find(_SCRIPT_OPEN)
    end = text.find("</script>", start)
    if start < 0 or end < 0:
        raise ValueError(f"{_NOT_EXPORT}: the page has no embedded export data")
    data = _json(text[start + len(_SCRIPT_OPEN) : end], "the embedded data")
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not isinstance(data.get("org"), str):
        raise ValueError(f"{_NOT_EXPORT}: the embedded data is not an export's")
    manifest = _manifest_from(data.get("manifest"), "the embedded manifest")
    rows = [_row_from(fields, f"embedded entry {i}") for i, fields in enumerate(data["entries"], 1)]
    transcript, at = _Transcript(), 0
    parts = [("the header", transcript.head(data["manifest"], data["org"]))]
    parts += [(f"entry {fields['seq']}", transcript.entry(fields)) for fields in data["entries"]]
    for what, part in [*parts, ("the end", _TRANSCRIPT_END)]:
        if not text.startswith(part, at):
            raise ExportTampered(f"{what} was changed in the readable transcript: it is not what the export's data says")
        at += len(part)
    if at != start:
        raise ExportTampered("the readable transcript was changed: it holds more than the export's data")
    return manifest, rows


def _read_sqlite(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        manifests = [dict(row) for row in db.execute("SELECT * FROM manifest")]
        if len(manifests) != 1:
            raise ValueError(f"the manifest table holds {len(manifests)} rows, not one")
        rows = []
        for row in db.execute(f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY seq"):
            fields = {**row, "purged": {0: False, 1: True}.get(row["purged"], row["purged"])}
            rows.append(_row_from(fields, f"entries row {row['seq']}", hexed=False))
        return _manifest_from(manifests[0], "the manifest table", hexed=False), rows
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{_NOT_EXPORT}: {e}") from None
    finally:
        db.close()


_READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "html": _read_html, "sqlite": _read_sqlite}
