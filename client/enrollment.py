"""Enrollment: redeem an invite, pin the organisation's CA, store the device credential.

The invite carries the CA's fingerprint, not the CA. So the client first opens an
*unverified* TLS connection only to read the CA certificate from `hello`, checks its SHA-256
against the invite, and closes it — nothing secret crosses that connection. Then it opens a
second connection verified against that CA, and only there sends the invite token and the
new password (none for a bot's invite: a bot logs in with its device token only).
"""

from __future__ import annotations

import trio

from corridor.protocol.errors import make_error
from corridor.protocol.invites import parse_invite
from corridor.protocol.messages import Enroll, LoginResult

from .profile import Credential, Profile
from .tls import ca_fingerprint
from .transport import open_tls, running


async def enroll(
    profile: Profile,
    invite_text: str,
    password: str = "",
    device_name: str = "",
    timeout: float = 10.0,
    address: tuple[str, int] | None = None,
) -> LoginResult:
    """Enroll this profile with the server named in the invite (reached at `address` instead,
    when given: one found on the LAN; it must still prove to be the invite's host, with the
    invite's CA). `password` is the new password; a bot's invite takes none (leave it `""`)."""
    invite = parse_invite(invite_text)
    host, port = address or (invite.host, invite.port)
    try:
        stream = await open_tls(host, port, None, invite.host, timeout)
        async with running(stream) as probe:
            with trio.fail_after(timeout):
                hello = await probe.handshake()
        if not hello.ca or ca_fingerprint(hello.ca) != invite.ca_sha256:
            raise make_error(
                "UNTRUSTED_SERVER",
                f"{host}:{port} does not hold the CA named in the invite (sha256:{invite.ca_sha256})",
            )
        stream = await open_tls(host, port, hello.ca, invite.host, timeout)
        async with running(stream) as channel:
            with trio.fail_after(timeout):
                await channel.handshake()
                result = await channel.request(Enroll(token=invite.token, password=password, device_name=device_name))
    except trio.TooSlowError:
        raise make_error("CONNECTION_LOST", f"{host}:{port} did not answer within {timeout:g} s") from None
    credential = Credential(
        host=host,
        port=port,
        tls_host=invite.host,
        org=hello.org,
        user=result.user,
        device_id=result.device_id,
        device_token=result.device_token,
        ca_sha256=invite.ca_sha256,
    )
    profile.save_enrollment(credential, hello.ca)
    return result
