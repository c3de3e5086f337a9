"""asyncio's private reader buffer, which the connection cap looks at, still works as used.

`helperd.daemon.handover.unread` is the one place that reads ``StreamReader._buffer``: asyncio
has no public way to see a request line that has left the socket but not yet reached the
task that serves it, and the connection cap must not close such a connection. These tests
fail loudly when a Python release renames or retypes that buffer, instead of letting the
cap quietly close connections that already sent a request.
"""

from __future__ import annotations

import asyncio
import socket

from helperd.daemon.handover import unread

LINE = b'{"op": "status"}\n'


def test_stream_reader_keeps_a_bytearray_buffer() -> None:
    """A StreamReader still has ``_buffer``, a bytearray holding what was fed and not read."""

    async def scenario() -> None:
        reader = asyncio.StreamReader()
        assert isinstance(reader._buffer, bytearray)
        reader.feed_data(LINE)
        assert LINE == reader._buffer

    asyncio.run(scenario())


def test_unread_shows_a_line_read_off_the_socket_until_it_is_consumed() -> None:
    """A line asyncio took off a real socket shows in `unread` until the reader consumes it."""

    async def scenario() -> tuple[bytes, bytes, bytes]:
        ours, peer = socket.socketpair()
        with peer:
            reader, writer = await asyncio.open_connection(sock=ours)
            try:
                peer.sendall(LINE)
                for _turn in range(500):  # the transport reads it within a loop turn or two
                    if unread(reader):
                        break
                    await asyncio.sleep(0.01)
                seen = bytes(unread(reader))
                line = await reader.readline()
                return seen, line, bytes(unread(reader))
            finally:
                writer.close()

    assert (LINE, LINE, b"") == asyncio.run(scenario())
