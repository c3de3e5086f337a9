"""The socket server: its connections and their requests (the socket file: `socket_file`).

Lifecycle, readable at a glance: `bind_socket` (or a socket handed over by a service
manager) → `Server.serve` → `Server.shutdown`. Each connection is checked for its peer's UID,
then carries NDJSON requests until the peer closes it, stays silent past the read timeout,
sends a line over the limit, or is the longest idle when the connection cap is reached; a
connection beyond the cap when none is idle gets a ``busy`` error line and is closed.
Requests that may block run in worker threads (stores block on disk, KDF and D-Bus); the
event loop frames, parses and answers, and answers a ``get`` from the store's snapshot
itself, taking no lock that anything holds across I/O. A read handed to a thread is answered
within `helperd.core.ladder.ANSWER_TIMEOUT`, whatever it waits on. Each connection has one
watchdog timer for its read timeout, not one per request. A connection whose request is a plain
``set`` of a key-file store goes to the daemon's writer process (`helperd.daemon.writer_link`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from helperd_client.errors import (
    BusyError,
    ForbiddenError,
    HelperdError,
    InternalError,
    TooLargeError,
)
from helperd_client.wire import MAX_LINE

from helperd.core.hot import quick_request, render_cached
from helperd.core.ladder import ANSWER_TIMEOUT
from helperd.core.protocol import (
    GetRequest,
    ListRequest,
    Request,
    RequestError,
    Result,
    StatusRequest,
    parse_request,
    render_error,
    render_ok,
)
from helperd.core.service import Service
from helperd.daemon.handover import MAX_CARRIED, streams_of, unread
from helperd.daemon.peer import peer_uid
from helperd.daemon.providers import ProviderDesk
from helperd.daemon.socket_file import StartupError, _remove_if_ours, bind_socket
from helperd.daemon.workers import Workers
from helperd.daemon.writer_link import WriterLink

__all__ = ["Lifecycle", "Server", "StartupError", "bind_socket"]

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0
"""Longest wait for requests in flight when asked to stop."""

CLOSE_GRACE = 1.0
"""Longest wait at stop for the connections closed to end their handlers."""

SWITCH_INTERVAL = 0.0005
"""Seconds a worker thread running Python may keep the GIL while the event loop waits for it.

With Python's default (5 ms), a read beside a writer that runs Python waits up to that long
for the interpreter lock, each time the loop gives it up for a system call: on a quiet
machine, the p99 of a get beside a looping writer was 3 ms against 0.2 ms alone.
"""

Lifecycle = Literal["ready", "stopping"]
"""What `Server.serve` tells its ``notify`` callback: accepting connections, or shutting down."""


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    last_active: float = field(default_factory=time.monotonic)
    busy: bool = False
    watchdog: asyncio.TimerHandle | None = None
    task: asyncio.Task[Any] | None = None
    """The task serving it (`Server._on_connect`), awaited at stop."""
    returned: bool = False  # handed back by the writer process: its next line is served here


class Server:
    """Serves one `Service` on a listening Unix socket.

    Args:
        service: the request handler.
        read_timeout: close a connection that sends no complete line for this long.
        max_connections: at this many open connections, the longest-idle one is closed;
            when none is idle, a new connection gets ``busy`` and is closed.
        workers: threads for store calls.
        backlog: the listen backlog (connections the kernel queues before they are accepted).
    """

    def __init__(
        self,
        service: Service,
        *,
        read_timeout: float = 30.0,
        max_connections: int = 128,
        workers: int = 8,
        backlog: int = socket.SOMAXCONN,
    ) -> None:
        self._service = service
        self._backlog = backlog
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._workers = Workers(workers)
        self._connections: set[_Connection] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._stop = asyncio.Event()
        self._uid = os.getuid()
        self._quiet_since = time.monotonic()
        self.providers = ProviderDesk(service, self._workers)
        self._adopting: set[asyncio.Task[None]] = set()
        # A key-file file store's sets are served by a writer process (helperd.daemon.writer).
        self.writer = WriterLink.of(
            service,
            self._workers,
            self._adopt,
            self.providers.written,
            lambda: (self._read_timeout, self._max_connections),
        )

    @property
    def idle_since(self) -> float | None:
        """The `time.monotonic` value since which no connection is open; None while one is."""
        return None if self._connections else self._quiet_since

    def stop(self) -> None:
        """Ask `serve` to return (safe from a signal handler on the loop)."""
        self._stop.set()

    async def serve(
        self,
        sock: socket.socket,
        *,
        owned_path: Path | None = None,
        ready: asyncio.Event | None = None,
        notify: Callable[[Lifecycle], None] | None = None,
    ) -> None:
        """Accept connections on ``sock`` until `stop` or SIGTERM/SIGINT, then shut down.

        Args:
            sock: a bound, listening Unix socket.
            owned_path: the socket file this daemon created, removed on exit (None for a
                socket handed over by a service manager, which owns its file).
            ready: set once the server accepts connections.
            notify: called with ``"ready"`` once the server accepts connections and with
                ``"stopping"`` when it starts to shut down (systemd's ``sd_notify``); an
                exception it raises is logged, never propagated.
        """
        loop = asyncio.get_running_loop()
        sys.setswitchinterval(SWITCH_INTERVAL)
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stop)
        owned_inode = os.stat(owned_path).st_ino if owned_path else None
        # asyncio listens again with its own backlog (100 by default): give it ours.
        server = await asyncio.start_unix_server(
            self._on_connect, sock=sock, limit=MAX_LINE, backlog=self._backlog
        )
        ticker = asyncio.create_task(self._tick_idle_lock())
        self.providers.start()
        log.info("listening on %s", sock.getsockname())
        if ready is not None:
            ready.set()
        _tell(notify, "ready")
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: finishing %d request(s) in flight", self._in_flight)
            _tell(notify, "stopping")
            server.close()
            ticker.cancel()
            await self._drain()
            await self.providers.aclose()
            await self._close_connections()
            self._workers.close()
            if owned_path is not None and owned_inode is not None:
                _remove_if_ours(owned_path, owned_inode)
            log.info("stopped")

    async def _drain(self) -> None:
        """Wait, within the grace period, until no request is being served."""
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while self._in_flight and time.monotonic() < deadline:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), deadline - time.monotonic())

    async def _close_connections(self) -> None:
        """Close every connection left and let its handler end, so that none is left for
        ``asyncio.run`` to cancel (Python 3.11 logs a traceback for each one cancelled)."""
        for conn in self._connections:
            conn.writer.close()
        handlers = {conn.task for conn in self._connections if conn.task is not None}
        if handlers:
            await asyncio.wait(handlers, timeout=CLOSE_GRACE)

    async def _tick_idle_lock(self) -> None:
        while True:
            idle = self._service.idle_lock  # read each round: SIGHUP may change it
            period = 30.0 if idle is None else max(0.5, min(idle.total_seconds() / 4, 30.0))
            await asyncio.sleep(period)
            if self._service.idle_lock is None:
                continue
            try:
                await self._workers.submit(self._service.tick, _now())
            except HelperdError as exc:
                log.warning("idle lock failed: %s", exc.message)

    def configure(self, *, read_timeout: float, max_connections: int) -> None:
        """Apply new limits (on SIGHUP); they hold for the next read and the next connection."""
        self._read_timeout = read_timeout
        self._max_connections = max_connections

    async def _on_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, returned: bool = False
    ) -> None:
        uid = peer_uid(writer.get_extra_info("socket"))
        if uid != self._uid:
            log.warning("refused a connection from uid %s", "unknown" if uid is None else uid)
            error = ForbiddenError("this helperd serves only its own user")
            await self._send_and_close(writer, render_error(None, error))
            return
        if not self._make_room():
            log.warning(
                "connection cap %d reached, every connection in use: busy", self._max_connections
            )
            busy = BusyError(
                f"helperd is serving its maximum of {self._max_connections} connections,"
                " all in use: try again shortly"
            )
            await self._send_and_close(writer, render_error(None, busy))
            return
        conn = _Connection(writer, reader, task=asyncio.current_task(), returned=returned)
        self._connections.add(conn)
        self._watch(conn)
        try:
            await self._converse(conn)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            if conn.watchdog is not None:
                conn.watchdog.cancel()
            self._connections.discard(conn)
            if not self._connections:
                self._quiet_since = time.monotonic()
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self._read_timeout)

    def _watch(self, conn: _Connection) -> None:
        """Close ``conn`` once it has sent no complete line for the read timeout.

        One timer per connection, moved along as it goes, rather than a timeout around every
        read: closing the transport ends the read that waits. A request being served is
        bounded by its send's own timeout, so a busy connection is only looked at again later.
        """
        delay = self._read_timeout
        if not conn.busy:
            idle = time.monotonic() - conn.last_active
            if idle >= self._read_timeout:
                conn.watchdog = None
                conn.writer.close()
                return
            delay -= idle
        conn.watchdog = asyncio.get_running_loop().call_later(delay, self._watch, conn)

    async def _converse(self, conn: _Connection) -> None:
        while not self._stop.is_set():
            try:
                line = await conn.reader.readuntil(b"\n")  # bounded by _watch
            except asyncio.IncompleteReadError:
                return  # the peer closed the connection, or _watch did
            except asyncio.LimitOverrunError:
                error = TooLargeError(f"request line exceeds {MAX_LINE} bytes")
                await self._send_and_close(conn.writer, render_error(None, error))
                return
            if self._hand_over(conn, line):
                return  # the writer process serves the connection now
            conn.busy = True
            self._in_flight += 1
            try:
                response = await self._respond(line)
                conn.writer.write(response)
                if conn.writer.transport.get_write_buffer_size():  # else drain has nothing to do
                    async with asyncio.timeout(self._read_timeout):
                        await conn.writer.drain()
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.set()
                conn.busy = False
                conn.last_active = time.monotonic()

    def _hand_over(self, conn: _Connection, line: bytes) -> bool:
        """Pass ``conn`` to the writer process when ``line`` is a plain set (never the first
        line of a connection it handed back); True once it is the process's (the caller closes
        this side's copy, which never shuts the connection down)."""
        if conn.returned or self.writer is None or not self.writer.wants(line):
            conn.returned = False
            return False
        carried = line + bytes(unread(conn.reader))
        sock = conn.writer.get_extra_info("socket")
        fits = sock is not None and len(carried) <= MAX_CARRIED
        return fits and self.writer.hand_over(sock.fileno(), carried)

    def _adopt(self, sock: socket.socket, carried: bytes) -> None:
        """Serve a connection the writer process handed back, from the bytes it carries on."""
        if self._stop.is_set():
            sock.close()
            return
        task = asyncio.ensure_future(self._adopted(sock, carried))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _adopted(self, sock: socket.socket, carried: bytes) -> None:
        streams = await streams_of(sock, carried)
        if streams is not None:
            await self._on_connect(*streams, returned=True)

    async def _respond(self, line: bytes) -> bytes:
        try:
            return await self._answer(line)
        except Exception:
            # Rendering failed (an answer that cannot be encoded): still answer, never drop.
            log.exception("could not render an answer")
            return render_error(None, InternalError("internal error: see the daemon log"))

    async def _answer(self, line: bytes) -> bytes:
        quick = quick_request(line)
        if quick is not None:
            now = _now()
            body = self.providers.answer_hot(quick, now) or self._service.answer_hot(quick, now)
            if body is not None:
                return render_cached(quick.request_id, body)
        try:
            request_id, request = parse_request(line)
        except RequestError as exc:
            return render_error(exc.request_id, exc.error)
        # Taken before the lookup, so a get's answer is never tied to a newer version.
        version = self._service.hot_version() if isinstance(request, GetRequest) else None
        try:
            result = await self.providers.before(request)  # a set with a provider
            if result is None:
                result = self._service.answer_now(request, _now())
            if result is None:
                result = await self._in_worker(request)
            result = await self.providers.after(request, result, version)
            log.debug("%s ok", request.op)
            return render_ok(request_id, result)
        except HelperdError as exc:
            log.info("%s failed: %s", request.op, exc.code)
            return render_error(request_id, exc)
        except Exception:
            log.exception("internal error while serving %s", request.op)
            return render_error(request_id, InternalError("internal error: see the daemon log"))

    async def _in_worker(self, request: Request) -> Result:
        """Serve ``request`` in a worker thread; a read is answered within ANSWER_TIMEOUT.

        A read that overruns (an OS keyring that hangs past its own bound) is answered with
        ``store_unavailable`` naming the store, inside the client's timeout; its thread goes on
        until the call returns. Writes are never cut short: their answer says what happened.
        """
        work = self._workers.submit(self._service.handle, request, _now())
        if not isinstance(request, _BOUNDED):
            return await work
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                return await asyncio.shield(work)
        except TimeoutError:
            # The thread's outcome, when it comes, is dropped (and must not be logged as lost).
            work.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise self._service.unanswered(ANSWER_TIMEOUT) from None

    def _make_room(self) -> bool:
        """Below the cap, or once the longest-idle connection is closed: True; else False."""
        if len(self._connections) < self._max_connections:
            return True
        idle = [c for c in self._connections if not c.busy and not _pending(c)]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.last_active)
        log.info("connection cap %d reached: closing the longest-idle one", self._max_connections)
        self._connections.discard(victim)
        victim.writer.close()
        return True

    async def _send_and_close(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            writer.write(line)
            await asyncio.wait_for(writer.drain(), 1.0)
        writer.close()


def _tell(notify: Callable[[Lifecycle], None] | None, event: Lifecycle) -> None:
    if notify is None:
        return
    try:
        notify(event)
    except Exception:
        log.exception("the %s notification failed", event)


def _pending(conn: _Connection) -> bool:
    """Whether a whole request line has arrived on ``conn`` but is not served yet.

    Such a connection is not idle and must not be closed at the cap; half a line followed by
    silence does not count (that is the slow peer the cap is there for).
    """
    # A line reaches the reader's buffer (from the socket) one loop turn before the task
    # that reads it runs: it must be looked at there, not only on the socket.
    if b"\n" in unread(conn.reader):
        return True
    sock = conn.writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        # asyncio's TransportSocket has no recv: peek through a duplicate of the descriptor.
        with socket.fromfd(sock.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as twin:
            waiting = twin.recv(MAX_LINE + 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return False
    return b"\n" in waiting


_BOUNDED = (GetRequest, ListRequest, StatusRequest)
"""Reads: answered within ANSWER_TIMEOUT (see `Server._in_worker`)."""


def _now() -> datetime:
    return datetime.now(UTC)
