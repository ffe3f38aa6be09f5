"""`corridor devices …`: list the devices enrolled on my account and revoke one (a lost laptop).

The same listing and wording serve `corridor admin … device`, which does this for anyone."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import DeviceInfo, DeviceList, DeviceRevoke

from ..client import Client
from ..profile import Profile
from .commands import _client_options, _common, _connection, _run
from .output import EXIT_OK, EXIT_USAGE, emit, fail


def device_fields(device: DeviceInfo, current: int | None = None) -> dict[str, Any]:
    """A device as JSON; with `current` (this profile's device id), whether it is that one."""
    fields = device.to_fields()
    return fields if current is None else {**fields, "current": device.id == current}


def device_line(device: DeviceInfo, current: int | None = None) -> str:
    """`ID: NAME, enrolled YYYY-MM-DD HH:MM`, marking a revoked device and this profile's own."""
    line = f"{device.id}: {device.name}, enrolled {dt.datetime.fromtimestamp(device.created):%Y-%m-%d %H:%M}"
    if device.revoked:
        line += " [revoked]"
    return f"{line} (this device)" if device.id == current else line


def revoked_text(user: str, device_id: int) -> str:
    """What revoking a device did."""
    return f"Revoked device {device_id} of {user}: its live sessions ended and it can no longer log in."


async def _list(args: argparse.Namespace, profile: Profile) -> int:
    me = profile.credential()
    async with Client.open(profile, **_client_options(args, receive=False)) as client:
        result = await client.request(DeviceList(user=me.user))
    emit(
        {"user": me.user, "devices": [device_fields(d, me.device_id) for d in result.devices]},
        args.json,
        "\n".join(device_line(d, me.device_id) for d in result.devices),
    )
    return EXIT_OK


async def _revoke(args: argparse.Namespace, profile: Profile) -> int:
    me = profile.credential()
    mine = args.device_id == me.device_id
    if mine and not args.force:
        message = (
            f"device {me.device_id} is the one this profile logs in with; revoking it signs this profile out for good "
            "(add --force to do it anyway)"
        )
        return fail("devices revoke", "BAD_MESSAGE", message, args.json, EXIT_USAGE)
    try:
        async with Client.open(profile, **_client_options(args, receive=False)) as client:
            await client.request(DeviceRevoke(user=me.user, device_id=args.device_id))
    except CorridorError as exc:
        # Revoking this very device ends the session that asked, whether or not the answer
        # got out first: here ACCOUNT_DISABLED is the confirmation.
        if not (mine and exc.code == "ACCOUNT_DISABLED"):
            raise
    text = revoked_text(me.user, args.device_id)
    if mine:
        text += " This profile must enroll again with a new invite."
    emit({"ok": True, "user": me.user, "device_id": args.device_id}, args.json, text)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add `corridor devices` and `corridor devices revoke` to the root parser."""
    devices = sub.add_parser("devices", help="list the devices enrolled on my account (or revoke one)")
    _common(devices)
    _connection(devices)
    devices.set_defaults(run=_run("devices", _list))
    actions = devices.add_subparsers(dest="action", metavar="ACTION")

    # argparse copies a subcommand's option defaults over what was given before it, so
    # `devices --profile P revoke 2` would revoke with the default profile: here an option
    # left out means "not given", and the value parsed before `revoke` stays.
    revoke = actions.add_parser(
        "revoke", help="revoke one of my devices: it is signed out at once", argument_default=argparse.SUPPRESS
    )
    revoke.add_argument("device_id", type=int, metavar="DEVICE_ID", help="the device's id, from 'corridor devices'")
    revoke.add_argument("--force", action="store_true", default=False, help="also revoke the device this profile uses")
    _common(revoke)
    _connection(revoke)
    revoke.set_defaults(run=_run("devices revoke", _revoke))
