"""Random requests of every type, with random field values, through the real server over TLS:
each gets exactly one answer, nothing crashes, and everyone else keeps being served."""

import random
import types
import typing

import trio

from corridor.client.client import Client
from corridor.protocol.errors import CATALOGUE
from corridor.protocol.messages import REQUESTS

from .helpers import PASSWORD, RawPeer

FIELD_NAMES = sorted({name for cls in REQUESTS.values() for name in cls.__dataclass_fields__} | {"x", "id", "re"})


def random_value(rng: random.Random, depth: int = 0):
    choices = [
        lambda: rng.randint(-(2**63), 2**63 - 1),
        lambda: rng.choice([0, 1, -1, 2**53, 7740]),
        lambda: rng.random() * 1e6,
        lambda: rng.choice([True, False, None]),
        lambda: "".join(rng.choice("ab张三 \x00\u202e/..") for _ in range(rng.randint(0, 40))),
        lambda: "x" * rng.choice([0, 63, 64, 65, 4097, 32_001]),
        lambda: rng.randbytes(rng.randint(0, 20)),
    ]
    if depth < 3:
        choices += [
            lambda: [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))],
            lambda: {rng.choice(FIELD_NAMES): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))},
        ]
    return rng.choice(choices)()


def well_typed(rng: random.Random, hint, depth: int = 0):
    """A value of the right type with hostile contents: edge lengths, odd Unicode, extreme numbers."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return well_typed(rng, typing.get_args(hint)[0], depth)
    if origin in (typing.Union, types.UnionType):
        return well_typed(rng, rng.choice(typing.get_args(hint)), depth)
    if origin is tuple:
        return [well_typed(rng, typing.get_args(hint)[0], depth + 1) for _ in range(rng.randint(0, 3 if depth < 2 else 0))]
    if hint is type(None):
        return None
    if hint is bool:
        return rng.choice([True, False])
    if hint in (int, float):
        return rng.choice([0, 1, -1, 2**31, 2**62, 2**63 - 1, -(2**63), 10_000, 3])
    if hint is str:
        return rng.choice(
            [
                "",
                "alice",
                "bob",
                "ALICE",
                "admin",
                "nobody",
                "张三",
                "a" * 64,
                "a" * 65,
                "x\x00y",
                "online",
                "busy",
                "user",
                "auditor",
            ]
        )
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        hints = typing.get_type_hints(hint, include_extras=True)
        return {name: well_typed(rng, hints[name], depth + 1) for name in hint.__dataclass_fields__}
    return random_value(rng)


def request_fields(rng: random.Random, kind: str) -> dict:
    cls = REQUESTS.get(kind)
    if cls is None or rng.random() < 0.3:
        return {name: random_value(rng) for name in rng.sample(FIELD_NAMES, rng.randint(0, 5))}
    hints = typing.get_type_hints(cls, include_extras=True)
    return {name: well_typed(rng, hints[name]) for name in cls.__dataclass_fields__ if rng.random() < 0.9}


async def connect(org, logged_in: bool) -> RawPeer:
    peer = RawPeer(await org.raw_tls())
    await peer.hello()
    if logged_in:
        # By password, not a stored device token: the fuzzing itself may revoke alice's devices
        # (she may revoke her own), and that must not stop the run.
        await peer.send({"type": "login", "id": 2, "user": "alice", "password": PASSWORD})
        assert (await peer.frame())["type"] == "result"
    return peer


async def test_random_requests_are_each_answered_once_and_harm_no_one(org):
    await org.user("alice")
    rng = random.Random(20261123)
    seen = {}
    with trio.fail_after(120):
        for connection in range(30):
            peer = await connect(org, bool(connection % 2))  # half fuzz as a logged-in user
            # Every type in turn, in a shuffled order, so each is reached however many there are.
            order = rng.sample([*REQUESTS, "nonsense"], len(REQUESTS) + 1)
            for request_id in range(10, 60):
                kind = order[(connection * 50 + request_id) % len(order)]
                fields = request_fields(rng, kind)
                await peer.send({**fields, "type": kind, "id": request_id})
                answer = await peer.frame()
                while answer is not None and answer["type"] not in ("result", "error"):
                    answer = await peer.frame()  # events (presence, messages) may come in between
                assert answer is not None, f"server closed without a word on {kind} {fields!r}"
                code = answer.get("code", "ok")
                assert code in CATALOGUE or code == "ok", answer
                assert code != "INTERNAL", (kind, fields, answer)
                seen[code] = seen.get(code, 0) + 1
                if "re" not in answer:  # a connection-level error (e.g. a second hello with no common version): closed
                    assert await peer.frame() is None
                    peer = await connect(org, bool(connection % 2))
                    continue
                assert answer["re"] == request_id, answer
            await peer.stream.aclose()
        # Someone untouched by the fuzzing is still served.
        async with Client.open(await org.user("bob"), receive=False) as client:
            assert (await client.send("alice", "still serving")).seq >= 1
    # Validation, the policy and the handlers themselves were all reached.
    assert seen.get("ok", 0) > 30 and seen.get("BAD_MESSAGE", 0) > 30 and seen.get("NOT_AUTHENTICATED", 0) > 0
    assert {"NO_SUCH_USER", "LOGIN_FAILED", "INVITE_INVALID"} <= set(seen)
