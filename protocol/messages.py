"""Every message of protocol version 1.

A `Request` subclass names its wire `TYPE` and its `RESULT` class; an `Event` subclass is a
server push. `docs/protocol.md` documents each one (a test checks every type appears there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import audit, integrations, ops
from .base import (  # noqa: F401  (re-exported: callers import these from messages)
    PRESENCE_STATES,
    ROLES,
    DisplayName,
    Empty,
    Event,
    MessageId,
    Request,
    Role,
    Secret,
    Seq,
    Status,
    Text,
    UserName,
)
from .files import CHUNK_BYTES, FileId, FileRef
from .schema import Bound, Record


@dataclass(frozen=True)
class HelloResult(Record):
    """`ca` is the organisation CA's certificate (PEM): enrollment checks it against the invite's
    fingerprint before trusting it."""

    version: int
    server: str
    org: str
    ca: Annotated[str, Bound(max_len=16384)] = ""


@dataclass(frozen=True)
class Hello(Request):
    TYPE = "hello"
    IDEMPOTENT = True
    RESULT = HelloResult
    versions: Annotated[tuple[int, ...], Bound(max_items=16)]
    client: str = ""


@dataclass(frozen=True)
class LoginResult(Record):
    user: str
    display_name: str
    role: str
    device_id: int
    device_token: str | None = None


@dataclass(frozen=True)
class Login(Request):
    """Log in with a password (issues a new device token) or with a device token."""

    TYPE = "login"
    RESULT = LoginResult
    user: UserName
    password: Secret | None = None
    device_token: Secret | None = None
    device_name: Annotated[str, Bound(max_len=128)] = ""


@dataclass(frozen=True)
class Enroll(Request):
    """Redeem a one-time invite: set the password and get a device token. A bot's invite takes
    no password (`""`): a bot logs in with its device token only."""

    TYPE = "enroll"
    RESULT = LoginResult
    token: Secret
    password: Annotated[str, Bound(max_len=1024)] = ""
    device_name: Annotated[str, Bound(max_len=128)] = ""


@dataclass(frozen=True)
class SendResult(Record):
    """`held`: the recipient is on a break; they get the message when it ends."""

    conversation: int
    seq: int
    ts: float
    duplicate: bool
    held: bool = False


@dataclass(frozen=True)
class Send(Request):
    """Send a 1:1 message; the result comes only after it is durably stored. `urgent` reaches a
    recipient on a break at once if they named me in `urgent_from`. With `file` (an upload of
    mine that finished, or a file I can see), it is a `file` message and `text` is the file's name."""

    TYPE = "send"
    IDEMPOTENT = True
    RESULT = SendResult
    to: UserName
    msg_id: MessageId
    text: Text
    urgent: bool = False
    file: FileId | None = None


MESSAGE_KINDS = ("text", "system", "welcome", "recall", "edit", "recalled", "file", "purged")


@dataclass(frozen=True)
class ChatMessage(Record):
    """One message. In a group, `conversation` is the group's id and `recipient` is empty;
    `system` messages say what changed in the group ("alice added bob"), `welcome` ones greet
    new members; `mentions` are the members named with @ (and "all" for @all).

    A `recall` or `edit` message changes the earlier message number `ref` of the same
    conversation (an edit carries the new text); history and sync then show that message as
    `recalled` (with no text) or with its new text and `edited` (when). A `file` message's
    `text` is the file's name and `file` describes it."""

    conversation: int
    seq: int
    sender: str
    recipient: str
    msg_id: MessageId
    text: Annotated[str, Bound(max_len=32_000)]
    ts: float
    kind: Annotated[str, Bound(choices=MESSAGE_KINDS)] = "text"
    mentions: Annotated[tuple[str, ...], Bound(max_items=5001)] = ()
    ref: int = 0
    edited: float = 0.0
    file: FileRef | None = None


@dataclass(frozen=True)
class Cursor(Record):
    conversation: int
    seq: Seq


@dataclass(frozen=True)
class SyncResult(Record):
    """`starts`: for conversations whose visible history begins after the cursor the client
    gave (a group it joined later), where it begins: the client moves its cursor there."""

    messages: Annotated[tuple[ChatMessage, ...], Bound(max_items=1000)]
    more: bool
    starts: Annotated[tuple[Cursor, ...], Bound(max_items=10_000)] = ()


@dataclass(frozen=True)
class Sync(Request):
    """Everything after the given cursor in each of my conversations (unlisted ones from 0), or
    only in `conversations` when given (to fill one conversation's gap)."""

    TYPE = "sync"
    IDEMPOTENT = True
    RESULT = SyncResult
    after: Annotated[tuple[Cursor, ...], Bound(max_items=10_000)] = ()
    limit: Annotated[int, Bound(min=1, max=1000)] = 500
    conversations: Annotated[tuple[int, ...], Bound(max_items=10_000)] = ()


@dataclass(frozen=True)
class HistoryResult(Record):
    conversation: int | None
    messages: Annotated[tuple[ChatMessage, ...], Bound(max_items=1000)]


@dataclass(frozen=True)
class History(Request):
    """The latest messages with one user, oldest first; `before` pages further back."""

    TYPE = "history"
    IDEMPOTENT = True
    RESULT = HistoryResult
    with_user: UserName
    before: Seq | None = None
    after: Seq | None = None
    limit: Annotated[int, Bound(min=1, max=1000)] = 50


@dataclass(frozen=True)
class SetPresence(Request):
    """Choose my status and its text for all my sessions. `break` holds live messages to me
    until I choose another status (then my sessions are told to sync); messages marked urgent
    by the people in `urgent_from` still come through at once (with the earlier messages of
    their conversation, so its order holds)."""

    TYPE = "set_presence"
    IDEMPOTENT = True
    RESULT = Empty
    status: Status
    text: Annotated[str, Bound(max_len=200)] = ""
    urgent_from: Annotated[tuple[UserName, ...], Bound(max_items=100)] = ()


@dataclass(frozen=True)
class PresenceInfo(Record):
    user: str
    status: str
    text: str = ""


@dataclass(frozen=True)
class PresenceResult(Record):
    statuses: tuple[PresenceInfo, ...]


@dataclass(frozen=True)
class QueryPresence(Request):
    TYPE = "query_presence"
    IDEMPOTENT = True
    RESULT = PresenceResult
    users: Annotated[tuple[UserName, ...], Bound(max_items=1000)]


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Annotated[str, Bound(choices=DAYS)]
ClockTime = Annotated[str, Bound(max_len=5)]  # "HH:MM", 00:00 to 23:59


@dataclass(frozen=True)
class QuietHours(Record):
    """A daily window in `tz` during which I am on a break: it starts at `start` on each of
    `days` and ends at `end`, the next day when `end` is not after `start` (22:00-08:00)."""

    start: ClockTime
    end: ClockTime
    tz: Annotated[str, Bound(max_len=64)]
    days: Annotated[tuple[Day, ...], Bound(max_items=7)]
    urgent_from: Annotated[tuple[UserName, ...], Bound(max_items=100)] = ()


@dataclass(frozen=True)
class QuietHoursResult(Record):
    """My quiet hours (null: none), whether it is inside them now, and until when."""

    quiet_hours: QuietHours | None = None
    active: bool = False
    until: float = 0.0


@dataclass(frozen=True)
class QuietHoursSet(Request):
    """Set my quiet hours, kept by the server: inside them I am on a break (as with
    `set_presence`) unless I choose a status during the window. `off`, or `start` equal to
    `end`, clears them; `tz` defaults to the server's time zone, `days` to every day."""

    TYPE = "quiet_hours_set"
    IDEMPOTENT = True
    RESULT = QuietHoursResult
    start: ClockTime = ""
    end: ClockTime = ""
    tz: Annotated[str, Bound(max_len=64)] = ""
    days: Annotated[tuple[Day, ...], Bound(max_items=7)] = ()
    urgent_from: Annotated[tuple[UserName, ...], Bound(max_items=100)] = ()
    off: bool = False


@dataclass(frozen=True)
class QuietHoursGet(Request):
    TYPE = "quiet_hours_get"
    IDEMPOTENT = True
    RESULT = QuietHoursResult


@dataclass(frozen=True)
class Ping(Request):
    TYPE = "ping"
    IDEMPOTENT = True
    RESULT = Empty


@dataclass(frozen=True)
class UserAddResult(Record):
    user: str
    invite: str
    expires: float


@dataclass(frozen=True)
class UserAdd(Request):
    """Create an account, in `departments`, with its one-time enrollment invite. IT admins; a
    department admin only as a plain user inside its own subtree. A `bot` is an account a
    program uses: role `user`, no password, device tokens only."""

    TYPE = "user_add"
    RESULT = UserAddResult
    username: UserName
    display_name: DisplayName
    role: Role = "user"
    departments: Annotated[tuple[int, ...], Bound(max_items=64)] = ()
    bot: bool = False


# -- account lifecycle ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeactivateResult(Record):
    sessions_ended: int
    handed_over: Annotated[tuple[str, ...], Bound(max_items=1000)] = ()


@dataclass(frozen=True)
class UserDeactivate(Request):
    """Deactivate an account: its live sessions end at once, logins are refused, its invites are
    revoked; its messages and archive stay. With `handover`, the successor takes over what the
    departing user held: their direct reports, their department-admin scope, and the policy
    rules that name them. Admins only."""

    TYPE = "user_deactivate"
    IDEMPOTENT = True
    RESULT = DeactivateResult
    user: UserName
    handover: Annotated[str, Bound(max_len=64)] = ""


@dataclass(frozen=True)
class UserReactivate(Request):
    """Let a deactivated account log in again with its devices that were not revoked. Admins only."""

    TYPE = "user_reactivate"
    IDEMPOTENT = True
    RESULT = Empty
    user: UserName


@dataclass(frozen=True)
class InviteReissue(Request):
    """A new one-time invite for an existing account, revoking its unused ones; redeeming it sets a
    new password (an admin's password reset). Admins only."""

    TYPE = "invite_reissue"
    RESULT = UserAddResult
    user: UserName


@dataclass(frozen=True)
class InviteInfo(Record):
    user: str
    created: float
    expires: float


@dataclass(frozen=True)
class InviteListResult(Record):
    invites: Annotated[tuple[InviteInfo, ...], Bound(max_items=100_000)]


@dataclass(frozen=True)
class InviteList(Request):
    """Invites not yet redeemed and not expired, oldest first (one user's, or everyone's)."""

    TYPE = "invite_list"
    IDEMPOTENT = True
    RESULT = InviteListResult
    user: Annotated[str, Bound(max_len=64)] = ""


@dataclass(frozen=True)
class InviteRevokeResult(Record):
    revoked: int


@dataclass(frozen=True)
class InviteRevoke(Request):
    """Make a user's unused invites unusable at once."""

    TYPE = "invite_revoke"
    IDEMPOTENT = True
    RESULT = InviteRevokeResult
    user: UserName


@dataclass(frozen=True)
class DeviceInfo(Record):
    id: int
    name: str
    created: float
    revoked: bool


@dataclass(frozen=True)
class DeviceListResult(Record):
    devices: Annotated[tuple[DeviceInfo, ...], Bound(max_items=1000)]


@dataclass(frozen=True)
class DeviceList(Request):
    """The devices of a user: one's own, or anyone's for admins."""

    TYPE = "device_list"
    IDEMPOTENT = True
    RESULT = DeviceListResult
    user: UserName


@dataclass(frozen=True)
class DeviceRevoke(Request):
    """Revoke one device's token; its live sessions end at once. One's own, or anyone's for admins."""

    TYPE = "device_revoke"
    IDEMPOTENT = True
    RESULT = Empty
    user: UserName
    device_id: int


# -- directory ------------------------------------------------------------------------------

DeptName = Annotated[str, Bound(min_len=1, max_len=128)]
ProfileText = Annotated[str, Bound(max_len=256)]


@dataclass(frozen=True)
class Department(Record):
    """One node of the org tree; `parent` is None for a top-level department."""

    id: int
    name: str
    parent: int | None


@dataclass(frozen=True)
class Person(Record):
    """A directory entry: who someone is and where they sit; `bot`: a program answers for it."""

    user: str
    display_name: str
    title: str
    departments: tuple[int, ...]
    email: str
    phone: str
    extension: str
    employee_no: str
    manager: str
    active: bool
    bot: bool = False


@dataclass(frozen=True)
class DepartmentAdded(Record):
    id: int


@dataclass(frozen=True)
class DepartmentAdd(Request):
    """Create a department under `parent` (None: top level). Admins only."""

    TYPE = "department_add"
    RESULT = DepartmentAdded
    name: DeptName
    parent: int | None = None


@dataclass(frozen=True)
class ProfileSet(Request):
    """Change someone's directory profile; fields left out (None) stay as they are. Admins only."""

    TYPE = "profile_set"
    IDEMPOTENT = True
    RESULT = Empty
    user: UserName
    title: ProfileText | None = None
    email: ProfileText | None = None
    phone: ProfileText | None = None
    extension: ProfileText | None = None
    employee_no: ProfileText | None = None
    manager: Annotated[str, Bound(max_len=64)] | None = None
    departments: Annotated[tuple[int, ...], Bound(max_items=64)] | None = None


@dataclass(frozen=True)
class DirectorySyncResult(Record):
    """Everything that changed after `since`, paged: call again with `since=version` and the
    returned `view` while `more`. `removed_*` are entries the caller must drop (deleted, or now
    hidden from them). `reset`: the caller's view changed (a policy now hides or shows other
    departments to them), so this answer starts again from version 0 — drop the local copy first."""

    version: int
    more: bool
    people: Annotated[tuple[Person, ...], Bound(max_items=5000)]
    departments: Annotated[tuple[Department, ...], Bound(max_items=5000)]
    view: str = ""
    reset: bool = False
    removed_people: Annotated[tuple[str, ...], Bound(max_items=5000)] = ()
    removed_departments: Annotated[tuple[int, ...], Bound(max_items=5000)] = ()


@dataclass(frozen=True)
class DirectorySync(Request):
    """The directory changes after version `since` (0: everything), as seen by `view` (the
    value the last answer gave)."""

    TYPE = "directory_sync"
    IDEMPOTENT = True
    RESULT = DirectorySyncResult
    since: Seq = 0
    limit: Annotated[int, Bound(min=1, max=5000)] = 2000
    view: Annotated[str, Bound(max_len=128)] = ""


@dataclass(frozen=True)
class DirectorySearchResult(Record):
    people: Annotated[tuple[Person, ...], Bound(max_items=200)]


@dataclass(frozen=True)
class DirectorySearch(Request):
    """Find people by name, pinyin or initials of a Chinese name, username, title or department."""

    TYPE = "directory_search"
    IDEMPOTENT = True
    RESULT = DirectorySearchResult
    query: Annotated[str, Bound(min_len=1, max_len=100)]
    limit: Annotated[int, Bound(min=1, max=200)] = 20


# -- roles and policies -----------------------------------------------------------------------

POLICY_KINDS = ("hide", "restrict_messages", "group_create", "broadcast", "archive_read")
PERMISSIONS = ("see_department", "message", "group_create", "broadcast", "archive_read")
Subject = Annotated[str, Bound(min_len=1, max_len=80)]


@dataclass(frozen=True)
class RoleSet(Request):
    """Give someone a role; a department admin also gets the departments it administers (their
    subtrees). IT admins only."""

    TYPE = "role_set"
    IDEMPOTENT = True
    RESULT = Empty
    user: UserName
    role: Role
    departments: Annotated[tuple[int, ...], Bound(max_items=64)] = ()


@dataclass(frozen=True)
class PolicyRule(Record):
    """One admin-set rule. `subjects` are "everyone", "user:NAME", "department:ID" (with its
    subtree) or "role:ROLE"; `department` None means the whole organisation."""

    kind: Annotated[str, Bound(choices=POLICY_KINDS)]
    department: int | None
    subjects: Annotated[tuple[Subject, ...], Bound(max_items=256)]


@dataclass(frozen=True)
class PolicySet(PolicyRule, Request):
    """Create or replace the rule of this kind for this department. IT admins only."""

    TYPE = "policy_set"
    IDEMPOTENT = True
    RESULT = Empty


@dataclass(frozen=True)
class PolicyRemove(Request):
    """Remove the rule of this kind for this department. IT admins only."""

    TYPE = "policy_remove"
    RESULT = Empty
    kind: Annotated[str, Bound(choices=POLICY_KINDS)]
    department: int | None = None


@dataclass(frozen=True)
class PolicyListResult(Record):
    rules: Annotated[tuple[PolicyRule, ...], Bound(max_items=10_000)]


@dataclass(frozen=True)
class PolicyList(Request):
    """Every rule, by kind and department."""

    TYPE = "policy_list"
    IDEMPOTENT = True
    RESULT = PolicyListResult


@dataclass(frozen=True)
class PolicyCheckResult(Record):
    allowed: bool
    reason: str


@dataclass(frozen=True)
class PolicyCheck(Request):
    """Would the policy let `user` do `permission` — to `target` (a username, for "message") or
    on `department` (None: the whole organisation)? Explains which rule decides."""

    TYPE = "policy_check"
    IDEMPOTENT = True
    RESULT = PolicyCheckResult
    user: UserName
    permission: Annotated[str, Bound(choices=PERMISSIONS)]
    target: Annotated[str, Bound(max_len=64)] = ""
    department: int | None = None


# -- the admin log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminLogEntry(Record):
    """One administrative action; `details` is a JSON object: what it set, and `before` where
    it replaced something."""

    seq: int
    ts: float
    actor: str
    action: str
    details: str


@dataclass(frozen=True)
class AdminLogResult(Record):
    entries: Annotated[tuple[AdminLogEntry, ...], Bound(max_items=1000)]
    more: bool


@dataclass(frozen=True)
class AdminLog(Request):
    """Administrative actions after archive entry `after`, oldest first; optionally only one
    actor's. IT admins and auditors."""

    TYPE = "admin_log"
    IDEMPOTENT = True
    RESULT = AdminLogResult
    after: Seq = 0
    limit: Annotated[int, Bound(min=1, max=1000)] = 200
    actor: Annotated[str, Bound(max_len=64)] = ""


# -- bulk import and LDAP sync ---------------------------------------------------------------

DeptPath = Annotated[tuple[DeptName, ...], Bound(max_items=32)]


@dataclass(frozen=True)
class ImportPerson(Record):
    """A person as an import source describes them; departments by path from the top, `manager`
    by username, and `role` None leaves an existing user's role alone (new users get "user")."""

    username: UserName
    display_name: DisplayName
    title: ProfileText = ""
    email: ProfileText = ""
    phone: ProfileText = ""
    extension: ProfileText = ""
    employee_no: ProfileText = ""
    departments: Annotated[tuple[DeptPath, ...], Bound(max_items=64)] = ()
    manager: Annotated[str, Bound(max_len=64)] = ""
    role: Annotated[str, Bound(choices=ROLES)] | None = None
    active: bool = True


@dataclass(frozen=True)
class IssuedInvite(Record):
    user: str
    invite: str


@dataclass(frozen=True)
class ImportResult(Record):
    """What an import or sync did (or, for a dry run, would do). `changes` lists them in words,
    at most 5,000; `omitted` counts the rest."""

    applied: bool
    staged: int
    created: int = 0
    updated: int = 0
    moved: int = 0
    deactivated: int = 0
    reactivated: int = 0
    departments_created: int = 0
    departments_removed: int = 0
    changes: Annotated[tuple[str, ...], Bound(max_items=5000)] = ()
    omitted: int = 0
    warnings: Annotated[tuple[str, ...], Bound(max_items=5000)] = ()
    invites: Annotated[tuple[IssuedInvite, ...], Bound(max_items=100_000)] = ()


@dataclass(frozen=True)
class DirectoryImport(Request):
    """Stage people and departments (send as many batches as needed, on one connection), then
    `final=True` with `total` (people plus departments in all batches) checks all of them and
    applies them in one transaction, or with `dry_run` only reports what would change. Nothing
    is applied if any row is bad or a batch went missing. IT admins only."""

    TYPE = "directory_import"
    RESULT = ImportResult
    people: Annotated[tuple[ImportPerson, ...], Bound(max_items=5000)] = ()
    departments: Annotated[tuple[DeptPath, ...], Bound(max_items=5000)] = ()
    final: bool = False
    total: Annotated[int, Bound(min=0, max=1_000_000)] = 0
    dry_run: bool = False
    invites: bool = False


@dataclass(frozen=True)
class LdapSync(Request):
    """Read the LDAP/AD directory configured in `[ldap]` and apply it: create, update, move and
    deactivate people, create and remove departments. IT admins only."""

    TYPE = "ldap_sync"
    IDEMPOTENT = True
    RESULT = ImportResult
    dry_run: bool = False
    invites: bool = False


# -- recall and edit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recall(Request):
    """Take back one of my messages within `limits.recall_window` seconds (a group's owner and
    admins may recall any message in it, at any time). Everyone in the conversation gets a
    `recall` message; the archive keeps the original and records the recall."""

    TYPE = "recall"
    IDEMPOTENT = True
    RESULT = SendResult
    conversation: Annotated[int, Bound(min=1, max=2**62)]
    seq: Seq


@dataclass(frozen=True)
class Edit(Request):
    """Change the text of one of my messages within `limits.recall_window` seconds. Everyone in
    the conversation gets an `edit` message with the new text; the archive keeps both."""

    TYPE = "edit"
    RESULT = SendResult
    conversation: Annotated[int, Bound(min=1, max=2**62)]
    seq: Seq
    text: Text


# -- read receipts, unread counts, typing -------------------------------------------------------


@dataclass(frozen=True)
class MarkRead(Request):
    """I have read `conversation` up to `seq` (marks only move forward). My other devices hear
    it (so unread counts agree), and in a 1:1 conversation so does the other person."""

    TYPE = "mark_read"
    IDEMPOTENT = True
    RESULT = Empty
    conversation: Annotated[int, Bound(min=1, max=2**62)]
    seq: Seq


@dataclass(frozen=True)
class DeliveredMark(Record):
    conversation: Annotated[int, Bound(min=1, max=2**62)]
    seq: Seq


@dataclass(frozen=True)
class MarkDelivered(Request):
    """A device of mine has received these conversations up to these messages and shown them
    to me (marks only move forward). In a 1:1 conversation the other person hears it: their
    message is delivered, not yet read. Client libraries send it in batches."""

    TYPE = "mark_delivered"
    IDEMPOTENT = True
    RESULT = Empty
    marks: Annotated[tuple[DeliveredMark, ...], Bound(max_items=1000)]


@dataclass(frozen=True)
class UnreadCount(Record):
    conversation: int
    unread: int
    last_seq: int
    read_seq: int


@dataclass(frozen=True)
class UnreadResult(Record):
    conversations: Annotated[tuple[UnreadCount, ...], Bound(max_items=10_000)]


@dataclass(frozen=True)
class Unread(Request):
    """My conversations with messages from others that I have not read, and how many."""

    TYPE = "unread"
    IDEMPOTENT = True
    RESULT = UnreadResult


@dataclass(frozen=True)
class ReadReceiptsResult(Record):
    read: Annotated[tuple[str, ...], Bound(max_items=5000)]
    unread: Annotated[tuple[str, ...], Bound(max_items=5000)]
    delivered: Annotated[tuple[str, ...], Bound(max_items=5000)] = ()  # of `unread`, those it reached


@dataclass(frozen=True)
class ReadReceipts(Request):
    """Who among the other members has read message `seq` of a conversation I am in, and who not."""

    TYPE = "read_receipts"
    IDEMPOTENT = True
    RESULT = ReadReceiptsResult
    conversation: Annotated[int, Bound(min=1, max=2**62)]
    seq: Seq


@dataclass(frozen=True)
class Typing(Request):
    """I am typing to `to` (1:1); they hear it at once, nothing is stored. Send it again every
    few seconds while typing."""

    TYPE = "typing"
    IDEMPOTENT = True
    RESULT = Empty
    to: UserName


# -- broadcast notices --------------------------------------------------------------------------

Departments = Annotated[tuple[int, ...], Bound(max_items=256)]


@dataclass(frozen=True)
class NoticeSent(Record):
    id: int
    recipients: int
    duplicate: bool = False


@dataclass(frozen=True)
class NoticeSend(Request):
    """Send a notice to everyone in `departments` (with their sub-departments) and to `users`,
    or to everyone with `everyone`; who may send where is the policy's `broadcast` rules.
    Recipients are fixed when it is sent; those offline find it in their inbox. A repeated
    `msg_id` returns the first."""

    TYPE = "notice_send"
    IDEMPOTENT = True
    RESULT = NoticeSent
    msg_id: MessageId
    title: Annotated[str, Bound(min_len=1, max_len=200)]
    text: Text
    departments: Departments = ()
    everyone: bool = False
    users: Annotated[tuple[UserName, ...], Bound(max_items=1000)] = ()


@dataclass(frozen=True)
class NoticeInfo(Record):
    id: int
    sender: str
    title: str
    text: str
    ts: float
    read: bool


@dataclass(frozen=True)
class NoticeInboxResult(Record):
    notices: Annotated[tuple[NoticeInfo, ...], Bound(max_items=500)]


@dataclass(frozen=True)
class NoticeInbox(Request):
    """Notices sent to me, newest first (only the unread ones with `unread`)."""

    TYPE = "notice_inbox"
    IDEMPOTENT = True
    RESULT = NoticeInboxResult
    unread: bool = False
    limit: Annotated[int, Bound(min=1, max=500)] = 50


@dataclass(frozen=True)
class NoticeRead(Request):
    """I have read `notice`; its sender's live count goes up."""

    TYPE = "notice_read"
    IDEMPOTENT = True
    RESULT = Empty
    notice: Annotated[int, Bound(min=1, max=2**62)]


@dataclass(frozen=True)
class NoticeStatusResult(Record):
    id: int
    recipients: int
    read: int
    unread_by: Annotated[tuple[str, ...], Bound(max_items=5000)]
    more_unread: int


@dataclass(frozen=True)
class NoticeStatus(Request):
    """How many have read a notice I sent, and who has not yet (the first 5,000 by name)."""

    TYPE = "notice_status"
    IDEMPOTENT = True
    RESULT = NoticeStatusResult
    notice: Annotated[int, Bound(min=1, max=2**62)]


# -- groups ---------------------------------------------------------------------------------

GroupName = Annotated[str, Bound(min_len=1, max_len=128)]
GroupId = Annotated[int, Bound(min=1, max=2**62)]
Members = Annotated[tuple[UserName, ...], Bound(max_items=5000)]
Notice = Annotated[str, Bound(max_len=4000)]


@dataclass(frozen=True)
class GroupInfo(Record):
    """A group as its members see it. `announcement_read_by` is filled in for its owner and
    admins only."""

    id: int
    name: str
    owner: str
    admins: tuple[str, ...]
    members: Annotated[tuple[str, ...], Bound(max_items=5000)]
    welcome: str
    announcement: str
    announcement_by: str
    announcement_ts: float
    announcement_read_by: Annotated[tuple[str, ...], Bound(max_items=5000)]
    created: float
    dissolved: bool = False
    department: int | None = None


@dataclass(frozen=True)
class GroupCreate(Request):
    """Create a group (where policy allows) with its first members; the creator owns it."""

    TYPE = "group_create"
    RESULT = GroupInfo
    name: GroupName
    members: Members = ()
    welcome: Notice = ""


@dataclass(frozen=True)
class DepartmentGroupCreate(Request):
    """Create a department's group (IT admins; department admins for their departments): its
    members are the active people of the department and of the departments below it, and they
    follow the directory from then on — people who join the department join the group, people
    who leave it or are deactivated leave. `owner` runs the group and is always in it; `name`
    defaults to the department's."""

    TYPE = "department_group_create"
    RESULT = GroupInfo
    department: Annotated[int, Bound(min=1, max=2**62)]
    owner: UserName
    name: Annotated[str, Bound(max_len=128)] = ""
    welcome: Notice = ""


@dataclass(frozen=True)
class GroupSummary(Record):
    id: int
    name: str
    members: int
    role: str


@dataclass(frozen=True)
class GroupListResult(Record):
    groups: Annotated[tuple[GroupSummary, ...], Bound(max_items=10_000)]


@dataclass(frozen=True)
class GroupList(Request):
    """The groups I am in, by name, with my role in each (owner, admin or member)."""

    TYPE = "group_list"
    IDEMPOTENT = True
    RESULT = GroupListResult


@dataclass(frozen=True)
class GroupGet(Request):
    """One of my groups."""

    TYPE = "group_get"
    IDEMPOTENT = True
    RESULT = GroupInfo
    group: GroupId


@dataclass(frozen=True)
class GroupMembersAdd(Request):
    """Add members (owner and admins); each sees the group's messages from here on."""

    TYPE = "group_members_add"
    IDEMPOTENT = True
    RESULT = Empty
    group: GroupId
    users: Annotated[tuple[UserName, ...], Bound(max_items=5000)]


@dataclass(frozen=True)
class GroupMembersRemove(Request):
    """Remove members (the owner anyone, admins plain members)."""

    TYPE = "group_members_remove"
    IDEMPOTENT = True
    RESULT = Empty
    group: GroupId
    users: Annotated[tuple[UserName, ...], Bound(max_items=5000)]


GROUP_ROLES = ("member", "admin", "owner")


@dataclass(frozen=True)
class GroupRoleSet(Request):
    """The owner makes a member an admin or a member again, or hands the group over ("owner";
    the old owner stays as an admin)."""

    TYPE = "group_role_set"
    RESULT = Empty
    group: GroupId
    user: UserName
    role: Annotated[str, Bound(choices=GROUP_ROLES)]


@dataclass(frozen=True)
class GroupUpdate(Request):
    """Rename the group or change its welcome message (owner and admins); None leaves it."""

    TYPE = "group_update"
    IDEMPOTENT = True
    RESULT = Empty
    group: GroupId
    name: GroupName | None = None
    welcome: Notice | None = None


@dataclass(frozen=True)
class GroupAnnounce(Request):
    """Pin an announcement (owner and admins; "" removes it); members are told in the group."""

    TYPE = "group_announce"
    RESULT = Empty
    group: GroupId
    text: Notice


@dataclass(frozen=True)
class GroupAnnouncementRead(Request):
    """I have read the group's current announcement."""

    TYPE = "group_announcement_read"
    IDEMPOTENT = True
    RESULT = Empty
    group: GroupId


@dataclass(frozen=True)
class GroupLeave(Request):
    """Leave a group (an owner hands it over first, or dissolves it)."""

    TYPE = "group_leave"
    RESULT = Empty
    group: GroupId


@dataclass(frozen=True)
class GroupDissolve(Request):
    """End a group (its owner): nobody can send to it any more; its archive stays."""

    TYPE = "group_dissolve"
    RESULT = Empty
    group: GroupId


@dataclass(frozen=True)
class GroupSend(Request):
    """Send to a group; stored durably before the answer, delivered to every member once. With
    `file`, a `file` message whose `text` is the file's name (as for `send`)."""

    TYPE = "group_send"
    IDEMPOTENT = True
    RESULT = SendResult
    group: GroupId
    msg_id: MessageId
    text: Text
    file: FileId | None = None


@dataclass(frozen=True)
class GroupHistory(Request):
    """A group's messages that I may see (from when I joined), oldest first."""

    TYPE = "group_history"
    IDEMPOTENT = True
    RESULT = HistoryResult
    group: GroupId
    before: Seq | None = None
    after: Seq | None = None
    limit: Annotated[int, Bound(min=1, max=1000)] = 50


# -- files ---------------------------------------------------------------------------------------

FileSize = Annotated[int, Bound(min=0, max=2**53)]


@dataclass(frozen=True)
class UploadResult(Record):
    """Where an upload stands: the next byte the server wants is `offset`; once `complete`, the
    content is stored under its id and can be sent with `send`/`group_send`."""

    upload: int
    offset: int
    size: int
    complete: bool


@dataclass(frozen=True)
class FileUpload(Request):
    """Start an upload, or find the one I began earlier for the same content (resume): the
    server answers with the offset it has. Content I can already see needs no upload."""

    TYPE = "file_upload"
    IDEMPOTENT = True
    RESULT = UploadResult
    sha256: FileId
    size: FileSize


@dataclass(frozen=True)
class FileChunk(Request):
    """Bytes of an upload from `offset`, which must not be past what the server has. The chunk
    that completes the file is answered after its SHA-256 is checked and it is stored durably."""

    TYPE = "file_chunk"
    IDEMPOTENT = True
    RESULT = UploadResult
    upload: int
    offset: FileSize
    data: Annotated[bytes, Bound(min_len=1, max_len=CHUNK_BYTES)]


@dataclass(frozen=True)
class FileData(Record):
    offset: int
    size: int
    data: Annotated[bytes, Bound(max_len=CHUNK_BYTES)]


@dataclass(frozen=True)
class FileGet(Request):
    """Up to `length` bytes of a file I can see (or of its thumbnail) from `offset`: download
    with resume is asking from the offset one has."""

    TYPE = "file_get"
    IDEMPOTENT = True
    RESULT = FileData
    file: FileId
    offset: FileSize = 0
    length: Annotated[int, Bound(min=1, max=CHUNK_BYTES)] = CHUNK_BYTES
    thumbnail: bool = False


@dataclass(frozen=True)
class FileInfo(Request):
    """What a file I can see is: its size, type, picture size, and the name of the latest
    message I can see that carries it."""

    TYPE = "file_info"
    IDEMPOTENT = True
    RESULT = FileRef
    file: FileId


@dataclass(frozen=True)
class MessageEvent(ChatMessage, Event):
    """A new message in one of my conversations (also sent to my other devices)."""

    TYPE = "message"


@dataclass(frozen=True)
class ReadEvent(Event):
    """`user` has read `conversation` up to `seq` (sent to their own other devices, and to the
    other person of a 1:1 conversation)."""

    TYPE = "read"
    conversation: int
    user: str
    seq: int


@dataclass(frozen=True)
class TypingEvent(Event):
    """`user` is typing to me."""

    TYPE = "typing"
    user: str


@dataclass(frozen=True)
class NoticeEvent(NoticeInfo, Event):
    """A notice for me (live, or on connecting while I have unread ones)."""

    TYPE = "notice"


@dataclass(frozen=True)
class DeliveredEvent(Event):
    """`user` has received `conversation` up to `seq` on a device (sent to the other person of a
    1:1 conversation)."""

    TYPE = "delivered"
    conversation: int
    user: str
    seq: int


@dataclass(frozen=True)
class NoticeReadEvent(Event):
    """To a notice's sender: one more recipient read it."""

    TYPE = "notice_read"
    id: int
    user: str
    read: int
    recipients: int


@dataclass(frozen=True)
class ResyncEvent(Event):
    """Sync now: messages were held while I was on a break, and the break is over."""

    TYPE = "resync"


@dataclass(frozen=True)
class PresenceEvent(PresenceInfo, Event):
    """A contact's presence changed."""

    TYPE = "presence"


REQUESTS: dict[str, type[Request]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Login,
        Enroll,
        Send,
        Sync,
        History,
        SetPresence,
        QueryPresence,
        QuietHoursSet,
        QuietHoursGet,
        Ping,
        UserAdd,
        DepartmentAdd,
        ProfileSet,
        DirectorySync,
        DirectorySearch,
        UserDeactivate,
        UserReactivate,
        InviteReissue,
        DeviceList,
        DeviceRevoke,
        InviteList,
        InviteRevoke,
        RoleSet,
        PolicySet,
        PolicyRemove,
        PolicyList,
        PolicyCheck,
        AdminLog,
        DirectoryImport,
        LdapSync,
        GroupCreate,
        DepartmentGroupCreate,
        GroupList,
        GroupGet,
        GroupMembersAdd,
        GroupMembersRemove,
        GroupRoleSet,
        GroupUpdate,
        GroupAnnounce,
        GroupAnnouncementRead,
        GroupLeave,
        GroupDissolve,
        GroupSend,
        GroupHistory,
        MarkRead,
        MarkDelivered,
        Unread,
        ReadReceipts,
        Typing,
        Recall,
        Edit,
        NoticeSend,
        NoticeInbox,
        NoticeRead,
        NoticeStatus,
        FileUpload,
        FileChunk,
        FileGet,
        FileInfo,
        *audit.REQUESTS,
        *integrations.REQUESTS,
        *ops.REQUESTS,
    )
}
EVENTS: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (MessageEvent, PresenceEvent, ReadEvent, DeliveredEvent, TypingEvent, NoticeEvent, NoticeReadEvent, ResyncEvent)
}
