"""Coverage-guided fuzzing of what a peer's bytes reach first: frames, request fields, invites.

    .venv/bin/python tests/fuzz/atheris_frames.py -max_total_time=600        # a 10-minute campaign
    .venv/bin/python tests/fuzz/atheris_frames.py -atheris_runs=20000        # a fixed number of inputs
    .venv/bin/python tests/fuzz/atheris_frames.py CORPUS_DIR -max_total_time=600   # keep what it finds

atheris (libFuzzer for Python) mutates byte strings to reach new Python branches. The first byte
of an input picks one of four targets, so one campaign and one corpus cover them all:

- `stream`: the bytes as a TCP stream into a server-side `Connection`, exactly as
  `server/net/connection.py` drives it: fed in chunks, every event drained, every request
  answered (a malformed one with its own error frame), a broken stream answered with
  `send_fatal()`. The same bytes fed whole must give the same events: slicing must not matter.
  The frame limit is picked from the input too (1 KiB to 1 MiB), so the fuzzer reaches it; and
  no error message may carry more than `MAX_ERROR_MESSAGE` characters, whatever the peer sent,
  so an error frame always fits under the limit that let the request in.
- `body`: the bytes as one frame body, after a `hello`, through the server connection's path
  from frame to request dataclass: `decode_body()`, the envelope checks, `from_fields()`. A
  request it accepts must read back the same from its own `to_fields()`.
- `record`: a msgpack value built from the input (any type, in any field of a chosen request
  type, boundary numbers, long strings), packed and run through the same path. The msgpack
  C extension is not instrumented, so building values in Python reaches the field converters
  in far fewer runs than mutating packed bytes.
- `invite`: the bytes as an invite string (decoded like a command-line argument, undecodable
  bytes kept as surrogates), through `parse_invite()`.

Only the protocol's own errors may come out: `RemoteProtocolError` for a broken stream or frame,
`RequestError` for a bad request or invite. Anything else — a `TypeError`, a
`LocalProtocolError` from answering, an accepted request that does not survive its own
`to_fields()`, an invite that does not parse back from `str()` — is a crash, and libFuzzer saves
the input as `crash-<sha1>`. The run stops by itself (`-atheris_runs=N` or `-max_total_time=S`)
and libFuzzer's last line says how many inputs ran ("Done N runs in S second(s)").

`fuzz_one()` needs no atheris: `tests/test_fuzz_atheris.py` runs it over hypothesis-generated
inputs and the seed corpus below, so CI exercises it everywhere.
"""

from __future__ import annotations

import importlib.util
import random
import struct
import sys
import tempfile
import typing
import urllib.parse
from pathlib import Path

import msgpack

from corridor.protocol import CLOSED, NEED_DATA, BadRequest, Connection, ReceivedRequest, make_error
from corridor.protocol.errors import RemoteProtocolError, RequestError
from corridor.protocol.framing import DEFAULT_MAX_FRAME_BYTES, encode_frame
from corridor.protocol.invites import parse_invite
from corridor.protocol.messages import REQUESTS
from corridor.protocol.schema import Bound, Record

TARGETS = ("stream", "body", "record", "invite")
KINDS = sorted(REQUESTS)
FRAME_LIMITS = (1024, 4096, DEFAULT_MAX_FRAME_BYTES)
# The longest fixed text of an error message is about 130 characters; a message longer than this
# is echoing the peer's input back, unbounded.
MAX_ERROR_MESSAGE = 512
FIELD_NAMES = sorted({name for cls in REQUESTS.values() for name in cls.__dataclass_fields__} | {"type", "id"})
# Numbers at the edges of what msgpack carries and of the bounds the schema declares.
EDGE_INTS = (0, 1, -1, 2**31, 2**53, 2**53 + 1, 2**62, 2**62 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 36500, 1_000_000)
EDGE_FLOATS = (0.0, -0.0, 1e308, -1e308, float("inf"), float("-inf"), float("nan"), 5e-324)
_HELLO = encode_frame({"type": "hello", "id": 1, "versions": [1]})


class FuzzBug(AssertionError):
    """An input broke a protocol property (not just an unexpected exception)."""


# -- stream -----------------------------------------------------------------------------------


def _serve(stream: bytes, limit: int, cuts: list[int]) -> list[tuple]:
    """What a server connection makes of `stream` cut at `cuts`: one entry per event, ending with
    the error that broke it, if any. Answers every request as the server does."""
    conn = Connection("server", limit)
    seen: list[tuple] = []
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    try:
        for piece in [*pieces, b""]:
            conn.receive_data(piece)
            while (event := conn.next_event()) not in (NEED_DATA, CLOSED):
                if isinstance(event, BadRequest):
                    _check_message(event.error)
                    seen.append(("bad", event.id, event.error.code, event.error.message))
                    conn.send_failure(event.id, event.error)  # the server echoes its error back
                elif isinstance(event, ReceivedRequest):
                    seen.append(("request", event.id, event.message))
                    conn.send_failure(event.id, make_error("FORBIDDEN"))
                else:
                    raise FuzzBug(f"a server connection returned {event!r}")
    except RemoteProtocolError as exc:
        _check_message(exc)
        conn.send_fatal(exc)  # the server's last frame before it closes must be sendable too
        seen.append(("fatal", exc.code))
    return seen


def _check_message(error: Exception) -> None:
    message = str(error)
    if len(message) > MAX_ERROR_MESSAGE:
        raise FuzzBug(f"an error message of {len(message)} characters echoes the input: {message[:200]!r}…")


def fuzz_stream(data: bytes) -> None:
    """Server-side connection over `data[1:]`, cut into chunks chosen by `data[0]`."""
    if not data:
        return
    limit = FRAME_LIMITS[data[0] % len(FRAME_LIMITS)]
    stream = data[1:]
    rng = random.Random(data[0])
    cuts, at = [], 0
    while True:
        at += rng.choice((1, 1, 2, 3, 4, 5, 7, 64, 4096))
        if at >= len(stream):
            break
        cuts.append(at)
    whole, sliced = _serve(stream, limit, []), _serve(stream, limit, cuts)
    if repr(whole) != repr(sliced):  # repr(): a NaN in a field then equals itself
        raise FuzzBug(f"the events depend on how the stream is cut:\nwhole:  {whole!r}\nsliced: {sliced!r}")


# -- body and record ----------------------------------------------------------------------------


def _to_request(body: bytes) -> None:
    """A frame body through a server connection that has had its `hello`: decoding, the envelope
    checks and `from_fields()`, the server's own path; then the accepted request's round trip."""
    conn = Connection("server")
    conn.receive_data(_HELLO)
    (hello,) = _drain(conn)
    conn.send_failure(hello.id, make_error("FORBIDDEN"))
    conn.receive_data(struct.pack(">I", len(body)) + body)
    for event in _drain(conn):
        if isinstance(event, BadRequest):
            _check_message(event.error)
            continue
        cls = type(event.message)
        again = cls.from_fields(event.message.to_fields())
        if repr(again) != repr(event.message):
            raise FuzzBug(f"{cls.TYPE}: {event.message!r} reads back as {again!r}")


def _drain(conn: Connection) -> list:
    events = []
    while (event := conn.next_event()) not in (NEED_DATA, CLOSED):
        events.append(event)
    return events


def fuzz_body(data: bytes) -> None:
    """`data` as one msgpack frame body."""
    try:
        _to_request(data)
    except RemoteProtocolError:
        pass


class _Input:
    """Values drawn from the fuzz input, most significant choices first (like a FuzzedDataProvider,
    but in plain Python so the pytest run needs no atheris)."""

    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def pick(self, options: typing.Sequence):
        return options[self.byte() % len(options)]

    def take(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += len(chunk)
        return chunk


def _value(src: _Input, depth: int = 0):
    """Any msgpack-able value: scalars at the edges, strings near every length bound, containers."""
    tag = src.byte() % (10 if depth < 4 else 7)
    if tag == 0:
        return None
    if tag == 1:
        return bool(src.byte() & 1)
    if tag == 2:
        return src.pick(EDGE_INTS) + (src.byte() % 3) - 1 if src.byte() & 1 else int.from_bytes(src.take(2), "big")
    if tag == 3:
        return src.pick(EDGE_FLOATS) if src.byte() & 1 else struct.unpack(">d", src.take(8).ljust(8, b"\0"))[0]
    if tag == 4:
        return src.take(src.byte()).decode("utf-8", "replace")
    if tag == 5:
        return src.take(src.byte())
    if tag == 6:  # one character repeated to a length at or next to a schema bound
        n = src.pick((0, 1, 5, 6, 63, 64, 65, 100, 128, 129, 200, 256, 1024, 1025, 4096, 4097, 32_000, 32_001))
        return src.pick(("a", "张", "\x00", "/", "0")) * n
    if tag == 7:
        return [_value(src, depth + 1) for _ in range(src.byte() % 5)]
    if tag == 8:
        return {src.pick(FIELD_NAMES): _value(src, depth + 1) for _ in range(src.byte() % 4)}
    # An array at or next to an item bound, of one scalar (kept short, so the frame stays sendable).
    item = _value(src, 4)
    if isinstance(item, (str, bytes)):
        item = item[:8]
    return [item] * src.pick((0, 7, 8, 16, 17, 64, 65, 100, 101, 256, 257, 1000, 1001))


def fuzz_record(data: bytes) -> None:
    """A request type and fields built from `data`, packed and decoded like a received frame."""
    src = _Input(data)
    cls = REQUESTS[src.pick(KINDS)]
    frame: dict = {"type": cls.TYPE, "id": 2}
    names = list(cls.__dataclass_fields__)
    for name in names:
        choice = src.byte() % 4
        if choice == 0:
            continue  # absent (missing, or left at its default)
        frame[name] = _value(src) if choice < 3 else _valid(typing.get_type_hints(cls, include_extras=True)[name])
    if src.byte() & 1:
        frame[src.pick(FIELD_NAMES)] = _value(src)  # an unknown or envelope key
    try:
        body = msgpack.packb(frame, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return  # not representable in msgpack, so no peer can send it
    try:
        _to_request(body)
    except RemoteProtocolError:
        pass


# -- invites ------------------------------------------------------------------------------------


def fuzz_invite(data: bytes) -> None:
    """`data` as a pasted invite (undecodable bytes kept as surrogates, as in `sys.argv`)."""
    text = data.decode("utf-8", "surrogateescape")
    try:
        invite = parse_invite(text)
    except RequestError:
        return
    again = parse_invite(str(invite))
    if again != invite:
        raise FuzzBug(f"{text!r} parses as {invite!r}, which prints as {invite}, which parses as {again!r}")


# -- the target ---------------------------------------------------------------------------------

_TARGET_FUNCTIONS = {"stream": fuzz_stream, "body": fuzz_body, "record": fuzz_record, "invite": fuzz_invite}


def fuzz_one(data: bytes) -> None:
    """One fuzz input: the first byte picks the target, the rest is its input. Raises only on a bug."""
    if data:
        _TARGET_FUNCTIONS[TARGETS[data[0] % len(TARGETS)]](data[1:])


# -- seed corpus ----------------------------------------------------------------------------------


def _valid(hint):
    """The smallest value that satisfies a field's type and bounds (for seeds and valid fields)."""
    bound = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        bound = next((e for e in extras if isinstance(e, Bound)), None)
    args = typing.get_args(hint)
    if type(None) in args:
        (hint,) = [a for a in args if a is not type(None)]
        return _valid(hint) if bound is None else _valid(typing.Annotated[hint, bound])
    if typing.get_origin(hint) is tuple:
        return [_valid(args[0])]
    if isinstance(hint, type) and issubclass(hint, Record):
        hints = typing.get_type_hints(hint, include_extras=True)
        return {name: _valid(hints[name]) for name in hint.__dataclass_fields__}
    if hint is bool:
        return False
    if hint in (int, float):
        return int(bound.min) if bound and bound.min is not None else 1
    if bound and bound.choices:
        return bound.choices[0]
    length = max(bound.min_len if bound else 0, 1)
    return b"x" * length if hint is bytes else ("0" * length if length == 64 else "a" * length)


def valid_frame(cls) -> dict:
    """A frame of request type `cls` with every field at its smallest valid value."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {"type": cls.TYPE, "id": 2, **{name: _valid(hints[name]) for name in cls.__dataclass_fields__}}


def seed_inputs() -> list[bytes]:
    """Starting points: for each request type a valid frame after a `hello` (stream) and alone
    (body), a field-building input, and a few invites."""
    seeds = []
    for index, kind in enumerate(KINDS):
        frame = encode_frame(valid_frame(REQUESTS[kind]))
        seeds.append(bytes([TARGETS.index("stream"), 2]) + _HELLO + frame + frame)
        seeds.append(bytes([TARGETS.index("body")]) + frame[4:])
        seeds.append(bytes([TARGETS.index("record"), index, 3, 3, 3, 3, 3, 3]))
    for invite in (
        "corridor://chat.acme.local:7740/enroll?token=abc_DEF-123&ca=sha256:" + "ab" * 32,
        "corridor://[fd00::1]:7740/enroll?token=a%2Fb&ca=sha256:" + "0" * 64,
        "corridor://10.0.0.5:1/enroll?ca=sha256:" + "f" * 64 + "&token=x",
    ):
        seeds.append(bytes([TARGETS.index("invite")]) + invite.encode())
    return seeds


def main(argv: list[str]) -> None:
    """Run the campaign: `argv` is libFuzzer's (corpus dirs, `-max_total_time=S`, `-atheris_runs=N`)."""
    import atheris  # only here: importing this module (as the pytest run does) needs no atheris

    # Coverage of the protocol package is what guides the mutations, and atheris instruments a
    # module as it is imported. This file has imported it already, uninstrumented, so load the
    # package and this file afresh under instrumentation and fuzz that copy. (instrument_all()
    # would do it in place, but takes half a minute over everything loaded.)
    for name in [name for name in sys.modules if name.startswith("corridor.protocol")]:
        del sys.modules[name]
    with atheris.instrument_imports(include=["corridor.protocol", "corridor_fuzz_target"]):
        spec = importlib.util.spec_from_file_location("corridor_fuzz_target", __file__)
        target = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(target)
    for function in (urllib.parse.urlsplit, urllib.parse.parse_qsl, urllib.parse.unquote, urllib.parse.quote):
        atheris.instrument_func(getattr(function, "__wrapped__", function))  # the invite parser's stdlib half, loaded long before
    seed_dir = Path(tempfile.mkdtemp(prefix="corridor-fuzz-seeds-"))
    for number, seed in enumerate(target.seed_inputs()):
        (seed_dir / f"seed-{number:03d}").write_bytes(seed)
    # libFuzzer writes new inputs into the first corpus dir given: the caller's, if any, else the seeds'.
    atheris.Setup([*argv, str(seed_dir)], target.fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
