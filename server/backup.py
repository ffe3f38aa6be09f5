"""Consistent online backups of a data dir, and restoring one into a new data dir.

How a backup works, and why in this order:

1. **The database**, through SQLite's online backup API from a read-only connection. The copy
   runs inside one read transaction, which pins one snapshot: everything committed before it
   began is in it, nothing committed later is, and the server keeps serving and committing
   meanwhile (a WAL reader never blocks the writer). Without the pinned snapshot, each step of
   the copy would see the server's newer commits and start over, forever under load. The copy
   is switched out of WAL mode so the backup is one self-contained file.
2. **Then the files**: `corridor.toml`, `tls/` (keys included), any other file the config names
   inside the data dir, and the file store's contents and thumbnails. Contents are immutable and
   named by their SHA-256, and a content reaches its path before the row naming it commits
   (`features/files/blobs.py`), so every content the snapshot references exists when it is
   listed — after the snapshot. Uploads in progress, the control socket and lock files are not
   data and are left out.
3. **`MANIFEST.json`** lists every file with its size and SHA-256, the schema migrations the
   snapshot holds, when and from where it was taken.

Everything is written into `OUT.part`, fsynced, and renamed to `OUT` only when complete, so a
backup that exists is whole; `OUT` is never overwritten. A restore checks every file against the
manifest while copying it into `NEWDIR.part`, runs `PRAGMA integrity_check`, refuses a database
holding migrations this code does not know, and renames `NEWDIR.part` to `NEWDIR` last.
Every directory written is 0700 and every file 0600: a backup holds all messages and the CA key.

All of it is blocking I/O, for the command line (`backup_cli.py`, `restore_cli.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath

from .config import CONFIG_NAME, Config, ConfigError, load_config
from .storage.durable import fsync_dir

FORMAT = 1
MANIFEST = "MANIFEST.json"
DATABASE = "corridor.sqlite"
# The subtrees of the file store that are data (`files/uploads/` holds unfinished uploads only).
STORE_TREES = ("files/sha256", "files/thumbnails")
PAGES_PER_STEP = 1024
COPY_BLOCK = 1024 * 1024
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")

# progress(what, done, total): bytes of the database copy, then of the files.
Progress = Callable[[str, int, int], None]


class BackupError(RuntimeError):
    """The backup or restore cannot be done as asked (bad arguments, not a data dir, a target
    that exists, a backup this version cannot use)."""


class DamagedBackup(RuntimeError):
    """A backup's file is missing or is not what its manifest says."""


@dataclass(frozen=True)
class BackupResult:
    """What a backup saved. `damaged`: contents whose bytes no longer match their name on the
    source disk (backed up as they are); `vanished`: contents deleted (by retention) between
    the snapshot and their copy; `not_included`: files the config names outside the data dir."""

    backup: str
    source: str
    files: int
    bytes: int
    database_bytes: int
    migrations: int
    seconds: float
    damaged: tuple[str, ...]
    vanished: tuple[str, ...]
    not_included: tuple[str, ...]


@dataclass(frozen=True)
class RestoreResult:
    """What a restore wrote. `pending_migrations`: what `corridor serve` will apply at start;
    `not_included`: the files outside the data dir that the backup could not hold."""

    data_dir: str
    backup: str
    source: str
    created: str
    files: int
    bytes: int
    database_bytes: int
    migrations: int
    pending_migrations: int
    not_included: tuple[str, ...]
    seconds: float


def format_size(size: int) -> str:
    """Bytes in words people read: `512 B`, `280.0 KiB`, `1.2 GiB`."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {UNITS[unit]}"


def _staging(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _refuse_existing(target: Path) -> Path:
    """`target`'s staging dir, after checking that neither it nor the staging dir exists."""
    if target.exists():
        raise BackupError(f"{target} exists; choose a new name (nothing is ever overwritten)")
    staging = _staging(target)
    if staging.exists():
        raise BackupError(f"{staging} exists, left by a run that did not finish; remove it first")
    return staging


def _make_dirs(path: Path) -> None:
    """Create `path` and its missing parents, each 0700 (`mkdir(parents=True)` ignores the mode)."""
    if not path.is_dir():
        _make_dirs(path.parent)
        path.mkdir(mode=0o700, exist_ok=True)


def _finish(staging: Path, target: Path) -> None:
    """Make the staging dir durable, then give it its final name."""
    for dirpath, _, _ in os.walk(staging, topdown=False):
        fsync_dir(Path(dirpath))
    os.rename(staging, target)
    fsync_dir(target.parent)


def _copy(source: Path, target: Path, tick: Callable[[int], None]) -> tuple[int, str]:
    """Copy one file, private and fsynced; returns the size and SHA-256 of the bytes copied."""
    _make_dirs(target.parent)
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as src, os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
        while block := src.read(COPY_BLOCK):
            digest.update(block)
            dst.write(block)
            size += len(block)
            tick(len(block))
        dst.flush()
        os.fsync(dst.fileno())
    return size, digest.hexdigest()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _migrations(conn: sqlite3.Connection, what: str) -> list[str]:
    try:
        return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY rowid")]
    except sqlite3.OperationalError as exc:
        raise BackupError(f"{what} is not a Corridor database ({exc})") from None


def snapshot(source: Path, target: Path, progress: Progress) -> list[str]:
    """Copy the database as of one moment into `target`; returns the migrations it holds."""
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private before it holds anything
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.execute("BEGIN")
        migrations = _migrations(src, str(source))  # the first read fixes the snapshot the copy sees
        (page_size,) = src.execute("PRAGMA page_size").fetchone()

        def step(_status: int, remaining: int, total: int) -> None:
            progress("database", (total - remaining) * page_size, total * page_size)

        src.backup(dst, pages=PAGES_PER_STEP, progress=step)
        src.execute("ROLLBACK")
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    return migrations


def _tree(root: Path, top: str) -> list[str]:
    """Regular files under `root/top` (symlinks are never followed), relative, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root / top):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return found


def _named_by_config(config: Config) -> tuple[list[str], list[str]]:
    """The files the config names: those inside the data dir (relative), and, in words, those
    outside it, which a backup of the data dir cannot hold."""
    named = {
        "tls.ca": config.tls.ca,
        "tls.certificate": config.tls.certificate,
        "tls.key": config.tls.key,
        "ldap.ca_file": config.ldap.ca_file,
        "ldap.bind_password_file": config.ldap.bind_password_file,
    }
    inside, outside = [], []
    for key, value in named.items():
        if not value:
            continue
        path = config.path(value).resolve()
        if not path.is_relative_to(config.data_dir):
            outside.append(f"{path} ({key})")
        elif path.is_file():
            inside.append(path.relative_to(config.data_dir).as_posix())
    return inside, outside


def _corridor_version() -> str:
    try:
        return version("corridor")
    except PackageNotFoundError:
        return "unknown"


def take_backup(data_dir: Path, out: Path, progress: Progress | None = None) -> BackupResult:
    """Back up a data dir (its server may be running) into the new directory `out`."""
    started = time.perf_counter()
    progress = progress or (lambda *_: None)
    config = load_config(data_dir)
    source = config.data_dir
    if not config.database_path.is_file():
        raise BackupError(f"{config.database_path} does not exist: is {data_dir} a data dir made by 'corridor init'?")
    out = out.absolute()
    if out.resolve().is_relative_to(source):
        raise BackupError(f"{out} is inside the data dir {source}; keep backups elsewhere, ideally on another disk")
    staging = _refuse_existing(out)
    _make_dirs(staging)
    try:
        migrations = snapshot(config.database_path, staging / DATABASE, progress)
        entries = [{"path": DATABASE, "size": (staging / DATABASE).stat().st_size, "sha256": _hash(staging / DATABASE)}]
        inside, outside = _named_by_config(config)
        names = [CONFIG_NAME, *_tree(source, "tls"), *inside, *(name for top in STORE_TREES for name in _tree(source, top))]
        names = [name for name in dict.fromkeys(names) if name not in (DATABASE, MANIFEST)]  # never copied: written here
        total = sum(_size(source / name) for name in names)
        done = 0

        def tick(size: int) -> None:
            nonlocal done
            done += size
            progress("files", done, total)

        damaged, vanished = [], []
        for name in names:
            try:
                size, sha256 = _copy(source / name, staging / name, tick)
            except FileNotFoundError:
                if not name.startswith(STORE_TREES):
                    raise
                # Only the retention purge deletes from the store, after its commit: the content
                # was erased after the snapshot was taken.
                vanished.append(name)
                continue
            if name.startswith("files/sha256/") and sha256 != PurePosixPath(name).name:
                damaged.append(name)
            entries.append({"path": name, "size": size, "sha256": sha256})
        now = time.time()
        manifest = {
            "format": FORMAT,
            "corridor": _corridor_version(),
            "created": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            "created_unix": now,
            "source": str(source),
            "organisation": config.organisation.name,
            "database": DATABASE,
            "migrations": migrations,
            "not_included": outside,
            "files": entries,
        }
        with os.fdopen(os.open(staging / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        _finish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BackupResult(
        backup=str(out),
        source=str(source),
        files=len(entries),
        bytes=sum(e["size"] for e in entries),
        database_bytes=entries[0]["size"],
        migrations=len(migrations),
        seconds=round(time.perf_counter() - started, 3),
        damaged=tuple(damaged),
        vanished=tuple(vanished),
        not_included=tuple(outside),
    )


def _safe_path(name: object) -> str:
    """A manifest path that stays inside the new data dir, or DamagedBackup."""
    path = PurePosixPath(name) if isinstance(name, str) else None
    if path is None or path.is_absolute() or path.as_posix() != name or any(p in ("..", ".") for p in path.parts):
        raise DamagedBackup(f"{MANIFEST} names an unsafe path {name!r}")
    return name


def read_manifest(backup: Path) -> dict:
    """A backup's manifest, checked for shape (not yet against the files)."""
    path = backup / MANIFEST
    if not backup.is_dir():
        raise BackupError(f"{backup} is not a directory (a backup is the directory 'corridor backup' made)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{backup} has no {MANIFEST}: not a backup made by 'corridor backup'") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedBackup(f"{path} is damaged: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise DamagedBackup(f"{path} is damaged: it has no format number")
    if manifest["format"] > FORMAT:
        raise BackupError(
            f"{backup} has backup format {manifest['format']}, newer than this Corridor's ({FORMAT}); restore it with a newer Corridor"
        )
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(e, dict) and isinstance(e.get("size"), int) and SHA256_HEX.fullmatch(str(e.get("sha256"))) for e in files
    ):
        raise DamagedBackup(f"{path} is damaged: its file list is not a list of path, size and sha256")
    names = [_safe_path(e.get("path")) for e in files]
    if len(set(names)) != len(names):
        raise DamagedBackup(f"{path} is damaged: it lists a file twice")
    for needed in (DATABASE, CONFIG_NAME):
        if needed not in names:
            raise DamagedBackup(f"{path} is damaged: it does not list {needed}")
    return manifest


def _check_database(path: Path, known: Iterable[str]) -> tuple[int, int]:
    """Integrity and schema of a restored database: (migrations it holds, migrations pending)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check(10)")]
        if problems != ["ok"]:
            raise DamagedBackup(f"{DATABASE} fails PRAGMA integrity_check: {'; '.join(problems)}")
        applied = _migrations(conn, f"the backup's {DATABASE}")
    except sqlite3.DatabaseError as exc:  # "file is not a database", "disk image is malformed"
        raise DamagedBackup(f"{DATABASE} is damaged: {exc}") from None
    finally:
        conn.close()
    known = list(known)
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise BackupError(
            f"the backup's database was written by a newer Corridor (unknown migrations: {', '.join(unknown)}); "
            "restore it with that version or a newer one"
        )
    return len(applied), len(set(known) - set(applied))


def restore_backup(
    backup: Path, new_dir: Path, known_migrations: Iterable[str], progress: Progress | None = None
) -> RestoreResult:
    """Check a backup against its manifest and restore it into the new data dir `new_dir`;
    `known_migrations` are the migration names this Corridor knows (`app.MIGRATIONS`)."""
    started = time.perf_counter()
    progress = progress or (lambda *_: None)
    manifest = read_manifest(backup)
    new_dir = new_dir.absolute()
    staging = _refuse_existing(new_dir)
    entries = manifest["files"]
    total, done = sum(e["size"] for e in entries), 0

    def tick(size: int) -> None:
        nonlocal done
        done += size
        progress("restoring", done, total)

    def restore(entry: dict) -> None:
        name = entry["path"]
        try:
            size, sha256 = _copy(backup / name, staging / name, tick)
        except FileNotFoundError:
            raise DamagedBackup(f"{name} is missing from the backup {backup}") from None
        if size != entry["size"]:
            raise DamagedBackup(f"{name} is damaged: it has {size:,} bytes, the manifest says {entry['size']:,}")
        if sha256 != entry["sha256"]:
            raise DamagedBackup(f"{name} is damaged: its SHA-256 is {sha256}, the manifest says {entry['sha256']}")

    database = next(e for e in entries if e["path"] == DATABASE)
    _make_dirs(staging)
    try:
        # The database first: a backup this version cannot use is refused before the files are copied.
        restore(database)
        migrations, pending = _check_database(staging / DATABASE, known_migrations)
        for entry in entries:
            if entry is not database:
                restore(entry)
        try:
            load_config(backup)  # the same bytes as the copy, by now, and the message names the backup's file
        except ConfigError as exc:
            raise BackupError(f"the backup's {CONFIG_NAME} cannot be used by this Corridor: {exc}") from None
        _finish(staging, new_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RestoreResult(
        data_dir=str(new_dir),
        backup=str(backup.absolute()),
        source=str(manifest.get("source", "")),
        created=str(manifest.get("created", "")),
        files=len(entries),
        bytes=total,
        database_bytes=database["size"],
        migrations=migrations,
        pending_migrations=pending,
        not_included=tuple(str(name) for name in manifest.get("not_included", ())),
        seconds=round(time.perf_counter() - started, 3),
    )
