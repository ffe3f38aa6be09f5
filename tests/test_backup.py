"""`corridor backup` and `corridor restore` as IT admins run them: real `corridor serve`
processes on loopback, real SQLite files, a backup taken while messages keep arriving."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import trio
from PIL import Image

from corridor.client.client import Client
from corridor.client.profile import Profile
from corridor.server import backup_cli, restore_cli
from corridor.server.backup import PAGES_PER_STEP

from .cli_helpers import CORRIDOR, RunningServer, employee, free_port, run

# Long messages make a database of several backup steps (`backup.PAGES_PER_STEP`), so the server
# commits between the steps of the copy, not only before and after it.
PADDING = "x" * 3000


async def every_message(client: Client, with_user: str) -> tuple[int, dict[int, str]]:
    """The whole conversation with one person, paging back through `history`: (id, {seq: text})."""
    messages, before, conversation = {}, None, None
    while True:
        page = await client.history(with_user, limit=1000, before=before)
        if not page.messages:
            return conversation, messages
        conversation = page.conversation
        messages.update((m.seq, m.text) for m in page.messages)
        before = page.messages[0].seq


def in_process(capsys, module, *args: str) -> tuple[int, str]:
    """A command's `main()` run in this process (no start-up cost): its exit code and stderr."""
    try:
        code = module.main(list(args))
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    return code, capsys.readouterr().err


def restored_server(data: Path) -> tuple[RunningServer, int]:
    """`corridor serve` on a restored data dir, on its own free port beside the original."""
    port = free_port()
    return RunningServer(data, "--no-advertise", "--listen", f"127.0.0.1:{port}"), port


async def test_a_backup_taken_under_load_restores_every_acknowledged_message(served, tmp_path):
    data, _, _ = served
    profiles = {name: Profile(employee(data, tmp_path, name, name.title())) for name in ("alice", "bob", "carol")}
    acked: list[tuple[int, int, str, float]] = []  # (conversation, seq, text, when the ack arrived)
    backup, restored = tmp_path / "backup", tmp_path / "restored"

    with trio.fail_after(40):
        async with (
            Client.open(profiles["alice"], receive=False) as alice,
            Client.open(profiles["bob"], receive=False) as bob,
        ):
            stop = trio.Event()

            async def keep_sending(client: Client, to: str, tag: str) -> None:
                i = 0
                while not stop.is_set():
                    text = f"{tag} {i} " + PADDING
                    result = await client.send(to, text)
                    acked.append((result.conversation, result.seq, text, time.monotonic()))
                    i += 1

            async with trio.open_nursery() as nursery:
                for client, to, tag in (
                    (alice, "bob", "a→b"),
                    (alice, "carol", "a→c"),
                    (bob, "alice", "b→a"),
                    (bob, "carol", "b→c"),
                ):
                    nursery.start_soon(keep_sending, client, to, tag)
                while len(acked) < 1000:
                    await trio.sleep(0.01)
                started = time.monotonic()
                taken = await trio.run_process(
                    [CORRIDOR, "backup", str(data), str(backup), "--json"], capture_stdout=True, capture_stderr=True, check=False
                )
                finished = time.monotonic()
                stop.set()
    assert taken.returncode == 0, taken.stderr
    report = json.loads(taken.stdout)
    assert report["ok"] and report["migrations"] > 0 and report["backup"] == str(backup)
    assert report["database_bytes"] > 2 * PAGES_PER_STEP * 4096
    before = [a for a in acked if a[3] < started]
    during = [a for a in acked if started <= a[3] < finished]
    assert during, "the server stopped acknowledging while the backup ran"

    restoring = run("restore", str(backup), str(restored), "--json")
    assert restoring.returncode == 0, restoring.stderr
    assert json.loads(restoring.stdout)["start"] == f"corridor serve {restored}"
    server, port = restored_server(restored)
    try:
        with trio.fail_after(20):
            found = {}
            for who, others in (("alice", ("bob", "carol")), ("bob", ("carol",))):
                async with Client.open(profiles[who], receive=False, address=("127.0.0.1", port)) as client:
                    for other in others:
                        conversation, messages = await every_message(client, other)
                        found[conversation] = messages
    finally:
        assert server.stop() == 0
    missing = [(c, s, t) for c, s, t, _ in before if found.get(c, {}).get(s) != t]
    assert missing == []
    for conversation, messages in found.items():  # one snapshot: each conversation a gap-free prefix
        assert sorted(messages) == list(range(1, len(messages) + 1)), conversation
    verified = run("audit", "verify", str(restored), "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"], verified.stdout + verified.stderr
    print(
        f"\nbackup under load: {len(before)} messages acknowledged before the backup started, all found after restore "
        f"({sum(map(len, found.values()))} restored in all; {len(during)} acknowledged while the backup ran, "
        f"{finished - started:.2f} s, database {report['database_bytes'] / 2**20:.1f} MiB)"
    )


def png(size: int) -> bytes:
    """A picture of noise (so Pillow makes a thumbnail of it), `size` pixels square."""
    picture = io.BytesIO()
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(picture, "PNG")
    return picture.getvalue()


def test_a_sent_file_comes_back_bit_identical_and_unfinished_uploads_stay_out(served, tmp_path):
    data, _, _ = served
    alice = employee(data, tmp_path, "alice", "Alice")
    bob = employee(data, tmp_path, "bob", "Bob")
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(300))
    file_id = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert run("file", "send", "bob", str(photo), "--profile", alice).returncode == 0
    (data / "files" / "uploads" / "99.part").write_bytes(b"half an upload")

    backup, restored = tmp_path / "backup", tmp_path / "restored"
    taken = run("backup", str(data), str(backup))
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.startswith(f"backed up {data} to {backup}: ") and " files (" in taken.stdout
    kept = {p.relative_to(backup).as_posix() for p in backup.rglob("*") if p.is_file()}
    assert f"files/sha256/{file_id[:2]}/{file_id}" in kept and f"files/thumbnails/{file_id[:2]}/{file_id}.jpg" in kept
    assert {"corridor.sqlite", "corridor.toml", "tls/ca.key", "tls/server.key", "tls/archive.key", "MANIFEST.json"} <= kept
    assert not [name for name in kept if "uploads" in name or name.endswith(("-wal", "-shm", ".sock", ".lock"))]
    assert {oct(p.stat().st_mode & 0o777) for p in [backup, *backup.rglob("*")]} == {"0o600", "0o700"}
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    assert manifest["source"] == str(data) and "files.0001_initial" in manifest["migrations"]
    assert sorted(e["path"] for e in manifest["files"]) == sorted(kept - {"MANIFEST.json"})

    restoring = run("restore", str(backup), str(restored))
    assert restoring.returncode == 0, restoring.stderr
    assert f"Start the server:  corridor serve {restored}" in restoring.stdout
    assert {oct(p.stat().st_mode & 0o777) for p in [restored, *restored.rglob("*")]} == {"0o600", "0o700"}
    server, port = restored_server(restored)
    try:
        got = run(
            "file", "get", "alice", "1", "--out", str(tmp_path / "got.png"), "--profile", bob, "--server", f"127.0.0.1:{port}"
        )
        assert got.returncode == 0, got.stderr
    finally:
        assert server.stop() == 0
    assert (tmp_path / "got.png").read_bytes() == photo.read_bytes()


def test_a_damaged_backup_is_refused_naming_the_file(data_dir, tmp_path):
    backup = tmp_path / "backup"
    assert run("backup", str(data_dir), str(backup)).returncode == 0  # a stopped server's data dir
    for name in ("tls/server.key", "corridor.sqlite"):
        damaged = tmp_path / f"damaged-{name.replace('/', '-')}"
        shutil.copytree(backup, damaged)
        target = damaged / name
        blob = bytearray(target.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        target.write_bytes(bytes(blob))
        refused = run("restore", str(damaged), str(tmp_path / "new"))
        assert refused.returncode == 1 and f"{name} is damaged" in refused.stderr, refused.stderr
        assert not (tmp_path / "new").exists() and not (tmp_path / "new.part").exists()

    missing = tmp_path / "missing"
    shutil.copytree(backup, missing)
    (missing / "tls" / "ca.pem").unlink()
    refused = run("restore", str(missing), str(tmp_path / "new"))
    assert refused.returncode == 1 and "tls/ca.pem is missing" in refused.stderr, refused.stderr


def test_a_backup_from_a_newer_corridor_is_refused(data_dir, tmp_path):
    backup = tmp_path / "backup"
    assert run("backup", str(data_dir), str(backup)).returncode == 0
    database = backup / "corridor.sqlite"
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('messaging.9999_from_the_future', 0)")
    db.close()
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    for entry in manifest["files"]:  # as a newer Corridor would have written it: consistent
        if entry["path"] == "corridor.sqlite":
            entry.update(size=database.stat().st_size, sha256=hashlib.sha256(database.read_bytes()).hexdigest())
    (backup / "MANIFEST.json").write_text(json.dumps(manifest))
    refused = run("restore", str(backup), str(tmp_path / "new"))
    assert refused.returncode == 2, refused.stderr
    assert "newer Corridor (unknown migrations: messaging.9999_from_the_future)" in refused.stderr
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.part").exists()


def test_nothing_is_overwritten_and_bad_arguments_exit_2(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    refused = run("backup", str(data_dir), str(out))
    assert refused.returncode == 2 and f"{out} exists; choose a new name" in refused.stderr
    assert list(out.iterdir()) == []
    (tmp_path / "left.part").mkdir()
    leftover = run("backup", str(data_dir), str(tmp_path / "left"))
    assert leftover.returncode == 2 and "left.part exists" in leftover.stderr and not (tmp_path / "left").exists()
    inside = run("backup", str(data_dir), str(data_dir / "backup"))
    assert inside.returncode == 2 and "inside the data dir" in inside.stderr

    backup = tmp_path / "backup"
    assert run("backup", str(data_dir), str(backup)).returncode == 0
    taken = tmp_path / "taken"
    taken.mkdir()
    refused = run("restore", str(backup), str(taken))
    assert refused.returncode == 2 and f"{taken} exists; choose a new name" in refused.stderr

    for module, args, message in (
        (backup_cli, (), "the following arguments are required: DIR, OUT"),
        (restore_cli, (str(backup),), "the following arguments are required: NEWDIR"),
        (backup_cli, (str(data_dir), str(tmp_path / "b"), "--force"), "unrecognized arguments: --force"),
        (backup_cli, (str(tmp_path / "nowhere"), str(tmp_path / "b")), "corridor.toml: not found"),
        (restore_cli, (str(data_dir), str(tmp_path / "n")), "has no MANIFEST.json: not a backup made by 'corridor backup'"),
        (restore_cli, (str(tmp_path / "nowhere"), str(tmp_path / "n")), "is not a directory"),
    ):
        code, stderr = in_process(capsys, module, *args)
        assert code == 2 and message in stderr, (args, stderr)
        assert not (tmp_path / "b").exists() and not (tmp_path / "n").exists()


def test_a_content_damaged_on_the_source_disk_and_files_outside_the_data_dir_are_named(data_dir, tmp_path):
    rotten = data_dir / "files" / "sha256" / "ab" / ("ab" + "0" * 62)
    rotten.parent.mkdir(parents=True)
    rotten.write_bytes(b"not the bytes this name promises")
    outside = tmp_path / "ldap-ca.pem"
    outside.write_text("a CA the admin keeps elsewhere\n")
    with open(data_dir / "corridor.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[ldap]\nca_file = "{outside}"\n')
    taken = run("backup", str(data_dir), str(tmp_path / "backup"), "--json")
    assert taken.returncode == 1, taken.stderr
    report = json.loads(taken.stdout)
    assert not report["ok"] and report["damaged"] == [rotten.relative_to(data_dir).as_posix()]
    assert report["not_included"] == [f"{outside} (ldap.ca_file)"]
    assert f"{rotten.relative_to(data_dir)} does not match its SHA-256 on the source disk" in taken.stderr
    assert f"not in the backup, outside the data dir: {outside} (ldap.ca_file)" in taken.stderr
    restored = run("restore", str(tmp_path / "backup"), str(tmp_path / "restored"))
    assert restored.returncode == 0 and f"put it back yourself: {outside} (ldap.ca_file)" in restored.stdout, restored.stderr
