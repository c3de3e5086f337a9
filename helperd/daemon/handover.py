"""A client's connection passed between the daemon and its writer process.

A connection moves as one message on a private ``SOCK_SEQPACKET`` socket pair: its
descriptor (``SCM_RIGHTS``) with the bytes read from it and not served yet, the request line
that made it move first. The sender then closes its own descriptor (never ``shutdown``: that
would end the connection for the receiver too), and the receiver serves the connection as if
it had accepted it, checking its peer's UID again.
"""

from __future__ import annotations

import asyncio
import os
import socket

from helperd_client.wire import MAX_LINE

__all__ = [
    "MAX_CARRIED",
    "Channel",
    "channel_pair",
    "receive",
    "receive_connection",
    "send_connection",
    "streams_of",
    "unread",
]

MAX_CARRIED = 4 * MAX_LINE
"""The most bytes a connection carries along: asyncio reads at most twice its limit ahead."""

_BUFFER = 2 * MAX_CARRIED
"""Each channel's send buffer: room for a message of the biggest size and more."""

Channel = socket.socket
"""One end of a `channel_pair`."""


def channel_pair() -> tuple[Channel, Channel]:
    """Two connected ends for messages (not inherited by child processes unless passed).

    Raises:
        OSError: the platform has no ``SOCK_SEQPACKET`` Unix sockets.
    """
    ends = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in ends:
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
    return ends


def receive(channel: Channel, buffer: bytearray) -> bytes:
    """The next message on ``channel``, read into ``buffer`` (b"" at the end: the other end
    closed); a message never costs an allocation of the buffer's size, only of its own.

    Raises:
        OSError: the message is longer than ``buffer`` (the rest of it is lost).
        BlockingIOError: nothing to read on a non-blocking channel.
    """
    size, _, flags, _ = channel.recvmsg_into([buffer])
    if flags & socket.MSG_TRUNC:
        raise OSError(f"a message on a writer channel is longer than {len(buffer)} bytes")
    return bytes(memoryview(buffer)[:size])


def send_connection(channel: Channel, fd: int, carried: bytes) -> None:
    """Send the connection ``fd`` and the bytes ``carried`` along with it.

    Raises:
        OSError: the message could not be sent (a full channel when non-blocking, or the
            other end is gone); the connection is still the sender's.
    """
    if not carried or len(carried) > MAX_CARRIED:
        raise ValueError(f"a connection carries 1 to {MAX_CARRIED} bytes, not {len(carried)}")
    socket.send_fds(channel, [carried], [fd])


def receive_connection(channel: Channel) -> tuple[socket.socket, bytes] | None:
    """The next connection sent on ``channel`` and the bytes it carries; None at the end (the
    other end closed).

    Raises:
        OSError: the message could not be read, or held no connection (then dropped).
        BlockingIOError: nothing to read on a non-blocking channel.
    """
    carried, fds, flags, _ = socket.recv_fds(channel, MAX_CARRIED, 1)
    if not carried and not fds:
        return None
    for fd in fds:
        os.set_inheritable(fd, False)
    if len(fds) != 1 or not carried or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise OSError("a message on the hand-over channel held no whole connection")
    return socket.socket(fileno=fds[0]), carried


async def streams_of(
    sock: socket.socket, carried: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Streams on a connection received, whose reader yields ``carried`` first (None: the
    connection could not be watched, and is closed)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE, loop=loop)
    reader.feed_data(carried)  # before any byte the socket holds
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    try:
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock)
    except OSError:
        sock.close()
        return None
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def unread(reader: asyncio.StreamReader) -> bytes | bytearray:
    """What asyncio took off the socket for ``reader`` that no read has consumed yet: what a
    connection handed over carries along, and what tells the server's cap that a connection
    has a request waiting.

    asyncio has no public view of it (no peek), and a protocol of the server's own would
    rewrite its reading: this is the one read of the private ``StreamReader._buffer``, which
    tests/unit/test_server_unread.py checks. Were it gone, this says "nothing": the cap could
    close a connection whose request reached asyncio in the same loop turn, and a hand-over
    would lose a request sent right behind the first (tests/integration/test_writer_process.py).
    """
    buffer = getattr(reader, "_buffer", b"")
    return buffer if isinstance(buffer, bytes | bytearray) else b""
