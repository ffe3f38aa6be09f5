"""Corridor's wire protocol, without I/O: frames, typed messages, versions, errors, invites."""

from .connection import CLOSED, NEED_DATA, BadRequest, Connection, Failure, Push, ReceivedRequest, Result
from .errors import CATALOGUE, CorridorError, make_error
from .framing import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encode_frame
from .invites import Invite, parse_invite
from .versions import SUPPORTED_VERSIONS, negotiate

__all__ = [
    "CATALOGUE",
    "CLOSED",
    "DEFAULT_MAX_FRAME_BYTES",
    "NEED_DATA",
    "SUPPORTED_VERSIONS",
    "BadRequest",
    "Connection",
    "CorridorError",
    "Failure",
    "FrameDecoder",
    "Invite",
    "Push",
    "ReceivedRequest",
    "Result",
    "encode_frame",
    "make_error",
    "negotiate",
    "parse_invite",
]
