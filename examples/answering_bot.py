"""A Corridor bot that answers every 1:1 message it receives (see docs/bots.md).

Run it with the profile the bot was enrolled into (`corridor enroll INVITE --bot --profile DIR`):

    python answering_bot.py --profile DIR [--count N] [--timeout S]

It logs in with the device token stored in the profile, answers what people sent while it was
stopped, then each new message as it arrives, and reconnects by itself when the server restarts.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import trio

from corridor.client.client import Client
from corridor.client.profile import Profile
from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import MessageEvent

HELP = "I am the helpdesk bot. Send 'help' for this text; anything else, I repeat it back to you."


def answer(text: str) -> str:
    """The bot's reply to one message: the place to put your company's logic."""
    if text.strip().lower() in ("help", "?"):
        return HELP
    return f"You said: {text}"


async def serve(profile: Profile, count: int, timeout: float) -> int:
    """Answer 1:1 text messages until `count` are answered or `timeout` seconds pass (0: never
    stop); returns how many were answered."""
    answered = 0
    with trio.move_on_after(timeout or math.inf):
        async with Client.open(profile) as client:
            me = client.credential.user
            async for event in client.events():
                # Only text someone else sent to the bot alone: not group messages (no
                # recipient), files, recalls or edits, and not the bot's own answers, which
                # come back through the same stream.
                if not isinstance(event, MessageEvent) or event.sender == me or not event.recipient or event.kind != "text":
                    continue
                await client.send(event.sender, answer(event.text))
                answered += 1
                print(f"answered {event.sender} (#{event.seq})", flush=True)
                if answered == count:
                    break
    return answered


def main() -> int:
    """Parse the options, run the bot, and exit 1 if it cannot log in."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, required=True, metavar="DIR", help="the profile the bot was enrolled into")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="stop after answering N messages (default: never)")
    parser.add_argument("--timeout", type=float, default=0, metavar="S", help="stop after S seconds (default: never)")
    args = parser.parse_args()
    try:
        trio.run(serve, Profile(args.profile), args.count, args.timeout)
    except CorridorError as exc:
        print(f"answering_bot: {exc} [{exc.code}]", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
