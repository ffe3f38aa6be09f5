"""The HTML export: a self-contained transcript people read (inline CSS, no scripts, no external
resources), with the export's data embedded as JSON for `verify`. Reading renders the transcript
again from the embedded data and compares, so an edited transcript is refused like an edited
field.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from corridor.protocol.audit import ArchiveRow, ExportItem, ExportManifest
from corridor.protocol.export_json import entry_json, iso_time, manifest_json

from .export_fields import NOT_EXPORT, ExportTampered, manifest_from, parse_json, part_path, row_from

SCRIPT_OPEN = '<script type="application/json" id="corridor-export">'
_TRANSCRIPT_END = "</main>\n"


def _script_json(value: Any) -> str:
    # In JSON `<` only occurs inside strings, where \u003c means the same; left alone, a text
    # holding `</script>` or `<!--` would end or break the script element.
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


class HtmlSink:
    def __init__(self, path: Path, manifest: ExportManifest, org: str):
        self.manifest, self.org, self.first = manifest_json(manifest), org, True
        self.file = part_path(path).open("w", encoding="utf-8", newline="\n")
        # The embedded data comes after the transcript, so until then it waits in a temporary
        # file beside the export rather than in memory.
        self.data = tempfile.TemporaryFile("w+", encoding="utf-8", dir=path.parent)
        self.transcript = _Transcript()
        self.file.write(self.transcript.head(self.manifest, org))

    def add(self, item: ExportItem) -> None:
        fields = entry_json(item)
        self.file.write(self.transcript.entry(fields))
        self.data.write(("" if self.first else ",\n") + _script_json(fields))
        self.first = False

    def finish(self) -> None:
        manifest, org = _script_json(self.manifest), _script_json(self.org)
        self.file.write(f'{_TRANSCRIPT_END}{SCRIPT_OPEN}{{"manifest": {manifest}, "org": {org}, "entries": [\n')
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
            ("Exported at", iso_time(manifest["ts"])),
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
        meta = f'<div class="meta">#{f["seq"]} · {iso_time(f["ts"])} · {who} · {_e(f["kind"])}</div>'
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
        shown = [f"{k}: {iso_time(v) if k in ('since', 'until') else v}" for k, v in json.loads(query).items() if v]
    except (ValueError, TypeError, AttributeError):
        return query
    return "; ".join(shown) or "everything"


def read_html(path: Path) -> tuple[ExportManifest, list[ArchiveRow]]:
    text = path.read_text(encoding="utf-8")  # universal newlines: see _e
    start = text.find(SCRIPT_OPEN)
    end = text.find("</script>", start)
    if start < 0 or end < 0:
        raise ValueError(f"{NOT_EXPORT}: the page has no embedded export data")
    data = parse_json(text[start + len(SCRIPT_OPEN) : end], "the embedded data")
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not isinstance(data.get("org"), str):
        raise ValueError(f"{NOT_EXPORT}: the embedded data is not an export's")
    manifest = manifest_from(data.get("manifest"), "the embedded manifest")
    rows = [row_from(fields, f"embedded entry {i}") for i, fields in enumerate(data["entries"], 1)]
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
