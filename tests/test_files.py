"""Files through the real server: resumable uploads and downloads checked end to end, one stored
copy per content, limits, who may fetch what, thumbnails, and names that try to escape."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from pathlib import Path

import msgpack
import pytest
import trio
from PIL import Image

from corridor.client.client import Client
from corridor.client.transfers import WINDOW, download, send_file, upload
from corridor.protocol.errors import CorridorError
from corridor.protocol.files import check_file_name
from corridor.protocol.messages import (
    FileChunk,
    FileGet,
    FileInfo,
    FileUpload,
    GroupCreate,
    GroupMembersAdd,
    GroupSend,
    MessageEvent,
    Recall,
    Send,
)
from corridor.server.config import ConfigError, parse_config
from corridor.server.features.files.blobs import BlobStore

from .conftest import serve_with

MIB = 1024 * 1024


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def next_file_message(client: Client) -> MessageEvent:
    async for event in client.events():
        if isinstance(event, MessageEvent) and event.kind == "file":
            return event
    raise AssertionError("the event stream ended")


def stored_contents(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "files" / "sha256").rglob("*") if p.is_file())


def archive_payloads(data_dir: Path, kind: str) -> list[dict]:
    with sqlite3.connect(data_dir / "corridor.sqlite") as db:
        rows = db.execute("SELECT payload FROM archive WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    return [msgpack.unpackb(row[0]) for row in rows]


class Cutter:
    """Drops a client's connection each time a transfer passes the next of some byte marks."""

    def __init__(self, client: Client, marks: list[int]):
        self.client, self.marks, self.cuts = client, sorted(marks), 0
        self._due = trio.Event()

    def progress(self, done: int, total: int) -> None:
        if self.marks and done >= self.marks[0]:
            self.marks.pop(0)
            self._due.set()

    async def run(self) -> None:
        while True:
            await self._due.wait()
            self._due = trio.Event()
            await self.client.aclose_connection()
            self.cuts += 1


async def test_a_50_mib_file_interrupted_twice_arrives_bit_identical_and_downloads_with_resume(org, tmp_path):
    alice, bob = await org.user("alice"), await org.user("bob")
    original = random_file(tmp_path / "site-survey.bin", 50 * MIB)
    with trio.fail_after(120):
        async with Client.open(alice, receive=False) as a, Client.open(bob) as b, trio.open_nursery() as nursery:
            cutter = Cutter(a, [15 * MIB, 35 * MIB])
            nursery.start_soon(cutter.run)
            ack = await send_file(a, "bob", original, progress=cutter.progress)
            assert cutter.cuts == 2 and a.connects == 3  # the upload really was cut twice

            event = await next_file_message(b)
            assert (event.seq, event.text) == (ack.seq, "site-survey.bin")
            assert (event.file.id, event.file.size, event.file.name) == (sha256(original), 50 * MIB, "site-survey.bin")

            downloads = tmp_path / "bob-downloads"
            downloads.mkdir()
            cutter = Cutter(b, [20 * MIB])
            nursery.start_soon(cutter.run)
            got = await download(b, event.file.id, downloads, progress=cutter.progress)
            assert cutter.cuts == 1
            nursery.cancel_scope.cancel()
    assert got == downloads / "site-survey.bin"
    assert got.read_bytes() == original.read_bytes()
    assert sorted(p.name for p in downloads.iterdir()) == ["site-survey.bin"]  # no .part left behind
    assert stored_contents(org.data_dir) == [org.data_dir / "files" / "sha256" / event.file.id[:2] / event.file.id]
    assert list((org.data_dir / "files" / "uploads").iterdir()) == []


async def test_a_download_interrupted_by_the_program_stopping_resumes_from_its_part_file(org, tmp_path):
    alice, bob = await org.user("alice"), await org.user("bob")
    original = random_file(tmp_path / "minutes.pdf", 3 * MIB + 17)
    out = tmp_path / "out" / "minutes.pdf"
    out.parent.mkdir()
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as a:
            ack = await send_file(a, "bob", original)
        async with Client.open(bob, receive=False) as b:
            file_id = (await b.history("alice")).messages[-1].file.id
            part = await b.request(FileGet(file=file_id, offset=0))
            out.with_name("minutes.pdf.part").write_bytes(part.data)  # what an earlier run saved
            fetched: list[int] = []
            await download(b, file_id, out, progress=lambda done, total: fetched.append(done))
    assert ack.seq == 1
    assert out.read_bytes() == original.read_bytes()
    assert fetched[0] == 2 * len(part.data)  # it went on from the part, not from 0


async def test_each_content_is_stored_once_and_a_file_one_can_see_is_forwarded_without_upload(org, tmp_path):
    alice, bob, carol = [await org.user(n) for n in ("alice", "bob", "carol")]
    original = random_file(tmp_path / "plan.xlsx", MIB)
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
            await send_file(a, "bob", original)
            group = await a.request(GroupCreate(name="Planning", members=("carol",)))
            await send_file(a, f"#{group.id}", original, name="plan (final).xlsx")
            # bob forwards what he received: the server has it and he may see it, so no bytes move
            state = await b.request(FileUpload(sha256=sha256(original), size=MIB))
            assert state.complete and state.offset == MIB
            await b.request(Send(to="carol", msg_id="fwd-1", text="plan.xlsx", file=sha256(original)))
        async with Client.open(carol, receive=False) as c:
            info = await c.request(FileInfo(file=sha256(original)))
    assert info.name == "plan.xlsx" and info.mime.startswith("application/")
    assert len(stored_contents(org.data_dir)) == 1
    uploads = archive_payloads(org.data_dir, "file")
    assert [(u["sha256"], u["size"]) for u in uploads] == [(sha256(original), MIB)]
    sent = [p["file"] for p in archive_payloads(org.data_dir, "message") if "file" in p]
    assert [f["name"] for f in sent] == ["plan.xlsx", "plan (final).xlsx", "plan.xlsx"]
    assert {f["sha256"] for f in sent} == {sha256(original)}


async def test_size_limit_and_quota(data_dir, tmp_path, nursery):
    org = await serve_with(nursery, data_dir, tmp_path, max_file_bytes=10_000, file_quota_bytes=15_000)
    alice = await org.user("alice")
    big, first, second = (random_file(tmp_path / n, s) for n, s in (("big", 10_001), ("a", 8_000), ("b", 8_000)))
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as a:
            with pytest.raises(CorridorError) as too_big:
                await upload(a, big)
            await upload(a, first)
            with pytest.raises(CorridorError) as over:
                await upload(a, second)
            assert await upload(a, first) == (sha256(first), 8_000)  # the same content costs nothing again
    assert too_big.value.code == "FILE_TOO_LARGE" and "10,000" in too_big.value.message
    assert over.value.code == "QUOTA_EXCEEDED" and "8,000 of your 15,000" in over.value.message


async def test_bytes_that_do_not_match_their_hash_are_refused_and_discarded(org, tmp_path):
    alice = await org.user("alice")
    with trio.fail_after(10):
        async with Client.open(alice, receive=False) as a:
            claimed = hashlib.sha256(b"the real contract").hexdigest()
            state = await a.request(FileUpload(sha256=claimed, size=17))
            with pytest.raises(CorridorError) as corrupt:
                await a.request(FileChunk(upload=state.upload, offset=0, data=b"a forged contract"))
            with pytest.raises(CorridorError) as gone:
                await a.request(FileChunk(upload=state.upload, offset=0, data=b"the real contract"))
            with pytest.raises(CorridorError) as ahead:
                fresh = await a.request(FileUpload(sha256=claimed, size=17))
                await a.request(FileChunk(upload=fresh.upload, offset=4, data=b"real contract"))
            with pytest.raises(CorridorError) as not_sent:
                await a.request(Send(to="alice", msg_id="m1", text="contract.txt", file=claimed))
    assert corrupt.value.code == "FILE_CORRUPT"
    assert gone.value.code == "NO_SUCH_UPLOAD"
    assert ahead.value.code == "BAD_OFFSET" and "has 0 bytes" in ahead.value.message
    assert not_sent.value.code == "NO_SUCH_FILE"
    assert stored_contents(org.data_dir) == []


async def test_only_people_shown_a_file_may_fetch_it_and_a_recall_takes_it_back(org, tmp_path):
    alice, bob, mallory = [await org.user(n) for n in ("alice", "bob", "mallory")]
    original = random_file(tmp_path / "salaries.csv", 4096)
    file_id = sha256(original)
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
            ack = await send_file(a, "bob", original)
            assert (await b.request(FileGet(file=file_id))).data == original.read_bytes()
            async with Client.open(mallory, receive=False) as m:
                for request in (
                    FileGet(file=file_id),
                    FileInfo(file=file_id),
                    Send(to="mallory", msg_id="x", text="x", file=file_id),
                ):
                    with pytest.raises(CorridorError) as refused:
                        await m.request(request)
                    assert refused.value.code == "NO_SUCH_FILE"  # the same answer as for no file at all
                # knowing the hash is not owning the file: she must send every byte first
                state = await m.request(FileUpload(sha256=file_id, size=4096))
                assert not state.complete and state.offset == 0
            await a.request(Recall(conversation=ack.conversation, seq=ack.seq))
            with pytest.raises(CorridorError) as recalled:
                await b.request(FileGet(file=file_id))
            assert (await a.request(FileGet(file=file_id))).size == 4096  # the uploader still has it
    assert recalled.value.code == "NO_SUCH_FILE"
    assert stored_contents(org.data_dir)[0].read_bytes() == original.read_bytes()  # kept for the archive
    (message,) = [p for p in archive_payloads(org.data_dir, "message") if p.get("file")]
    assert message["file"] == {"sha256": file_id, "name": "salaries.csv", "size": 4096}


async def test_members_who_join_a_group_later_do_not_get_its_earlier_files(org, tmp_path):
    alice, _, carol = [await org.user(n) for n in ("alice", "bob", "carol")]
    early = random_file(tmp_path / "early.txt", 100)
    with trio.fail_after(20):
        async with Client.open(alice, receive=False) as a, Client.open(carol, receive=False) as c:
            group = await a.request(GroupCreate(name="Board", members=("bob",)))
            await send_file(a, f"#{group.id}", early)
            await a.request(GroupMembersAdd(group=group.id, users=("carol",)))
            with pytest.raises(CorridorError) as refused:
                await c.request(FileGet(file=sha256(early)))
    assert refused.value.code == "NO_SUCH_FILE"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def test_images_get_a_thumbnail_and_other_files_do_not(org, tmp_path):
    alice, bob = await org.user("alice"), await org.user("bob")
    screenshot = tmp_path / "screenshot.png"
    screenshot.write_bytes(png(1600, 900))
    fake = random_file(tmp_path / "not-really.png", 2000)  # the name says image, the bytes do not
    with trio.fail_after(20):
        async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
            await send_file(a, "bob", screenshot)
            await send_file(a, "bob", fake)
            shot, other = [m.file for m in (await b.history("alice")).messages]
            thumb = await download(b, shot.id, tmp_path, thumbnail=True)
            with pytest.raises(CorridorError) as none:
                await b.request(FileGet(file=other.id, thumbnail=True))
    assert (shot.mime, shot.width, shot.height, shot.thumbnail) == ("image/png", 1600, 900, True)
    assert thumb.name == "screenshot.thumbnail.jpg"
    with Image.open(thumb) as image:
        assert image.format == "JPEG" and image.size == (320, 180)
    assert (other.thumbnail, other.width) == (False, 0)
    assert none.value.code == "NO_SUCH_FILE"


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "a/b", "a\\b", "C:evil", "nul.txt", "bad\x00name", "x" * 256])
async def test_names_crafted_to_escape_are_refused_by_server_and_client(org, tmp_path, name):
    alice = await org.user("alice")
    original = random_file(tmp_path / "innocent.txt", 10)
    with trio.fail_after(10):
        async with Client.open(alice, receive=False) as a:
            file_id, _ = await upload(a, original)
            for request in (
                Send(to="alice", msg_id="n1", text=name, file=file_id),
                GroupSend(group=(await a.request(GroupCreate(name="g"))).id, msg_id="n2", text=name, file=file_id),
            ):
                with pytest.raises(CorridorError) as refused:
                    await a.request(request)
                assert refused.value.code in ("BAD_FILE_NAME", "BAD_MESSAGE")
    with pytest.raises(CorridorError):
        check_file_name(name)  # and a client never saves under such a name


async def test_file_ids_crafted_to_escape_the_store_are_refused(org, tmp_path):
    alice = await org.user("alice")
    secret = org.data_dir / "corridor.sqlite"
    before = sorted(p.name for p in org.data_dir.rglob("*"))
    with trio.fail_after(10):
        async with Client.open(alice, receive=False) as a:
            for file_id in ("../../corridor.sqlite".ljust(64, "/"), "..%2f" * 12 + "abcd", "A" * 64, "0" * 63 + "/"):
                for request in (FileGet(file=file_id), FileInfo(file=file_id), FileUpload(sha256=file_id, size=1)):
                    with pytest.raises(CorridorError) as refused:
                        await a.request(request)
                    assert refused.value.code == "BAD_FILE_ID"
    assert secret.exists() and sorted(p.name for p in org.data_dir.rglob("*")) == before


class Watching(Client):
    """A client that notes the most requests it had written whose answers were not yet taken."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waiting = self.most = 0

    async def submit(self, message):
        answer = await super().submit(message)
        self.waiting += 1
        self.most = max(self.most, self.waiting)
        return self._taken(answer)

    async def _taken(self, answer):
        try:
            return await answer
        finally:
            self.waiting -= 1


async def test_chunks_travel_in_a_window_of_requests_both_ways(org, tmp_path):
    alice, bob = await org.user("alice"), await org.user("bob")
    original = random_file(tmp_path / "scan.tiff", 6 * MIB + 17)
    with trio.fail_after(30):
        async with Watching.open(alice, receive=False) as a:
            await send_file(a, "bob", original)
        async with Watching.open(bob, receive=False) as b:
            got = await download(b, sha256(original), tmp_path / "copy.tiff")
    assert a.most == b.most == WINDOW  # not one round trip per chunk
    assert got.read_bytes() == original.read_bytes()


async def test_a_server_fault_inside_a_window_is_retried_and_both_transfers_stay_bit_identical(org, tmp_path, monkeypatch):
    alice, bob = await org.user("alice"), await org.user("bob")
    original = random_file(tmp_path / "backup.tar", 6 * MIB + 17)
    write_at, read, failed = BlobStore.write_at, BlobStore.read, []

    def write_failing_once(self, upload, offset, data):
        if offset == 2 * MIB and "write" not in failed:
            failed.append("write")
            raise OSError(5, "Input/output error")
        return write_at(self, upload, offset, data)

    def read_failing_once(self, file_id, offset, length, *, thumbnail=False):
        if offset == 3 * MIB and "read" not in failed:
            failed.append("read")
            raise OSError(5, "Input/output error")
        return read(self, file_id, offset, length, thumbnail=thumbnail)

    monkeypatch.setattr(BlobStore, "write_at", write_failing_once)
    monkeypatch.setattr(BlobStore, "read", read_failing_once)
    with trio.fail_after(30):
        async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
            # the chunks written behind the failed one are refused (BAD_OFFSET) or repeated;
            # the failed one is sent again and the window goes on, on the same connection
            await send_file(a, "bob", original)
            got = await download(b, sha256(original), tmp_path / "copy.tar")
            assert a.connects == b.connects == 1
    assert failed == ["write", "read"]  # each fault really happened, inside a full window
    assert got.read_bytes() == original.read_bytes()
    assert list((org.data_dir / "files" / "uploads").iterdir()) == []


async def test_an_empty_file_is_sent_and_fetched(org, tmp_path):
    alice, bob = await org.user("alice"), await org.user("bob")
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    with trio.fail_after(10):
        async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
            await send_file(a, "bob", empty)
            (message,) = (await b.history("alice")).messages
            got = await download(b, message.file.id, tmp_path / "got.log")
    assert (message.file.size, got.read_bytes()) == (0, b"")


async def test_unfinished_uploads_count_against_the_quota_until_they_expire(data_dir, tmp_path, nursery):
    org = await serve_with(nursery, data_dir, tmp_path, file_quota_bytes=15_000)
    alice = await org.user("alice")
    first, second = random_file(tmp_path / "first", 8_000), random_file(tmp_path / "second", 8_000)
    with trio.fail_after(20):
        async with Client.open(alice, receive=False) as a:
            state = await a.request(FileUpload(sha256=sha256(first), size=8_000))
            await a.request(FileChunk(upload=state.upload, offset=0, data=first.read_bytes()[:4_000]))  # then left
            with pytest.raises(CorridorError) as over:
                await upload(a, second)
            services = org.server.services
            real = services.clock
            services.clock = lambda: real() + 8 * 24 * 3600  # a week and a day later
            assert await upload(a, second) == (sha256(second), 8_000)
    assert over.value.code == "QUOTA_EXCEEDED" and "unfinished uploads count" in over.value.message
    assert not (org.data_dir / "files" / "uploads" / f"{state.upload}.part").exists()


def test_a_frame_limit_too_small_for_a_file_chunk_is_a_config_error(tmp_path):
    base = {"organisation": {"name": "X"}}
    with pytest.raises(ConfigError, match=r"limits\.max_frame_bytes' must be at least 589,824"):
        parse_config({**base, "limits": {"max_frame_bytes": 500_000}}, tmp_path)
    assert parse_config({**base, "limits": {"max_frame_bytes": 589_824}}, tmp_path).limits.max_frame_bytes == 589_824


async def test_a_part_file_that_does_not_match_is_refused_and_a_fresh_download_works(org, tmp_path):
    alice, bob = await org.user("alice"), await org.user("bob")
    original = random_file(tmp_path / "plan.pdf", MIB + 5)
    out = tmp_path / "out" / "plan.pdf"
    out.parent.mkdir()
    out.with_name("plan.pdf.part").write_bytes(b"not the start of that file")
    with trio.fail_after(20):
        async with Client.open(alice, receive=False) as a, Client.open(bob, receive=False) as b:
            await send_file(a, "bob", original)
            with pytest.raises(CorridorError) as corrupt:
                await download(b, sha256(original), out)
            assert not out.exists() and not out.with_name("plan.pdf.part").exists()
            await download(b, sha256(original), out)
    assert corrupt.value.code == "FILE_CORRUPT"
    assert out.read_bytes() == original.read_bytes()
