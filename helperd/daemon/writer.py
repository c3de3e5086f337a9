"""The writer process: a key-file store's only writer while it runs, so gets never wait on sets.

A ``set`` served by the daemon's event loop costs the gets beside it, even when every byte
of the write happens in a worker thread: on the bench machine a looping writer made them
1.5x-1.8x slower at the median, 3.6x-4.5x at p99. Served in a process of its own: 1.03x-1.05x
and 2.2x-2.4x, the p99 being the daemon's share of a set (applying it) that a get arriving
meanwhile waits for (docs/performance.md, section 5b, which measured both designs). So a
daemon whose store is a key-file `FileStore` starts this process with the first ``set`` it
serves (`helperd.daemon.writer_link`), and:

- hands it each connection whose request is a plain ``set`` (`helperd.daemon.handover`): this
  process serves that request and the sets after it on the same connection with helperd's own
  `Service`, and hands the connection back on its first request of another kind;
- sends it the writes of the requests it serves itself (``delete``, a provider's token, an
  upstream copy), which this process makes durable (the ``rpc`` channel);
- hears from it, after each durable write, the records it changed (in a journal entry's
  text), applies them to the store's snapshot on its event loop, and acknowledges: only then
  does this process answer, so a get on any connection sees the write.

This process opens the store with the key file (never a secret in argv: only paths and
descriptor numbers), holds the store's lock through a descriptor the daemon hands over, ignores
SIGINT and SIGTERM (the daemon ends it), and ends when the daemon closes the channels (after
writing the journal into the file, when asked to ``close``) or when it dies.

Channels (``SOCK_SEQPACKET``, one message each): ``events`` (this process: ``R`` ready, ``F``
failed plus why, ``C`` plus a change; the daemon: ``A`` applied), ``handed`` (connections,
both ways), ``rpc`` (the daemon: ``C`` plus a change, ``Q`` close; this process: ``K`` done,
``E`` plus the error as JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from helperd_client.errors import (
    ForbiddenError,
    HelperdError,
    InternalError,
    TooLargeError,
)
from helperd_client.wire import MAX_LINE

from helperd.core.protocol import RequestError, SetRequest, parse_request, render_error, render_ok
from helperd.core.service import Service
from helperd.daemon.handover import receive, receive_connection, send_connection
from helperd.daemon.hardening import harden_process
from helperd.daemon.peer import peer_uid
from helperd.stores.file_journal import change_text, changes_of
from helperd.stores.file_scribe import Changes
from helperd.stores.file_store import FileStore

__all__ = ["ACK_TIMEOUT", "MAX_MESSAGE", "Writer", "main"]

log = logging.getLogger("helperd.writer")

MAX_MESSAGE = 1 << 20
"""The longest message on the events and rpc channels (a change of a few records)."""

ACK_TIMEOUT = 30.0
"""Longest wait for the daemon to apply a write; past it this process ends, and the daemon,
seeing it gone, opens the store again from disk (which holds the write)."""

SEND_TIMEOUT = 5.0
"""Longest wait to send a client its answer (a client that does not read is dropped)."""


class _Ended(BaseException):
    """The daemon closed a channel, or asked this process to end (no ``except Exception``
    on the way out catches it)."""


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    buffer: bytes
    last_active: float = field(default_factory=time.monotonic)


class Writer:
    """Serves handed connections' sets and the daemon's writes, one at a time.

    Args:
        store: the store, open, this process its only writer.
        events, handed, rpc: this process's ends of the channels (see the module).
        read_timeout: close a connection that sends no complete line for this long.
        max_connections: at this many connections, the longest idle one is closed.
    """

    def __init__(
        self,
        store: FileStore,
        events: socket.socket,
        handed: socket.socket,
        rpc: socket.socket,
        *,
        read_timeout: float,
        max_connections: int,
    ) -> None:
        self._store = store
        self._service = Service(store, store_reason="writer process")
        self._events, self._handed, self._rpc = events, handed, rpc
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._connections: dict[int, _Connection] = {}
        self._selector = selectors.DefaultSelector()
        self._uid = os.getuid()
        self._buffer = bytearray(MAX_MESSAGE)
        store.committed = self._tell
        self._service.prime()  # index the records now, not at the first set

    def run(self) -> None:
        """Serve until the daemon closes the channels or asks for ``close``."""
        self._selector.register(self._handed, selectors.EVENT_READ, self._on_handed)
        self._selector.register(self._rpc, selectors.EVENT_READ, self._on_rpc)
        self._selector.register(self._events, selectors.EVENT_READ, self._on_events)
        try:
            while True:
                for key, _ in self._selector.select(timeout=1.0):
                    callback: Callable[[], None] = key.data
                    callback()
                self._close_idle()
        except _Ended:
            pass
        finally:
            for conn in list(self._connections.values()):
                self._drop(conn)
            self._selector.close()

    # The daemon's channels.

    def _on_events(self) -> None:
        # Only an end arrives here unasked: the daemon's answers are read in _tell.
        raise _Ended

    def _on_rpc(self) -> None:
        message = receive(self._rpc, self._buffer)
        if not message:
            raise _Ended
        if message == b"Q":
            self._store.close()  # writes the journal into the file
            self._rpc.send(b"K")
            raise _Ended
        try:
            if message[:1] != b"C":
                raise InternalError("an unknown message on the writer's rpc channel")
            self._store.write_changes(changes_of(message[1:].split(b"\n")))
        except HelperdError as exc:
            reply = {"code": exc.code, "message": exc.message}
            self._rpc.send(b"E" + json.dumps(reply).encode())
        except Exception:
            log.exception("a write the daemon sent failed")
            reply = {"code": "internal", "message": "internal error: see the daemon log"}
            self._rpc.send(b"E" + json.dumps(reply).encode())
        else:
            self._rpc.send(b"K")

    def _tell(self, changes: Changes) -> None:
        """Tell the daemon of a durable write and wait until it has applied it."""
        message = b"C" + change_text(changes)
        if len(message) > MAX_MESSAGE:
            raise _Ended  # never sent: the daemon opens the store again, which holds it
        self._events.settimeout(ACK_TIMEOUT)
        try:
            self._events.send(message)
            answer = self._events.recv(16)
        except OSError:
            raise _Ended from None
        if answer != b"A":
            raise _Ended

    # Client connections.

    def _on_handed(self) -> None:
        received = receive_connection(self._handed)
        if received is None:
            raise _Ended
        sock, carried = received
        if peer_uid(sock) != self._uid:  # checked at accept; again, as every server does
            with contextlib.suppress(OSError):
                sock.sendall(render_error(None, ForbiddenError("not this user's connection")))
            sock.close()
            return
        if len(self._connections) >= self._max_connections:
            self._drop(min(self._connections.values(), key=lambda c: c.last_active))
        sock.settimeout(SEND_TIMEOUT)
        conn = _Connection(sock, carried)
        self._connections[sock.fileno()] = conn
        self._selector.register(sock, selectors.EVENT_READ, lambda: self._on_readable(conn))
        self._serve(conn)

    def _on_readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(MAX_LINE)
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.buffer += data
        conn.last_active = time.monotonic()
        self._serve(conn)

    def _serve(self, conn: _Connection) -> None:
        """Answer each whole line ``conn`` holds while it is a set; hand the rest back."""
        while b"\n" in conn.buffer:
            line, _, rest = conn.buffer.partition(b"\n")
            answer = self._answer(line)
            if answer is None:
                self._hand_back(conn)
                return
            conn.buffer = rest
            try:
                conn.sock.sendall(answer)
            except OSError:
                self._drop(conn)
                return
            conn.last_active = time.monotonic()
        if len(conn.buffer) > MAX_LINE:
            error = TooLargeError(f"request line exceeds {MAX_LINE} bytes")
            with contextlib.suppress(OSError):
                conn.sock.sendall(render_error(None, error))
            self._drop(conn)

    def _answer(self, line: bytes) -> bytes | None:
        """The answer to a plain ``set``, or to a line that is no request; None for any other
        request (the daemon's to serve)."""
        try:
            request_id, request = parse_request(line)
        except RequestError as exc:
            return render_error(exc.request_id, exc.error)  # as the daemon would answer
        if not isinstance(request, SetRequest) or request.provider is not None:
            return None
        if request.upstream:
            return None
        try:
            answer = render_ok(request_id, self._service.handle(request, datetime.now(UTC)))
        except HelperdError as exc:
            log.info("set failed: %s", exc.code)
            return render_error(request_id, exc)
        except Exception:
            log.exception("internal error while serving a set")
            return render_error(request_id, InternalError("internal error: see the daemon log"))
        log.debug("set ok")
        return answer

    def _hand_back(self, conn: _Connection) -> None:
        """Give ``conn`` back to the daemon, with what it sent that is not served yet."""
        try:
            send_connection(self._handed, conn.sock.fileno(), conn.buffer)
        except (OSError, ValueError):
            log.warning("could not hand a connection back to the daemon: closing it")
        self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        self._connections.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()  # no shutdown: a connection handed back lives on in the daemon

    def _close_idle(self) -> None:
        cutoff = time.monotonic() - self._read_timeout
        for conn in [c for c in self._connections.values() if c.last_active < cutoff]:
            self._drop(conn)


def main(argv: list[str] | None = None) -> int:
    """Run the writer process (started by the daemon, never by hand)."""
    parser = argparse.ArgumentParser(prog="helperd-writer", description=__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--key-file", type=Path, required=True)
    for name in ("--events", "--handed", "--rpc", "--lock"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--read-timeout", type=float, default=30.0)
    parser.add_argument("--max-connections", type=int, default=128)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s helperd-writer[%(process)d] %(levelname)s %(message)s",
    )
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # the daemon ends this process
    harden_process()
    events, handed, rpc = (socket.socket(fileno=fd) for fd in (args.events, args.handed, args.rpc))
    try:
        store = FileStore(args.store, key_file=args.key_file, held_lock=args.lock)
        store.unlock(None)  # opens it
    except HelperdError as exc:
        events.send(b"F" + exc.message.encode("utf-8", "replace")[: MAX_MESSAGE - 1])
        return 1
    writer = Writer(
        store,
        events,
        handed,
        rpc,
        read_timeout=args.read_timeout,
        max_connections=args.max_connections,
    )
    events.send(b"R")
    writer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
