"""Test helpers that drive the real server the way users and admins do."""

from __future__ import annotations

from pathlib import Path

import trio

from corridor.client.enrollment import enroll
from corridor.client.profile import Profile
from corridor.client.transport import open_tls, open_unix, running
from corridor.protocol.framing import FrameDecoder, encode_frame
from corridor.protocol.messages import UserAdd
from corridor.server.app import Server

PASSWORD = "correct horse battery"


async def admin_request(data_dir: Path, message, instance: str = ""):
    """Send one request as the local admin over the control socket (of one `serve --instance`)."""
    stream = await open_unix(str(data_dir / (f"control-{instance}.sock" if instance else "control.sock")))
    async with running(stream) as channel:
        await channel.handshake()
        return await channel.request(message)


class Org:
    """Creates users through the admin socket and enrolls their profiles, like people would."""

    def __init__(self, server: Server, tmp_path: Path):
        self.server = server
        self.tmp_path = tmp_path
        self.data_dir = server.config.data_dir

    @property
    def address(self) -> tuple[str, int]:
        return self.server.addresses[0]

    async def invite(self, username: str, role: str = "user") -> str:
        """Create an account and return its invite."""
        result = await admin_request(self.data_dir, UserAdd(username=username, display_name=username.title(), role=role))
        return result.invite

    async def user(self, username: str, role: str = "user") -> Profile:
        """An enrolled profile for a new user."""
        profile = Profile(self.tmp_path / f"profile-{username}")
        await enroll(profile, await self.invite(username, role), PASSWORD, "test device")
        return profile

    async def raw_tls(self) -> trio.SSLStream:
        """A verified TLS stream to the server with no protocol spoken yet."""
        ca = (self.data_dir / "tls" / "ca.pem").read_text()
        return await open_tls(*self.address, ca, "127.0.0.1", 5)


class RawPeer:
    """Speaks frames by hand over a stream, to send what a well-behaved client never would."""

    def __init__(self, stream: trio.abc.Stream):
        self.stream = stream
        self.decoder = FrameDecoder()

    async def send_bytes(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send(self, frame: dict) -> None:
        await self.stream.send_all(encode_frame(frame))

    async def frame(self) -> dict | None:
        """The next frame from the server, or None once it closed the connection."""
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return frame
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return None
            if not data:
                return None
            self.decoder.feed(data)

    async def hello(self) -> dict:
        await self.send({"type": "hello", "id": 1, "versions": [1]})
        return await self.frame()

    async def log_in(self, profile: Profile) -> None:
        """hello, then a device-token login as the profile's user (request ids 1 and 2)."""
        await self.hello()
        cred = profile.credential()
        await self.send({"type": "login", "id": 2, "user": cred.user, "device_token": cred.device_token})
        answer = await self.frame()
        assert answer is not None and answer["type"] == "result", answer
