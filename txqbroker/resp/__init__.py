"""
RESP, the Redis serialization protocol Disque speaks: an incremental reply
parser (pure Python, or hiredis when installed) and an encoder for commands
and replies.  No Redis client library is involved.
"""

from txqbroker.resp.encoder import as_bytes, encode_command, encode_reply, pack_command
from txqbroker.resp.parser import (
    INCOMPLETE,
    HiredisParser,
    PythonParser,
    hiredis_available,
    make_parser,
)
from txqbroker.resp.types import NULL_ARRAY, ErrorReply, NullArray, Reply, Status

__all__ = [
    "INCOMPLETE",
    "PythonParser",
    "HiredisParser",
    "make_parser",
    "hiredis_available",
    "encode_command",
    "pack_command",
    "encode_reply",
    "as_bytes",
    "Status",
    "NullArray",
    "NULL_ARRAY",
    "ErrorReply",
    "Reply",
]
