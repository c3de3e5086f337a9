"""The daemon's side of its writer process (`helperd.daemon.writer`, which says why it exists).

`WriterLink` starts the process with the first plain ``set`` the daemon sees (that set, and
any before the process is ready, the daemon serves itself), hands it the connections whose
request is a plain ``set``, adopts those it hands back, applies each write it tells of to the
store's snapshot on the event loop, and is the store's `helperd.stores.file_store.Scribe`:
every other write of the store goes to the process through it.

When the process ends on its own (killed, crashed), the daemon opens the store from disk
again, which holds every write the process made durable, and writes it itself until a later
``set`` starts a new process (not sooner than `RETRY_AFTER`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from helperd_client.errors import HelperdError, StoreUnavailableError, error_for_code

from helperd.core.record import Kind, Record
from helperd.core.service import Service
from helperd.daemon.handover import (
    Channel,
    channel_pair,
    receive,
    receive_connection,
    send_connection,
)
from helperd.daemon.workers import Workers
from helperd.daemon.writer import ACK_TIMEOUT, MAX_MESSAGE
from helperd.stores.file_journal import change_text, changes_of
from helperd.stores.file_scribe import Changes
from helperd.stores.file_store import FileStore

__all__ = ["RETRY_AFTER", "START_TIMEOUT", "WriterLink"]

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
"""Longest wait for the process to open the store (a 100,000-record store opens in about 1 s)."""

RPC_TIMEOUT = 2 * ACK_TIMEOUT
"""Longest wait for the process to make a write the daemon sent durable."""

CLOSE_TIMEOUT = 10.0
"""Longest wait at stop for the process to write the journal into the file and end."""

RETRY_AFTER = 1.0
"""Seconds after the process failed to start or ended on its own before another is started."""

_State = Literal["idle", "starting", "ready", "recovering", "closing"]

Adopt = Callable[[socket.socket, bytes], None]
"""Serves a connection the process handed back, with the bytes it carries (the server's)."""


class WriterLink:
    """The writer process of one key-file `FileStore`, from the daemon's side.

    Args:
        service: the service whose store the process writes.
        workers: the daemon's worker threads (the process is started and ended from one).
        adopt: serves a connection handed back.
        after_write: what the daemon does after a write that may have changed provider
            records (the provider desk's), awaited before the process hears the write applied.
        limits: the server's read timeout and connection cap, read when the process starts.
    """

    def __init__(
        self,
        service: Service,
        workers: Workers,
        adopt: Adopt,
        after_write: Callable[[], Awaitable[None]],
        limits: Callable[[], tuple[float, int]],
    ) -> None:
        store = service.store
        assert isinstance(store, FileStore)
        assert store.key_file is not None
        self._service = service
        self._store = store
        self._key_file = store.key_file
        self._workers = workers
        self._adopt = adopt
        self._after_write = after_write
        self._limits = limits
        self._state: _State = "idle"
        self._retry_at = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._channels: tuple[Channel, Channel, Channel] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._events_buffer = bytearray(MAX_MESSAGE)  # the loop's
        self._rpc_buffer = bytearray(MAX_MESSAGE)  # the writes', one at a time (store lock)

    @classmethod
    def of(
        cls,
        service: Service,
        workers: Workers,
        adopt: Adopt,
        after_write: Callable[[], Awaitable[None]],
        limits: Callable[[], tuple[float, int]],
    ) -> WriterLink | None:
        """The link for ``service``'s store, or None when it gets no writer process: a store
        that is not a key-file `FileStore`, or a platform without the channels it needs."""
        store = service.store
        if not isinstance(store, FileStore) or store.key_file is None:
            return None
        try:
            for end in channel_pair():
                end.close()
        except OSError:
            log.info("no SOCK_SEQPACKET Unix sockets here: the daemon writes the store itself")
            return None
        return cls(service, workers, adopt, after_write, limits)

    @property
    def pid(self) -> int | None:
        """The process's PID while it serves, else None."""
        return self._process.pid if self._state == "ready" and self._process else None

    def wants(self, line: bytes) -> bool:
        """Whether the connection that sent ``line`` goes to the process: a plain ``set``,
        once the process is ready (the first one starts it)."""
        if b'"set"' not in line or not _plain_set(line):
            return False
        if self._state == "ready":
            return True
        if self._state == "idle" and time.monotonic() >= self._retry_at:
            self._state = "starting"
            self._run(self._start())
        return False

    def hand_over(self, fd: int, carried: bytes) -> bool:
        """Send the process the connection ``fd``, with the bytes it carries (its request
        line first); False when it could not be sent (the daemon serves the request)."""
        if self._state != "ready" or self._channels is None:
            return False
        try:
            send_connection(self._channels[1], fd, carried)
        except (OSError, ValueError):
            return False
        return True

    # Starting.

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            await self._workers.submit(self._store.hand_writes_to, self._spawn)
        except Exception as exc:
            why = exc.message if isinstance(exc, HelperdError) else f"{type(exc).__name__}: {exc}"
            log.warning("the writer process did not start, the daemon writes: %s", why)
            self._close_channels()
            self._state = "idle"
            self._retry_at = time.monotonic() + RETRY_AFTER
            return
        assert self._channels is not None
        events, handed, _ = self._channels
        for channel, callback in ((events, self._on_events), (handed, self._on_handed)):
            channel.setblocking(False)
            self._loop.add_reader(channel, callback)
        self._state = "ready"
        log.info("writer process %d writes the store", self.pid)

    def _spawn(self) -> WriterLink:
        """Start the process and wait until it has opened the store (in a worker thread, the
        store's writer lock held: no write happens meanwhile)."""
        pairs = [channel_pair() for _ in range(3)]
        ours = (pairs[0][0], pairs[1][0], pairs[2][0])
        theirs = [pair[1] for pair in pairs]
        lock = self._store.held_lock()
        if lock is None:
            raise StoreUnavailableError(f"the file store at {self._store.path} is closed")
        read_timeout, max_connections = self._limits()
        command = [
            sys.executable,
            "-m",
            "helperd.daemon.writer",
            f"--store={self._store.path}",
            f"--key-file={self._key_file}",
            *(f"--{name}={end.fileno()}" for name, end in zip(_CHANNELS, theirs, strict=True)),
            f"--lock={lock}",
            f"--read-timeout={read_timeout}",
            f"--max-connections={max_connections}",
            f"--log-level={logging.getLevelName(logging.getLogger().getEffectiveLevel())}",
        ]
        self._channels = ours
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                pass_fds=(*(end.fileno() for end in theirs), lock),
            )
        finally:
            for end in theirs:
                end.close()
        events = ours[0]
        events.settimeout(START_TIMEOUT)
        try:
            said = events.recv(MAX_MESSAGE)
        except OSError:
            said = b""
        if said != b"R":
            self._end_process()
            why = said[1:].decode("utf-8", "replace") if said[:1] == b"F" else "it ended"
            raise StoreUnavailableError(f"the writer process could not open the store: {why}")
        ours[2].settimeout(RPC_TIMEOUT)
        return self

    # The store's scribe (worker threads, the store's writer lock held).

    def commit(self, changes: Changes) -> None:
        """Have the process make ``changes`` durable; applied here when this returns."""
        channels = self._channels
        if channels is None or self._state not in ("starting", "ready"):
            raise _gone()
        message = b"C" + change_text(changes)
        if len(message) > MAX_MESSAGE:
            raise StoreUnavailableError(f"a write of over {MAX_MESSAGE:,} bytes is refused")
        try:
            channels[2].send(message)
            reply = receive(channels[2], self._rpc_buffer)
        except OSError:
            reply = b""
        if reply == b"K":
            return
        if reply[:1] == b"E":
            said = json.loads(reply[1:])
            raise error_for_code(said["code"], said["message"])
        raise _gone()

    def close(self) -> None:
        """Have the process write the journal into the file and end; wait for it to."""
        channels, self._state = self._channels, "closing"
        if channels is not None:
            with contextlib.suppress(OSError):
                channels[2].settimeout(CLOSE_TIMEOUT)
                channels[2].send(b"Q")
                channels[2].recv(16)
        self._end_process()
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread or loop.is_closed():
            self._close_channels()
        else:
            loop.call_soon_threadsafe(self._close_channels)

    # On the event loop.

    def _on_events(self) -> None:
        assert self._channels is not None
        try:
            message = receive(self._channels[0], self._events_buffer)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if not message and self._state == "closing":
            self._close_channels()
            return
        if message[:1] != b"C":
            self._lost("it ended" if not message else "it sent an unknown message")
            return
        try:
            removed, added = self._store.apply(changes_of(message[1:].split(b"\n")))
        except Exception:
            log.exception("a write the writer process told of could not be applied")
            self._lost("its write could not be applied")
            return
        self._service.written(datetime.now(UTC))
        if any(_special(record) for record in (*removed, *added)):
            self._run(self._follow_specials())
        else:
            self._acknowledge()

    async def _follow_specials(self) -> None:
        """After a write of a certificate or provider record: their files and tokens follow,
        as after a write the daemon served."""
        try:
            certs = self._service.certs
            if certs is not None:
                now = datetime.now(UTC)
                await self._workers.submit(
                    certs.update, self._store, now, self._service.special_records()
                )
            await self._after_write()
        except Exception:
            log.exception("after a write of the writer process")
        finally:  # the write is applied: its set is answered whatever followed it
            self._acknowledge()

    def _acknowledge(self) -> None:
        if self._channels is None:
            return
        try:
            self._channels[0].send(b"A")
        except OSError:
            self._lost("it could not be told its write was applied")

    def _on_handed(self) -> None:
        assert self._channels is not None
        try:
            received = receive_connection(self._channels[1])
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("a connection the writer process handed back was lost: %s", exc)
            return
        if received is not None:
            self._adopt(*received)

    def _lost(self, why: str) -> None:
        """The process ended or misbehaved: end it, and write the store here again."""
        log.error("the writer process stopped serving (%s): the daemon writes the store", why)
        self._state = "recovering"
        self._close_channels()
        self._run(self._take_back())

    async def _take_back(self) -> None:
        try:
            await self._workers.submit(self._recover)
        except HelperdError as exc:
            log.error("the store could not be opened again: %s", exc.message)
        except Exception:
            log.exception("the store could not be opened again")
        self._state = "idle"
        self._retry_at = time.monotonic() + RETRY_AFTER
        await self._after_write()

    def _recover(self) -> None:
        """In a worker thread: end the process, open the store from disk, index it."""
        self._end_process()
        self._store.take_writes_back()
        self._service.written(datetime.now(UTC))
        certs = self._service.certs
        if certs is not None:
            certs.update(self._store, datetime.now(UTC), self._service.special_records())

    # Helpers.

    def _run(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end_process(self) -> None:
        """Wait for the process to end (after it was told to, or lost its channels); kill it
        past `CLOSE_TIMEOUT`."""
        process = self._process
        if process is None:
            return
        try:
            process.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("the writer process %d did not end: killing it", process.pid)
            process.kill()
            process.wait()

    def _close_channels(self) -> None:
        """Stop watching the channels and close them (on the loop's thread, or before it
        watches them); the process sees them closed and ends."""
        channels, self._channels = self._channels, None
        if channels is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            for channel in channels[:2]:
                with contextlib.suppress(ValueError, OSError):
                    loop.remove_reader(channel)
        for channel in channels:
            channel.close()


_CHANNELS = ("events", "handed", "rpc")


def _plain_set(line: bytes) -> bool:
    """Whether ``line`` asks for a ``set`` the writer process serves: not a provider's, not
    upstream (a line that is not JSON is the daemon's to answer)."""
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return (
        isinstance(message, dict)
        and message.get("op") == "set"
        and message.get("provider") is None
        and not message.get("upstream")
    )


def _special(record: Record) -> bool:
    """A certificate or provider record: its files or token follow its writes."""
    return record.kind is Kind.CERT or record.provider is not None


def _gone() -> StoreUnavailableError:
    return StoreUnavailableError(
        "the store's writer process ended during this write, which may or may not have been"
        " made durable: run the command again"
    )
