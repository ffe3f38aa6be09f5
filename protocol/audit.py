"""The compliance archive's messages: auditor search and export, the log of what auditors
looked at, and retention rules and legal holds (docs/archive.md has the format, docs/protocol.md
every field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from .base import Empty, Request, Seq
from .schema import Bound, Record

Digest = Annotated[bytes, Bound(min_len=32, max_len=32)]
# A message's text is at most 32,000 characters; its stored payload adds ids and names.
EntryText = Annotated[str, Bound(max_len=32_000)]
Payload = Annotated[bytes, Bound(max_len=256 * 1024)]
QueryJson = Annotated[str, Bound(max_len=16_384)]
Query = Annotated[str, Bound(max_len=1000)]
Days = Annotated[int, Bound(min=1, max=36_500)]


@dataclass(frozen=True)
class AuditEntry(Record):
    """One archived message, notice or upload, as an auditor reads it. People are usernames;
    `subkind` is a message's kind (`text`, `system`, `recall`, `edit`, `file`, `welcome`) or
    `notice`/`file`; `purged` entries were erased by retention and keep only their metadata."""

    seq: int
    ts: float
    actor: str
    kind: str
    conversation: int | None = None
    recipient: str = ""
    text: EntryText = ""
    subkind: str = ""
    title: str = ""
    ref: int = 0
    file_sha256: str = ""
    file_size: int = 0
    purged: bool = False


@dataclass(frozen=True)
class AuditHit(Record):
    """A search hit: the entry, its text around the match, and with `context` the entries just
    before and after it in its conversation."""

    entry: AuditEntry
    snippet: str
    before: Annotated[tuple[AuditEntry, ...], Bound(max_items=10)] = ()
    after: Annotated[tuple[AuditEntry, ...], Bound(max_items=10)] = ()


@dataclass(frozen=True)
class AuditSearchResult(Record):
    hits: Annotated[tuple[AuditHit, ...], Bound(max_items=200)]
    more: bool


@dataclass(frozen=True)
class AuditFilter(Record):
    """What an audit search or export selects: entries matching every filter given. `text` is
    a full-text query (Chinese included); `participant` a username (what they sent, and the
    direct messages they received); `department` an id, with its sub-departments (entries about
    its people); `since`/`until` Unix seconds, inclusive."""

    text: Query = ""
    participant: Annotated[str, Bound(max_len=64)] = ""
    department: int | None = None
    conversation: int | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class AuditSearch(AuditFilter, Request):
    """Search the archive, newest first, a page at a time (`before`: the last page's smallest
    seq; 0 for the newest). Auditors only, within their `archive_read` scope; recorded in the
    audit log."""

    TYPE = "audit_search"
    IDEMPOTENT = True
    RESULT = AuditSearchResult
    before: Seq = 0
    limit: Annotated[int, Bound(min=1, max=200)] = 20
    context: Annotated[int, Bound(min=0, max=10)] = 0


@dataclass(frozen=True)
class ArchiveRow(Record):
    """An archive entry exactly as stored: what `verify` recomputes the hash from."""

    seq: int
    ts: float
    actor: str
    kind: str
    conversation: int | None
    payload: Payload | None
    payload_hash: Digest
    prev_hash: Digest
    hash: Digest
    purged_at: float | None = None


@dataclass(frozen=True)
class ExportItem(Record):
    row: ArchiveRow
    entry: AuditEntry


@dataclass(frozen=True)
class ExportManifest(Record):
    """The server's signed statement of an export: the selection (`query`, JSON) up to entry
    `through`, how many entries it holds and the digest of their (seq, hash); signed with the
    archive key, whose raw public key is `public_key`."""

    query: QueryJson
    through: int
    count: int
    digest: Digest
    ts: float
    exporter: str
    signature: Annotated[bytes, Bound(min_len=64, max_len=64)]
    public_key: Annotated[bytes, Bound(min_len=32, max_len=32)]


@dataclass(frozen=True)
class AuditExportResult(Record):
    items: Annotated[tuple[ExportItem, ...], Bound(max_items=1000)]
    more: bool
    through: int
    manifest: ExportManifest | None = None


@dataclass(frozen=True)
class AuditExport(AuditFilter, Request):
    """Export the entries a filter selects, oldest first, in pages (`after`: the last seq
    received). The first page (`after` 0) fixes `through`, the chain's head, and carries the
    signed manifest; later pages pass that `through` back. Auditors only; recorded."""

    TYPE = "audit_export"
    IDEMPOTENT = True
    RESULT = AuditExportResult
    through: Seq = 0
    after: Seq = 0
    limit: Annotated[int, Bound(min=1, max=1000)] = 500


@dataclass(frozen=True)
class AuditLogEntry(Record):
    """One look an auditor took: the request, its exact parameters (JSON), and how many
    entries it returned (`total`: an export's whole selection)."""

    seq: int
    ts: float
    actor: str
    request: str
    query: QueryJson
    results: int
    total: int | None = None


@dataclass(frozen=True)
class AuditLogResult(Record):
    entries: Annotated[tuple[AuditLogEntry, ...], Bound(max_items=1000)]
    more: bool


@dataclass(frozen=True)
class AuditLog(Request):
    """The audit log after archive entry `after`, oldest first; optionally one auditor's. IT
    admins read all of it; an auditor only their own entries (`actor` set to themselves), so
    no auditor sees what the others looked at."""

    TYPE = "audit_log"
    IDEMPOTENT = True
    RESULT = AuditLogResult
    after: Seq = 0
    limit: Annotated[int, Bound(min=1, max=1000)] = 200
    actor: Annotated[str, Bound(max_len=64)] = ""


@dataclass(frozen=True)
class RetentionRule(Record):
    """Keep archived content `days` days: for a department's people, or (department null)
    everyone else."""

    department: int | None
    days: Days


@dataclass(frozen=True)
class RetentionSet(RetentionRule, Request):
    """Create or replace a retention rule. IT admins only."""

    TYPE = "retention_set"
    IDEMPOTENT = True
    RESULT = Empty


@dataclass(frozen=True)
class RetentionRemove(Request):
    """Remove a department's (or the global) retention rule. IT admins only."""

    TYPE = "retention_remove"
    IDEMPOTENT = True
    RESULT = Empty
    department: int | None = None


@dataclass(frozen=True)
class RetentionListResult(Record):
    rules: Annotated[tuple[RetentionRule, ...], Bound(max_items=10_000)]


@dataclass(frozen=True)
class RetentionList(Request):
    """Every retention rule. IT admins and auditors."""

    TYPE = "retention_list"
    IDEMPOTENT = True
    RESULT = RetentionListResult


@dataclass(frozen=True)
class LegalHold(Record):
    """A hold keeps everything about a user, or in a conversation, from retention's purge."""

    id: int
    user: str
    conversation: int | None
    reason: str
    placed_by: str
    placed_at: float


@dataclass(frozen=True)
class HoldPlace(Request):
    """Place a legal hold on a user (username) or a conversation. IT admins and auditors."""

    TYPE = "hold_place"
    RESULT = LegalHold
    reason: Annotated[str, Bound(min_len=1, max_len=500)]
    user: Annotated[str, Bound(max_len=64)] = ""
    conversation: int | None = None


@dataclass(frozen=True)
class HoldRelease(Request):
    """Release a legal hold. IT admins and auditors."""

    TYPE = "hold_release"
    IDEMPOTENT = True
    RESULT = Empty
    hold: int


@dataclass(frozen=True)
class HoldListResult(Record):
    holds: Annotated[tuple[LegalHold, ...], Bound(max_items=10_000)]


@dataclass(frozen=True)
class HoldList(Request):
    """The legal holds in force. IT admins and auditors."""

    TYPE = "hold_list"
    IDEMPOTENT = True
    RESULT = HoldListResult


@dataclass(frozen=True)
class PurgeResult(Record):
    """What a purge erased: entries made tombstones, entries kept only by a hold, and file
    contents deleted."""

    purged: int
    held: int
    files: int


@dataclass(frozen=True)
class ArchivePurge(Request):
    """Run retention now rather than at the next hourly pass; `dry_run` only counts. IT admins
    only."""

    TYPE = "archive_purge"
    RESULT = PurgeResult
    dry_run: bool = False


REQUESTS = (
    AuditSearch,
    AuditExport,
    AuditLog,
    RetentionSet,
    RetentionRemove,
    RetentionList,
    HoldPlace,
    HoldRelease,
    HoldList,
    ArchivePurge,
)
