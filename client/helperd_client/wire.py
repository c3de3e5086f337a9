"""Framing of protocol v1: one JSON object per line, UTF-8, at most `MAX_LINE` bytes.

Stdlib only: the daemon validates requests with its pydantic models, but both sides agree
on these constants and on how a line is cut and joined.
"""

from __future__ import annotations

import json

from helperd_client.errors import BadRequestError, TooLargeError

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the keyring shim must not import typing
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_LINE", "MAX_RESPONSE", "OPS", "PROTOCOL_VERSION", "decode_line", "encode_line"]

PROTOCOL_VERSION = 1
MAX_LINE = 65_536
"""Longest request line in bytes, newline excluded."""

MAX_RESPONSE = 16 * 1024 * 1024
"""Longest response line a client accepts (a long ``list`` may exceed `MAX_LINE`)."""

OPS: tuple[str, ...] = (
    "hello",
    "status",
    "get",
    "set",
    "delete",
    "list",
    "init",
    "lock",
    "unlock",
    "passwd",
    "migrate",
    "cert_path",
    "upstream",
)


def encode_line(message: dict[str, Any], limit: int = MAX_LINE) -> bytes:
    """Serialise one message as a newline-terminated line.

    Raises:
        TooLargeError: the line would exceed ``limit`` bytes.
    """
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    if len(data) > limit:
        raise TooLargeError(f"message of {len(data)} bytes exceeds the {limit}-byte line limit")
    return data + b"\n"


def decode_line(line: bytes) -> dict[str, Any]:
    """Parse one line (its newline optional) into a JSON object.

    Raises:
        BadRequestError: not UTF-8, not JSON, or not an object. The message never quotes the input.
    """
    try:
        value = json.loads(line.decode("utf-8"))
        readable = True
    except (UnicodeDecodeError, ValueError, RecursionError):
        readable = False
    if not readable:
        # Raised out of the except clause, so it keeps no context: json's error holds the
        # whole line (`from None` only hides a context, which stays on __context__).
        raise BadRequestError("line is not valid UTF-8 JSON")
    if not isinstance(value, dict):
        raise BadRequestError("line is not a JSON object")
    if b"\\u" in line:
        # A \uD800-style escape can smuggle a lone surrogate into a str, which no UTF-8
        # line can carry back: refuse it here rather than fail when answering.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequestError("line holds a lone surrogate: not valid Unicode text") from None
    return value
