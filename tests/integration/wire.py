"""Raw-socket helpers for tests that speak the protocol by hand (bad frames, slow peers)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


def connect(path: Path, timeout: float = 5.0) -> socket.socket:
    """A raw connection to the daemon."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def read_line(sock: socket.socket) -> dict[str, Any] | None:
    """One response line, or None when the daemon closed the connection.

    It takes exactly one line off the socket (peeking for the newline first), so that the
    responses to pipelined requests can be read one by one even when they arrive together.
    """
    data = b""
    while True:
        peeked = sock.recv(65_536, socket.MSG_PEEK)
        if not peeked:
            return None if not data else json.loads(data)
        end = peeked.find(b"\n")
        data += sock.recv(len(peeked) if end < 0 else end + 1)
        if end >= 0:
            parsed: dict[str, Any] = json.loads(data)
            return parsed


def exchange(path: Path, payload: bytes) -> dict[str, Any] | None:
    """Send ``payload`` (one line, newline included) on a new connection; return the answer."""
    with connect(path) as sock:
        sock.sendall(payload)
        return read_line(sock)


def request(op: str, request_id: int | str = 1, **args: Any) -> bytes:
    """A well-formed v1 request line."""
    return json.dumps({"v": 1, "id": request_id, "op": op, **args}).encode() + b"\n"
