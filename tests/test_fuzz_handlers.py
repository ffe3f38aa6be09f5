"""Every message handler fuzzed with hypothesis through the real server (TLS on 127.0.0.1, SQLite).

For each request type in `REQUESTS`, and an unknown one, hypothesis draws request fields from the
message class's own type hints: well-typed values that are hostile (lengths and numbers at and
just past each `Bound`, NUL and right-to-left marks, SQL and FTS syntax, paths, other people's
names and the ids of things that exist), a field of the wrong type, a required field left out,
or a map of junk. Each is sent by someone not logged in, a user, an IT admin and an auditor.
For each request: exactly one answer — a result that its `RESULT` class accepts, or an `error`
whose code is in the catalogue and is not INTERNAL — and then a `ping` on the same connection is
answered too (the connection stays usable, and nothing answers the request a second time).
A connection may end only where the protocol says it does (a `hello` with no common version,
one's own device revoked, one's role changed), with its error frame. Afterwards another user
still gets a message through, live, to the fuzzing user.

How it runs: pytest-trio runs each hypothesis example in a fresh `trio.run()`, fixtures and all,
which would start a server per example. So the server is started once per test, by the test,
and hypothesis runs in a worker thread (`trio.to_thread`); each example crosses back into the
test's trio loop with `trio.from_thread.run()` to use the long-lived connection.

    .venv/bin/python -m pytest -q tests/test_fuzz_handlers.py                      # CI: 4 examples per type and actor
    CORRIDOR_FUZZ_EXAMPLES=100 .venv/bin/python -m pytest -q -p no:timeout tests/test_fuzz_handlers.py   # the full run (4 min)
    CORRIDOR_FUZZ_SEED=<seed> …                                                     # replay a failure

The CI run has a fixed seed; a full run picks one and prints it, and every failure carries a
note with the command that replays it.
"""

from __future__ import annotations

import collections
import os
import random
import types
import typing

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, reject, seed, settings
from hypothesis import strategies as st

from corridor.client.client import Client
from corridor.protocol.errors import CATALOGUE, ProtocolError
from corridor.protocol.framing import decode_body, encode_frame
from corridor.protocol.messages import EVENTS, REQUESTS, DepartmentAdd, ProfileSet
from corridor.protocol.schema import Bound, Record

from .helpers import PASSWORD, RawPeer, admin_request

EXAMPLES = int(os.environ.get("CORRIDOR_FUZZ_EXAMPLES", "0"))
FULL = EXAMPLES > 0
SEED = int(os.environ.get("CORRIDOR_FUZZ_SEED", "0")) or (random.randrange(1, 2**32) if FULL else 20261202)
COMMON = dict(
    deadline=None,  # a request does real work (fsyncs, Argon2): wall time says nothing here
    database=None,  # replays come from the seed, not from a .hypothesis directory in the tree
    print_blob=True,
    # Hostile values are long on purpose (32,001-character texts) and each example is a network
    # round trip: neither is a problem with the strategies.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.register_profile("corridor-fuzz-ci", max_examples=4, **COMMON)
settings.register_profile("corridor-fuzz-full", max_examples=max(EXAMPLES, 1), **COMMON)
PROFILE = settings.get_profile("corridor-fuzz-full" if FULL else "corridor-fuzz-ci")

ANSWER_DEADLINE = 20  # seconds for one request and its ping: a hang fails the example
ACTORS = {"anonymous": None, "user": "alice", "admin": "it-admin", "auditor": "compliance"}
VICTIM = "bob"  # an enrolled user: the target of other people's hostile requests
WITNESS = "witness-7f3c9a"  # never generated: must still get a message through at the end
UNKNOWN_KIND = "no_such_type"
# Where the protocol itself ends a connection after a request: the codes it may end with.
ENDS = {
    "hello": {"UNSUPPORTED_VERSION"},
    "device_revoke": {"ACCOUNT_DISABLED"},  # one's own device
    "user_deactivate": {"ACCOUNT_DISABLED"},
    "role_set": {"REAUTHENTICATE"},
    "directory_import": {"ACCOUNT_DISABLED", "REAUTHENTICATE"},
}
FIELD_NAMES = sorted({name for cls in REQUESTS.values() for name in cls.__dataclass_fields__} | {"type", "id", "re", "x"})
HOSTILE_TEXT = [
    "",
    " ",
    "x\x00y",
    "\u202egnp.exe",
    "' OR 1=1 --",
    '"; DROP TABLE users; --',
    '"合同" OR',
    "NEAR(a b)",
    "*",
    "%",
    "_",
    "\\",
    "../../etc/passwd",
    "/",
    "..",
    "CON",
    "😀" * 3,
    "张三",
    "zhangsan",
    "everyone",
    "user:bob",
    "role:admin",
    "department:1",
    "local-admin",
    "admin",
    "nobody",
    "BOB",
    " bob",
    "Europe/Berlin",
    "Not/AZone",
    "25:61",
    "00:00",
    "23:59",
    "0" * 64,
    "A" * 64,
    "g" * 64,
]
EDGE_INTS = [0, 1, 2, 3, -1, 2**31 - 1, 2**31, 2**53, 2**62, 2**63 - 1, -(2**63), 2**64 - 1]


# -- strategies from type hints ------------------------------------------------------------------


def _unwrap(hint) -> tuple[typing.Any, Bound | None, bool]:
    """(base type, its Bound, whether None is allowed)."""
    bound, optional = None, False
    while True:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            hint, *extras = typing.get_args(hint)
            bound = next((e for e in extras if isinstance(e, Bound)), bound)
        elif origin in (typing.Union, types.UnionType):
            args = typing.get_args(hint)
            optional = optional or type(None) in args
            (hint,) = [a for a in args if a is not type(None)]
        else:
            return hint, bound, optional


def anything(max_leaves: int = 6) -> st.SearchStrategy:
    """Any msgpack value: what a peer can put in a field of any type."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(),
        st.text(max_size=40),
        st.binary(max_size=40),
        st.sampled_from(HOSTILE_TEXT),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=4)),
        max_leaves=max_leaves,
    )


def in_range(hint, names: list[str]) -> st.SearchStrategy:
    """Values of the field's type that its bounds accept, weighted to the edges and to the names
    and ids that exist on the server."""
    base, bound, optional = _unwrap(hint)
    strategy = _in_range(base, bound, names)
    return st.one_of(st.none(), strategy) if optional else strategy


def _in_range(base, bound: Bound | None, names: list[str]) -> st.SearchStrategy:
    if typing.get_origin(base) is tuple:
        item = in_range(typing.get_args(base)[0], names)
        limit = bound.max_items if bound and bound.max_items is not None else 1000
        # A few items, or exactly the maximum (one item repeated, so the frame stays small).
        return st.one_of(st.lists(item, max_size=min(limit, 4)), item.map(lambda v, n=limit: [_short(v)] * n))
    if isinstance(base, type) and issubclass(base, Record):
        hints = typing.get_type_hints(base, include_extras=True)
        fields = base.__dataclass_fields__
        required = {n: in_range(hints[n], names) for n, f in fields.items() if _required(f)}
        optional = {n: in_range(hints[n], names) for n, f in fields.items() if not _required(f)}
        return st.fixed_dictionaries(required, optional=optional)
    if base is bool:
        return st.booleans()
    if base in (int, float):
        low = int(bound.min) if bound and bound.min is not None else -(2**63)
        high = int(bound.max) if bound and bound.max is not None else 2**63 - 1
        edges = [v for v in [*EDGE_INTS, low, high] if low <= v <= high]
        small = st.integers(max(low, 1), min(high, 5)) if max(low, 1) <= min(high, 5) else st.nothing()  # ids that exist
        ints = st.one_of(small, st.sampled_from(edges), st.integers(low, high))
        if base is float:  # a NaN passes every range check (all comparisons are False)
            return st.one_of(ints, st.floats(allow_nan=True, allow_infinity=True))
        return ints
    if bound and bound.choices:
        return st.sampled_from(bound.choices)
    shortest = bound.min_len if bound else 0
    longest = bound.max_len if bound and bound.max_len is not None else 4096
    if base is bytes:
        return st.one_of(st.binary(min_size=shortest, max_size=min(longest, 64)), st.just(b"\x00" * longest))
    known = [s for s in [*names, *HOSTILE_TEXT] if shortest <= len(s) <= longest]
    return st.one_of(
        st.sampled_from(known) if known else st.nothing(),
        st.text(min_size=shortest, max_size=min(longest, 80)),
        st.sampled_from(["x", "张"]).map(lambda c, n=longest: c * n),  # at the bound
    )


def out_of_range(hint) -> st.SearchStrategy | None:
    """Values of the right type just past the field's bounds, if it has any."""
    base, bound, _ = _unwrap(hint)
    if bound is None:
        return None
    if typing.get_origin(base) is tuple and bound.max_items is not None:
        return st.just([0] * (bound.max_items + 1))
    if base in (int, float):
        edges = [int(bound.min) - 1] if bound.min is not None else []
        edges += [int(bound.max) + 1] if bound.max is not None else []
        return st.sampled_from(edges) if edges else None
    if bound.choices:
        return st.sampled_from([c.upper() for c in bound.choices] + [c + " " for c in bound.choices] + [""])
    if base in (str, bytes):
        unit = "x" if base is str else b"x"
        lengths = ([bound.min_len - 1] if bound.min_len > 0 else []) + ([bound.max_len + 1] if bound.max_len is not None else [])
        return st.sampled_from([unit * n for n in lengths]) if lengths else None
    return None


def _short(value):
    return value[:8] if isinstance(value, (str, bytes)) else value


def _required(field) -> bool:
    from dataclasses import MISSING

    return field.default is MISSING and field.default_factory is MISSING


def request_fields(kind: str, names: list[str]) -> st.SearchStrategy:
    """The fields of one hostile request of type `kind` (without `type` and `id`)."""
    cls = REQUESTS.get(kind)
    if cls is None:
        return st.dictionaries(st.sampled_from(FIELD_NAMES), anything(), max_size=4)
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = cls.__dataclass_fields__
    valid = {name: in_range(hints[name], names) for name in fields}
    edges = {name: edge for name in fields if (edge := out_of_range(hints[name])) is not None}

    @st.composite
    def build(draw) -> dict:
        values = {}
        for name, field in fields.items():
            if _required(field) or draw(st.booleans()):
                values[name] = draw(valid[name])
        mode = draw(st.sampled_from(["valid", "edge", "wrong type", "missing", "junk"]))
        if mode == "edge" and edges:
            name = draw(st.sampled_from(sorted(edges)))
            values[name] = draw(edges[name])
        elif mode == "wrong type" and fields:
            values[draw(st.sampled_from(list(fields)))] = draw(anything())
        elif mode == "missing":
            required = [n for n, f in fields.items() if _required(f)]
            if required:
                del values[draw(st.sampled_from(required))]
        elif mode == "junk":
            values = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), anything(), max_size=5))
        if draw(st.booleans()):
            values[draw(st.sampled_from(["x", "re", "extra", "type_"]))] = draw(anything(2))  # unknown keys are ignored
        values.pop("type", None)
        values.pop("id", None)
        return values

    return build()


def unknown_kinds() -> st.SearchStrategy:
    """Types no server knows, up to one as long as the largest frame."""
    return st.one_of(
        st.text(max_size=40).filter(lambda k: k not in REQUESTS),
        st.sampled_from(["Send", "send ", "SEND", "result", "error", "message", "\x00"]),
        st.integers(100, 1024 * 1024 - 64).map(lambda n: "t" * n),
    )


# -- one fuzzing connection ------------------------------------------------------------------------


class Fuzzer:
    """One actor's connection, re-opened (and re-logged in) whenever the protocol ended it."""

    def __init__(self, org, username: str | None, token: str | None):
        self.org = org
        self.username = username
        self.token = token
        self.peer: RawPeer | None = None
        self.stale = True  # connect before the next request
        self.next_id = 10
        self.received: collections.deque[dict] = collections.deque(maxlen=1000)  # events seen while waiting

    async def connect(self) -> None:
        """A fresh connection after `hello`, logged in unless anonymous."""
        if self.peer is not None:
            with trio.move_on_after(1):
                try:
                    await self.peer.stream.aclose()  # not left open: the server counts connections per address
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        self.stale = False
        self.peer = RawPeer(await self.org.raw_tls())
        assert (await self.peer.hello())["type"] == "result"
        self.next_id = 10
        if self.username is None:
            return
        login = {"type": "login", "id": 2, "user": self.username, "device_token": self.token}
        await self.peer.send(login)
        answer = await self._answer(2)
        if answer["type"] == "error":  # the fuzzing revoked this device: log in afresh with the password
            await self.peer.send({"type": "login", "id": 3, "user": self.username, "password": PASSWORD, "device_name": "fuzz"})
            answer = await self._answer(3)
            assert answer["type"] == "result", answer
            self.token = answer["device_token"]

    async def _answer(self, request_id: int) -> dict:
        """The response to `request_id`, checking the events that come before it."""
        while True:
            frame = await self.peer.frame()
            assert frame is not None, f"the server closed the connection instead of answering request {request_id}"
            if frame["type"] in ("result", "error"):
                assert frame.get("re", request_id) == request_id, f"answer to {frame.get('re')} while waiting for {request_id}"
                return frame
            assert frame["type"] in EVENTS, f"unknown event {frame!r}"
            EVENTS[frame["type"]].from_fields(frame)  # raises if the server pushed an invalid event
            self.received.append(frame)

    async def exchange(self, kind: str, fields: dict) -> str:
        """Send one request and a ping after it; returns the request's outcome code ("ok" for a
        result). Any protocol violation raises; the connection is then replaced."""
        try:
            with trio.fail_after(ANSWER_DEADLINE):
                return await self._exchange(kind, fields)
        except BaseException:
            self.stale = True  # whatever state it was left in, the next example starts clean
            raise

    async def _exchange(self, kind: str, fields: dict) -> str:
        if self.stale:
            await self.connect()
        request_id = self.next_id
        self.next_id += 2
        await self.peer.send({**fields, "type": kind, "id": request_id})
        answer = await self._answer(request_id)
        if "re" not in answer:  # the connection ends here: only where the protocol says, and closed
            assert answer["code"] in ENDS.get(kind, ()), f"{kind} ended the connection with {answer}"
            assert await self.peer.frame() is None, "the connection stayed open after its final error"
            await self.connect()
            return answer["code"]
        code = _check_answer(kind, answer)
        ping_id = request_id + 1
        await self.peer.send({"type": "ping", "id": ping_id})
        pong = await self._answer(ping_id)  # an answer to request_id a second time fails in _answer
        if "re" not in pong:  # the request ended the connection after its answer (one's own device revoked)
            assert pong["code"] in ENDS.get(kind, ()), f"{kind} ended the connection with {pong}"
            await self.connect()
            return code
        # Before login a ping is refused, which still shows the connection answering.
        expected = "result" if self.username else "error"
        assert pong["type"] == expected and pong.get("code", "NOT_AUTHENTICATED") == "NOT_AUTHENTICATED", (
            f"ping after {kind}: {pong}"
        )
        return code


def _check_answer(kind: str, answer: dict) -> str:
    if answer["type"] == "result":
        assert kind in REQUESTS, f"a result for unknown type {kind!r}"
        REQUESTS[kind].RESULT.from_fields(answer)  # raises if the result breaks its own schema
        return "ok"
    code = answer.get("code")
    assert code in CATALOGUE, f"{kind}: error code {code!r} is not in the catalogue"
    assert code != "INTERNAL", f"{kind} made the server fail: {answer}"
    assert isinstance(answer.get("message"), str)
    return code


# -- the test -----------------------------------------------------------------------------------------


async def _existing_things(org, actor, victim) -> None:
    """Things for the fuzzer's small ids to hit: a department, messages both ways, a group, a file."""
    await admin_request(org.data_dir, DepartmentAdd(name="Sales"))
    await admin_request(org.data_dir, ProfileSet(user=VICTIM, departments=(1,)))
    async with Client.open(victim, receive=False) as client:
        await client.send(VICTIM, "a note to self")
        if actor is not None:
            await client.send(actor.credential().user, "hello from bob")
    if actor is not None and actor.credential().user != ACTORS["auditor"]:  # auditors send nothing
        async with Client.open(actor, receive=False) as client:
            await client.send(VICTIM, "hello bob")


def _fuzz_kind(kind: str, fuzzer: Fuzzer, names: list[str], tally: collections.Counter) -> None:
    """Hypothesis's search for one request type, in a worker thread."""
    strategy = st.tuples(unknown_kinds(), request_fields(kind, names)) if kind == UNKNOWN_KIND else request_fields(kind, names)

    @seed(SEED)
    @PROFILE
    @given(strategy)
    def one_request(drawn) -> None:
        sent_kind, fields = drawn if kind == UNKNOWN_KIND else (kind, drawn)
        try:
            decode_body(encode_frame({**fields, "type": sent_kind, "id": 2**40})[4:])
        except (ProtocolError, OverflowError, ValueError, TypeError, msgpack.PackException):
            # Not a frame (over a framing limit, not msgpack): refused before any handler, which
            # is what tests/test_protocol.py and tests/fuzz/atheris_frames.py check.
            reject()
        tally[trio.from_thread.run(fuzzer.exchange, sent_kind, fields)] += 1

    try:
        one_request()
    except BaseException as exc:
        exc.add_note(
            f"replay: CORRIDOR_FUZZ_SEED={SEED}{f' CORRIDOR_FUZZ_EXAMPLES={EXAMPLES}' if FULL else ''} "
            f".venv/bin/python -m pytest -q tests/test_fuzz_handlers.py  (request type {kind!r}, actor {fuzzer.username})"
        )
        raise


@pytest.mark.parametrize("role", list(ACTORS))
async def test_every_handler_answers_hostile_requests_once(org, role):
    print(f"fuzzing as {role} with seed {SEED} ({PROFILE.max_examples} examples per request type)")
    username = ACTORS[role]
    with trio.fail_after(60):
        victim = await org.user(VICTIM)
        witness = await org.user(WITNESS)
        actor = await org.user(username, role) if username else None
        await _existing_things(org, actor, victim)
    # An IT admin's own name is left out: deactivating or demoting itself would end the run, not
    # find a bug. A user and an auditor may only touch their own account, so theirs is in.
    names = [VICTIM] + ([username] if role in ("user", "auditor") else [])
    fuzzer = Fuzzer(org, username, actor.credential().device_token if actor else None)
    tally: collections.Counter = collections.Counter()
    for kind in [*REQUESTS, UNKNOWN_KIND]:
        if username is None:
            fuzzer.stale = True  # before login the login deadline runs: a fresh connection per type
        await trio.to_thread.run_sync(_fuzz_kind, kind, fuzzer, names, tally)
    with trio.fail_after(30):
        if username is not None:  # the fuzzing may have put itself on a break, which holds messages
            assert await fuzzer.exchange("quiet_hours_set", {"off": True}) == "ok"
            assert await fuzzer.exchange("set_presence", {"status": "online"}) == "ok"
        # Others are still served, and the fuzzed connection still receives what they send.
        async with Client.open(witness, receive=False) as client:
            sent = await client.send(username or VICTIM, "still serving")
        assert sent.seq >= 1
        if username is not None:
            assert await fuzzer.exchange("ping", {}) == "ok"
            assert any(e["type"] == "message" and e["text"] == "still serving" for e in fuzzer.received)
    print(f"{role}: {sum(tally.values())} requests: {dict(tally.most_common())}")
    # Validation, the policy and the handlers were each reached.
    assert tally["BAD_MESSAGE"] > 0 and tally["UNKNOWN_TYPE"] > 0
    if role == "anonymous":
        assert tally["NOT_AUTHENTICATED"] > len(REQUESTS) // 2
    else:
        assert tally["ok"] > len(REQUESTS) // 3, tally
