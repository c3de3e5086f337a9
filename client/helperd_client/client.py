"""`Client`: one request, one response, over the daemon's Unix socket, always bounded in time.

Stdlib only. A `Client` keeps its connection open between calls (one lock serialises the
calls of several threads) and reconnects after any failure. A kept connection that the daemon
has closed meanwhile (its idle read timeout, its connection cap, a restart) is noticed before
use, or, when the close races the request, the request is sent once more on a new
connection: the daemon never closes a connection whose request it has read, so nothing is
done twice. After a fork the child opens a connection of its own. Every call has a deadline:
a daemon that is down answers `DaemonUnreachableError` at once, one that hangs answers it
when the read timeout runs out.

Before a byte is sent, the socket's folder and, after ``connect``, the listener's UID are
checked (`helperd_client.trust`): a socket that is not the user's own raises
`UntrustedSocketError`. A `Client` never starts a daemon: nothing listening raises
`DaemonNotRunningError` (helperctl's exit 3); only the keyring plugin and the shim start
one on demand (`helperd_client.autostart`).
"""

from __future__ import annotations

import builtins
import os
import select
import socket
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from helperd_client.errors import (
    BadRequestError,
    DaemonUnreachableError,
    HelperdError,
    ProtocolMismatchError,
    UnsupportedVersionError,
    error_for_code,
)
from helperd_client.paths import socket_path as default_socket_path
from helperd_client.results import Credential, Hello, RecordInfo, Status
from helperd_client.transport import (
    BUSY_FIRST_PAUSE,
    BUSY_MAX_PAUSE,
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    Closed,
    connect,
    env_timeout,
    is_busy,
    read_line,
    remaining,
)
from helperd_client.wire import PROTOCOL_VERSION, decode_line, encode_line

__all__ = [
    "DEFAULT_TIMEOUT",
    "PASSPHRASE_TIMEOUT",
    "PROVIDER_SET_TIMEOUT",
    "UPSTREAM_TIMEOUT",
    "Client",
    "Credential",
    "Hello",
    "RecordInfo",
    "Status",
]

PASSPHRASE_TIMEOUT = 90.0
"""Seconds for calls that carry a passphrase: long enough for the KDF on a slow machine."""

PROVIDER_SET_TIMEOUT = 70.0
"""Seconds for a ``set`` with a provider: the daemon's run bound (60 s) and a margin."""

UPSTREAM_TIMEOUT = 120.0
"""Seconds for calls that wait on the upstream secret engine (a refresh reads every secret
under the prefix, each of its HTTP calls bounded by the daemon)."""


LIST_PAGE = 2_000
"""Records per ``list`` call when `Client.list` pages (the daemon allows up to 5,000)."""


def _bounded(seconds: float) -> float:
    """``seconds`` cut to `MAX_TIMEOUT`; ValueError unless it is a positive number."""
    if not seconds > 0:  # nan included
        raise ValueError(f"a timeout must be a positive number of seconds, not {seconds!r}")
    return min(seconds, MAX_TIMEOUT)


class Client:
    """A connection to the helperd daemon.

    Args:
        path: the socket (default: SPEC.md's rule, `helperd_client.paths.socket_path`).
        timeout: seconds one call may take, connect included (default: ``$HELPERD_TIMEOUT``
            or `DEFAULT_TIMEOUT`); more than `MAX_TIMEOUT` is cut to it.
        passphrase_timeout: seconds for ``init``, ``unlock`` and ``passwd`` (cut the same way).

    Raises:
        ValueError: a timeout is not a positive number (zero, negative, ``nan``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = None,
        passphrase_timeout: float = PASSPHRASE_TIMEOUT,
    ) -> None:
        self.path = Path(path) if path is not None else default_socket_path()
        self.timeout = _bounded(timeout) if timeout is not None else env_timeout()
        self.passphrase_timeout = max(_bounded(passphrase_timeout), self.timeout)
        self._sock: socket.socket | None = None
        self._pid = 0  # the process that opened _sock
        self._buffer = bytearray()
        self._next_id = 1
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Client({str(self.path)!r}, timeout={self.timeout})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        with self._lock:
            self._disconnect()

    def __del__(self) -> None:
        # A one-shot `Client().get(...)` must not leak its socket until interpreter exit.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    # --- operations -------------------------------------------------------------------

    def hello(self) -> Hello:
        """Ask who answers; raises `ProtocolMismatchError` when the protocols differ."""
        result = self.request("hello")
        hello = Hello(result["daemon"], result["protocol"], result["version"], tuple(result["ops"]))
        if hello.protocol != PROTOCOL_VERSION:
            raise _mismatch(hello.protocol)
        return hello

    def status(self) -> Status:
        """The daemon's state: store, why it was chosen, lock state, counts."""
        r = self.request("status")
        return Status(**{k: r[k] for k in Status.__dataclass_fields__ if k in r})

    def get(
        self,
        *,
        name: str | None = None,
        url: str | None = None,
        service: str | None = None,
        username: str | None = None,
    ) -> Credential:
        """Look a credential up by exactly one of ``name``, ``url`` or ``service``."""
        args = {"name": name, "url": url, "service": service, "username": username}
        return Credential.from_wire(self.request("get", **_present(args)))

    def set(
        self,
        name: str | None,
        password: str | None,
        *,
        service: str | None = None,
        username: str | None = None,
        kind: str | None = None,
        urls: list[str] | tuple[str, ...] | None = None,
        expires_at: datetime | None = None,
        provider: Mapping[str, Any] | None = None,
        upstream: bool = False,
    ) -> RecordInfo:
        """Add or replace the (name, username) record; returns its public facts.

        Give ``name`` (a repository, or a generic entry's service with ``kind="generic"``),
        or ``name=None`` and a raw keyring ``service`` that the daemon resolves as keyring
        writes are (``poetry-repository-NAME`` is repository NAME, and so on).
        With ``provider`` (a provider spec, see docs/protocol.md) and ``password`` None, the
        daemon runs the provider once and stores its token; this call then waits up to
        `PROVIDER_SET_TIMEOUT`, as a cloud CLI may take seconds.
        With ``upstream``, the daemon writes the secret to its upstream secret engine.
        """
        args: dict[str, Any] = {
            "name": name,
            "service": service,
            "password": password,
            "kind": kind,
            "username": username,
            "urls": None if urls is None else list(urls),
            "expires_at": None if expires_at is None else expires_at.isoformat(),
            "provider": None if provider is None else dict(provider),
        }
        timeout = None if provider is None else max(self.timeout, PROVIDER_SET_TIMEOUT)
        if upstream:  # the engine answers over the network: the longer bound
            args["upstream"] = True
            timeout = max(self.timeout, UPSTREAM_TIMEOUT)
        result = self.request("set", _timeout=timeout, **_present(args))
        return RecordInfo.from_wire(result["record"])

    def delete(
        self, name: str | None, username: str | None = None, *, service: str | None = None
    ) -> int:
        """Delete one record, or every record of ``name``; returns how many went.

        As for `set`, a raw keyring ``service`` may stand in for ``name``.
        """
        args = {"name": name, "service": service, "username": username}
        return int(self.request("delete", **_present(args))["deleted"])

    def list(self) -> list[RecordInfo]:
        """Every record's public facts, asked for page by page (each page its own call)."""
        try:
            records, after = self.list_page(LIST_PAGE)
        except BadRequestError:
            # A daemon older than list pages refuses limit: ask for everything at once.
            return [RecordInfo.from_wire(r) for r in self.request("list")["records"]]
        while after is not None:
            more, after = self.list_page(LIST_PAGE, after)
            records.extend(more)
        return records

    def list_page(
        self, limit: int, after: tuple[str, str] | None = None
    ) -> tuple[builtins.list[RecordInfo], tuple[str, str] | None]:
        """Up to ``limit`` records after the key ``after`` (name, username), sorted by key,
        and the key to pass as ``after`` for the next page (None after the last one)."""
        args: dict[str, Any] = {"limit": limit}
        if after is not None:
            args["after"] = {"name": after[0], "username": after[1]}
        result = self.request("list", **args)
        found = result.get("next")
        following = None if found is None else (found["name"], found["username"])
        return [RecordInfo.from_wire(r) for r in result["records"]], following

    def init(self, passphrase: str | None) -> None:
        """Create a new passphrase-protected file store."""
        self.request(
            "init", _timeout=self.passphrase_timeout, **_present({"passphrase": passphrase})
        )

    def lock(self) -> None:
        """Drop the store's key from the daemon's memory."""
        self.request("lock")

    def unlock(self, passphrase: str | None) -> None:
        """Open the store (never creates one)."""
        args = _present({"passphrase": passphrase})
        self.request("unlock", _timeout=self.passphrase_timeout, **args)

    def passwd(self, old: str, new: str) -> None:
        """Re-encrypt the file store under a new passphrase."""
        self.request("passwd", _timeout=self.passphrase_timeout, old=old, new=new)

    def migrate(self, to: str, passphrase: str | None = None) -> tuple[int, str]:
        """Move every record to the ``to`` store (``keyring`` or ``file``).

        Returns:
            How many records moved, and why the daemon uses the new store.
        """
        args = _present({"to": to, "passphrase": passphrase})
        result = self.request("migrate", _timeout=self.passphrase_timeout, **args)
        return int(result["moved"]), str(result["store_reason"])

    def upstream(self, action: str) -> dict[str, Any]:
        """The upstream secret engine: ``show`` its settings and state, ``test`` it, or
        ``refresh`` the cache now; returns the daemon's answer as it is."""
        timeout = None if action == "show" else UPSTREAM_TIMEOUT
        return self.request("upstream", _timeout=timeout, action=action)

    # --- transport --------------------------------------------------------------------

    def request(self, op: str, *, _timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Send one request and return its ``result``, or raise the daemon's error."""
        timeout = self.timeout if _timeout is None else _timeout
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            line = encode_line({"v": PROTOCOL_VERSION, "id": request_id, "op": op, **args})
            deadline = time.monotonic() + timeout
            try:
                response = self._send_until_served(line, deadline)
            except BaseException:
                self._disconnect()
                raise
        if response.get("v") != PROTOCOL_VERSION:
            raise _mismatch(response.get("v"))
        if response.get("ok") is True and response.get("id") == request_id:
            result = response.get("result")
            return result if isinstance(result, dict) else {}
        error = response.get("error")
        if not isinstance(error, dict):
            raise HelperdError("the daemon sent a response this client does not understand")
        exc = error_for_code(str(error.get("code")), str(error.get("message")))
        if isinstance(exc, UnsupportedVersionError):
            raise ProtocolMismatchError(exc.message)
        raise exc

    def _send_until_served(self, line: bytes, deadline: float) -> dict[str, Any]:
        """`_send`, again on a new connection while the daemon answers ``busy`` (its connection
        cap is reached and every connection is in use), backing off, within the deadline."""
        pause = BUSY_FIRST_PAUSE
        while True:
            response = self._send(line, deadline)
            if not is_busy(response):
                return response
            self._disconnect()  # the daemon closed it
            if time.monotonic() + pause >= deadline:
                return response  # raised as BusyError: helperctl exits 1
            time.sleep(pause)
            pause = min(pause * 2, BUSY_MAX_PAUSE)

    def _send(self, line: bytes, deadline: float) -> dict[str, Any]:
        """Exchange ``line``; when a kept connection turns out closed, once more on a new one."""
        try:
            return self._exchange(line, deadline)
        except _ClosedBeforeReading:
            self._disconnect()
        return self._exchange(line, deadline)  # a new connection: never _ClosedBeforeReading

    def _exchange(self, line: bytes, deadline: float) -> dict[str, Any]:
        reused = self._sock is not None and self._usable()
        sock = self._connect(deadline)
        try:
            sock.settimeout(remaining(deadline))
            try:
                sock.sendall(line)
            except (BrokenPipeError, ConnectionResetError):
                if reused:
                    raise
                # A new connection closed at once: the daemon may have said why (busy) first.
                return decode_line(read_line(sock, self._buffer, deadline))
            return decode_line(read_line(sock, self._buffer, deadline))
        except (BrokenPipeError, ConnectionResetError, Closed) as exc:
            if reused and not self._buffer:
                raise _ClosedBeforeReading from None
            raise DaemonUnreachableError(
                f"helperd at {self.path} closed the connection without answering"
                if isinstance(exc, Closed)
                else f"lost the connection to helperd at {self.path}: {exc.strerror}"
            ) from None
        except TimeoutError:
            raise DaemonUnreachableError(
                f"helperd at {self.path} did not answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise DaemonUnreachableError(
                f"lost the connection to helperd at {self.path}: {exc.strerror or exc}"
            ) from None

    def _usable(self) -> bool:
        """Whether the kept connection may carry a request; if not, it is dropped.

        The daemon never speaks first, so a kept connection that polls readable has been
        closed (or reset) by it. A connection opened by another process (before a fork) is
        the parent's: the child leaves it alone and opens its own.
        """
        sock = self._sock
        if sock is None:
            return False
        if self._pid == os.getpid():
            poller = select.poll()  # not select(): it fails on descriptors above 1023
            poller.register(sock, select.POLLIN)
            try:
                readable = bool(poller.poll(0))
            except OSError:
                readable = True
            if not readable:
                return True
        self._disconnect()
        return False

    def _connect(self, deadline: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = connect(self.path, deadline, self.timeout)
        self._sock = sock
        self._pid = os.getpid()
        self._buffer = bytearray()
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = bytearray()


class _ClosedBeforeReading(Exception):
    """A kept connection was closed with no byte of the response sent: the daemon had not
    read the request (it never closes a connection whose request it has read)."""


def _present(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if v is not None}


def _mismatch(theirs: object) -> ProtocolMismatchError:
    return ProtocolMismatchError(
        f"helperd speaks protocol v{theirs} but this client speaks v{PROTOCOL_VERSION}:"
        " upgrade the older of the two (helperd and helperd-client come in matching versions)"
    )
