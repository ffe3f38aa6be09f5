"""The files of an auditor's archive export — JSON Lines, CSV, an HTML transcript, SQLite — each
holding the server's signed manifest and every entry's raw archive row, so `verify_export` can
check the file long after, without the server.

Writing streams: entries arrive a page at a time and an export can hold hundreds of thousands,
so each format appends to `<path>.part` as they come; it is renamed into place only when the
block ends cleanly, so a half-written file never passes for an export. CSV cells of free text
that begin like a formula get a leading `'` (as do those that begin with `'`) so that Excel
shows a message such as `=HYPERLINK(…)` rather than running it.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from corridor.protocol.audit import ArchiveRow, ExportItem, ExportManifest
from corridor.protocol.export_json import COLUMNS, entry_json, entry_values, jsonl_line, manifest_json

from .export_fields import NOT_EXPORT, ExportTampered, manifest_from, parse_json, part_path, row_from, sidecar_path
from .export_html import HtmlSink, read_html

FORMATS = ("jsonl", "csv", "html", "sqlite")
_SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".html": "html", ".htm": "html", ".sqlite": "sqlite", ".db": "sqlite"}
_SHEET_TEXT = ("actor", "kind", "recipient", "subkind", "title", "text")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


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


class _Jsonl:
    def __init__(self, path: Path, manifest: ExportManifest, org: str):
        self.file = part_path(path).open("w", encoding="utf-8", newline="\n")
        self.file.write(jsonl_line(manifest_json(manifest)))

    def add(self, item: ExportItem) -> None:
        self.file.write(jsonl_line(entry_json(item)))

    def finish(self) -> None:
        self.file.close()

    abort = finish


class _Csv(_Jsonl):
    def __init__(self, path: Path, manifest: ExportManifest, org: str):
        text = json.dumps(manifest_json(manifest), ensure_ascii=False, indent=2) + "\n"
        part_path(sidecar_path(path)).write_text(text, encoding="utf-8")
        # utf-8-sig: the BOM is what makes Excel read UTF-8 rather than the ANSI code page.
        self.file = part_path(path).open("w", encoding="utf-8-sig", newline="")
        self.rows = csv.writer(self.file)
        self.rows.writerow(COLUMNS)

    def add(self, item: ExportItem) -> None:
        self.rows.writerow([_cell(name, value) for name, value in entry_json(item).items() if name != "type"])


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
        part_path(path).unlink(missing_ok=True)  # a stale part of an interrupted export
        self.db = sqlite3.connect(part_path(path))
        self.db.executescript(_SQLITE_SCHEMA)
        fields = manifest.to_fields()
        self.db.execute(f"INSERT INTO manifest ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})", [*fields.values()])

    def add(self, item: ExportItem) -> None:
        self.db.execute(f"INSERT INTO entries VALUES ({', '.join('?' * len(COLUMNS))})", [*entry_values(item).values()])

    def finish(self) -> None:
        self.db.execute("INSERT INTO entries_fts(entries_fts) VALUES('rebuild')")
        self.db.commit()
        self.db.close()

    def abort(self) -> None:
        self.db.close()


_SINKS = {"jsonl": _Jsonl, "csv": _Csv, "html": HtmlSink, "sqlite": _Sqlite}


class ExportWriter:
    """Writes one export file. Use: `with ExportWriter(path, fmt, manifest, org="Acme") as w:
    w.write(items)` (write may be called many times, with items in seq order); on a clean exit
    the file is complete; if the block raises, the partial file is removed. A CSV export's
    manifest goes beside it, in `<path>.manifest.json`. `count` is how many entries were written."""

    def __init__(self, path: Path, fmt: str, manifest: ExportManifest, org: str = ""):
        self.path, self.manifest, self.org = Path(path), manifest, org
        self.fmt = format_for(self.path, fmt)
        # The data file comes last, to go into place last: a complete CSV has its manifest.
        self._targets = [*([sidecar_path(self.path)] if self.fmt == "csv" else []), self.path]
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
                    part_path(target).replace(target)
        finally:
            sink.abort()  # closes whatever is still open (all of it, if the block raised)
            self._remove_parts()

    def _remove_parts(self) -> None:
        for target in self._targets:
            part_path(target).unlink(missing_ok=True)


def read_export(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    """Read back an export in any of the four formats (told from its contents, else its suffix):
    its manifest and archive rows, for `verify_export`. Raises ValueError saying what is wrong
    for a file that is not a Corridor export or is malformed; ExportTampered (a ValueError) when
    its readable fields were changed."""
    path = Path(path)
    try:
        return _READERS[_detect(path)](path)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: {NOT_EXPORT}: it is not UTF-8 text") from None
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
        raise ValueError(f"{NOT_EXPORT}: it is none of JSON Lines, CSV, HTML or SQLite")
    return _SUFFIXES[path.suffix.lower()]


def _read_jsonl(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    manifest, rows = None, []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if line.strip():
                fields, where = parse_json(line, f"line {number}"), f"line {number}"
                if manifest is None:
                    manifest = manifest_from(fields, where)
                else:
                    rows.append(row_from(fields, where))
    if manifest is None:
        raise ValueError(f"{NOT_EXPORT}: the file is empty")
    return manifest, rows


def _read_csv(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    rows = []
    # A payload cell is base64 of up to the protocol's longest payload, which can exceed the
    # csv module's default field limit of 128 KiB; raising it process-wide only loosens a check.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        if next(reader, None) != list(COLUMNS):
            raise ValueError(f"{NOT_EXPORT}: the first row is not an export's header ({', '.join(COLUMNS[:4])}, …)")
        for cells in reader:
            where = f"line {reader.line_num}"
            rows += [row_from(_csv_fields(cells, where), where)] if cells else []
    side = sidecar_path(path)
    if not side.exists():
        raise ValueError(f"the manifest file {side.name} is missing: a CSV export's signed manifest is kept beside it")
    return manifest_from(parse_json(side.read_text(encoding="utf-8"), side.name), side.name), rows


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
            rows.append(row_from(fields, f"entries row {row['seq']}", hexed=False))
        return manifest_from(manifests[0], "the manifest table", hexed=False), rows
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{NOT_EXPORT}: {e}") from None
    finally:
        db.close()


_READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "html": read_html, "sqlite": _read_sqlite}
