"""The client side of the wire: a trusted connection, one line out, one line back, by a deadline.

Shared by `helperd_client.client.Client` (which keeps its connection between calls), the
keyring shim and the on-demand start (which ask once on a fresh connection): each connect is
checked by `helperd_client.trust` before a byte is sent, and every wait ends at a deadline
(``time.monotonic()`` seconds), so no call can hang.

Stdlib only, and light: the keyring shim imports it on every call, so it imports neither
typing, pathlib nor dataclasses.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

from helperd_client.errors import DaemonNotRunningError, DaemonUnreachableError
from helperd_client.trust import check_peer, check_socket_folder
from helperd_client.wire import MAX_RESPONSE, decode_line, encode_line

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the keyring shim must not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from os import PathLike
    from typing import Any

__all__ = [
    "BUSY_FIRST_PAUSE",
    "BUSY_MAX_PAUSE",
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "START_HINT",
    "TIMEOUT_ENV",
    "Closed",
    "ask_once",
    "ask_served",
    "connect",
    "env_timeout",
    "is_busy",
    "read_line",
    "remaining",
]

DEFAULT_TIMEOUT = 2.0
"""Seconds a call may take, connect and answer included (override: HELPERD_TIMEOUT)."""

TIMEOUT_ENV = "HELPERD_TIMEOUT"
"""The variable that overrides `DEFAULT_TIMEOUT` for every client."""

MAX_TIMEOUT = 3600.0
"""The longest timeout a client takes (a larger one, ``inf`` included, is cut to it): every
call stays bounded."""

START_HINT = (
    "start it with `helperd &`, or `systemctl --user start helperd.socket` where it is"
    " installed as a service"
)


BUSY_FIRST_PAUSE = 0.005
BUSY_MAX_PAUSE = 0.1
"""First and longest pause before asking again a daemon that answered ``busy``."""


class Closed(Exception):
    """The daemon closed the connection before a whole response arrived."""


def env_timeout(env: Mapping[str, str] | None = None) -> float:
    """``$HELPERD_TIMEOUT`` in seconds when it is a positive number (at most `MAX_TIMEOUT`),
    else `DEFAULT_TIMEOUT` (not a number, ``nan``, zero or less)."""
    env = os.environ if env is None else env
    try:
        value = float(env.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return min(value, MAX_TIMEOUT) if value > 0 else DEFAULT_TIMEOUT  # nan > 0 is False


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline``; `TimeoutError` when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def connect(path: str | PathLike[str], deadline: float, timeout: float) -> socket.socket:
    """A connection to the daemon at ``path``, its folder and its listener checked (trust).

    Args:
        path: the socket.
        deadline: when to give up (``time.monotonic()``).
        timeout: the seconds the caller allowed, for the message only.

    Raises:
        DaemonNotRunningError: nothing listens there (no folder, no socket, refused).
        DaemonUnreachableError: no connection by the deadline, or another connect failure.
        UntrustedSocketError: the folder or the listener is not the caller's own.
    """
    where = os.fspath(path)
    # Before a byte goes out: the socket's folder must be ours (helperd_client.trust).
    if not check_socket_folder(where):
        raise DaemonNotRunningError(f"helperd is not running (no folder for {where}): {START_HINT}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        while True:
            sock.settimeout(remaining(deadline))
            try:
                sock.connect(where)
                break
            except BlockingIOError:
                # A full listen backlog answers EAGAIN on a Unix socket, not a wait:
                # try again shortly, within the same deadline.
                time.sleep(min(0.01, remaining(deadline)))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise DaemonNotRunningError(
            f"helperd is not running (nothing listens on {where}): {START_HINT}"
        ) from None
    except TimeoutError:
        sock.close()
        raise DaemonUnreachableError(
            f"helperd at {where} did not accept a connection within {timeout:g} s"
        ) from None
    except OSError as exc:
        sock.close()
        raise DaemonUnreachableError(
            f"cannot connect to helperd at {where}: {exc.strerror or exc}"
        ) from None
    try:
        check_peer(sock, where)
    except BaseException:
        sock.close()
        raise
    return sock


def read_line(sock: socket.socket, buffer: bytearray, deadline: float) -> bytes:
    """Read from ``sock`` into ``buffer`` until it holds a whole line; cut that line off it.

    What arrives stays in ``buffer`` whatever happens, so a caller can tell a connection
    closed before any byte of the answer from one closed halfway.

    Raises:
        Closed: the daemon closed the connection first.
        DaemonUnreachableError: the response grew past `MAX_RESPONSE`.
        TimeoutError: the deadline passed.
        OSError: the connection failed.
    """
    while b"\n" not in buffer:
        if len(buffer) > MAX_RESPONSE:
            raise DaemonUnreachableError("the daemon sent an oversized response")
        sock.settimeout(remaining(deadline))
        chunk = sock.recv(65_536)
        if not chunk:
            raise Closed
        buffer += chunk
    end = buffer.index(b"\n")
    line = bytes(buffer[:end])
    del buffer[: end + 1]
    return line


def is_busy(response: Mapping[str, Any]) -> bool:
    """Whether ``response`` is the ``busy`` error (the daemon's cap reached, every connection
    in use): the daemon closed that connection, and a new one may be served shortly."""
    error = response.get("error")
    return isinstance(error, dict) and error.get("code") == "busy"


def ask_once(path: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send ``message`` on a new connection; the response object, its ``ok`` left to the caller.

    Raises:
        DaemonNotRunningError: nothing listens at ``path``.
        DaemonUnreachableError: no answer within ``timeout`` seconds, or the connection failed.
        UntrustedSocketError: the socket's folder or its listener is not the caller's own.
        BadRequestError: the answer is not a JSON object.
    """
    return _ask(path, message, time.monotonic() + timeout, timeout)


def ask_served(path: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """`ask_once`, again on a new connection while the daemon answers ``busy``, backing off,
    all within ``timeout``; a ``busy`` still answered when the time is up is returned as is.

    Raises:
        The errors of `ask_once`.
    """
    deadline = time.monotonic() + timeout
    pause = BUSY_FIRST_PAUSE
    while True:
        response = _ask(path, message, deadline, timeout)
        if not is_busy(response) or time.monotonic() + pause >= deadline:
            return response
        time.sleep(pause)
        pause = min(pause * 2, BUSY_MAX_PAUSE)


def _ask(path: str, message: dict[str, Any], deadline: float, timeout: float) -> dict[str, Any]:
    """`ask_once` by ``deadline``; ``timeout`` is for the messages only."""
    sock = connect(path, deadline, timeout)
    try:
        sock.settimeout(remaining(deadline))
        # Closed at once: the daemon may have said why (busy) first; read it below.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(encode_line(message))
        line = read_line(sock, bytearray(), deadline)
    except Closed:
        raise DaemonUnreachableError(
            f"helperd at {path} closed the connection without answering"
        ) from None
    except TimeoutError:
        raise DaemonUnreachableError(
            f"helperd at {path} did not answer within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise DaemonUnreachableError(
            f"lost the connection to helperd at {path}: {exc.strerror or exc}"
        ) from None
    finally:
        sock.close()
    return decode_line(line)
