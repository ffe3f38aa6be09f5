"""Frames: a 4-byte big-endian length, then one msgpack map.

The decoder is incremental (feed it any slicing of the stream) and holds its own limits: a
declared length over `max_frame_bytes` is refused as soon as the 4-byte header is seen, before
any of the body is buffered, so a peer cannot make us allocate more than one frame's worth.
msgpack is unpacked strictly: a map at the top, string keys, no ext types, bounded lengths and
bounded nesting depth.
"""

from __future__ import annotations

import struct

import msgpack

from .errors import LocalProtocolError, RemoteProtocolError

DEFAULT_MAX_FRAME_BYTES = 1024 * 1024
MAX_NESTING = 8
MAX_ARRAY_LEN = 10_000
MAX_MAP_LEN = 1_000
_HEADER = struct.Struct(">I")


def _refuse_ext(code: int, data: bytes) -> object:
    raise RemoteProtocolError("msgpack ext types are not allowed", code="BAD_FRAME")


def _depth(value: object, level: int = 1) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def decode_body(body: bytes) -> dict:
    """Unpack one frame body strictly; anything but a string-keyed map raises RemoteProtocolError."""
    try:
        value = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
            max_str_len=len(body),
            max_bin_len=len(body),
            max_array_len=MAX_ARRAY_LEN,
            max_map_len=MAX_MAP_LEN,
            max_ext_len=0,
        )
    except RemoteProtocolError:
        raise
    except Exception as exc:  # msgpack raises a zoo of ValueError/TypeError subclasses
        raise RemoteProtocolError(f"frame is not valid msgpack: {exc}", code="BAD_FRAME") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError("a frame must hold one msgpack map", code="BAD_FRAME")
    if _depth(value) > MAX_NESTING:
        raise RemoteProtocolError(f"frame nests deeper than {MAX_NESTING} levels", code="BAD_FRAME")
    return value


def encode_frame(payload: dict, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Pack one map as a frame; refuses (locally) a frame the peer would refuse."""
    body = msgpack.packb(payload, use_bin_type=True)
    if len(body) > max_frame_bytes:
        raise LocalProtocolError(f"frame of {len(body)} bytes is over the {max_frame_bytes}-byte limit", code="FRAME_TOO_LARGE")
    return _HEADER.pack(len(body)) + body


class FrameDecoder:
    """Turns a byte stream, in any slicing, into frame maps."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._need: int | None = None

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        self._buffer += data
        self._check_header()

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned frame."""
        return len(self._buffer)

    def _check_header(self) -> None:
        if self._need is None and len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > self.max_frame_bytes:
                raise RemoteProtocolError(
                    f"declared frame length {length} is over the {self.max_frame_bytes}-byte limit", code="FRAME_TOO_LARGE"
                )
            if length == 0:
                raise RemoteProtocolError("empty frame", code="BAD_FRAME")
            self._need = length

    def next_frame(self) -> dict | None:
        """The next complete frame, or None until more bytes arrive."""
        self._check_header()
        if self._need is None or len(self._buffer) < _HEADER.size + self._need:
            return None
        end = _HEADER.size + self._need
        body = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        self._need = None
        return decode_body(body)
