"""Connections passed between the daemon and its writer process (helperd/daemon/handover.py)."""

from __future__ import annotations

import socket

import pytest

from helperd.daemon.handover import (
    MAX_CARRIED,
    channel_pair,
    receive_connection,
    send_connection,
)


def test_a_connection_moves_with_what_it_carries_and_stays_open() -> None:
    ours, theirs = channel_pair()
    client, server = socket.socketpair()
    with ours, theirs, client:
        send_connection(ours, server.fileno(), b'{"op":"set"}\n{"op":"get"}')
        server.close()  # the sender's copy: the connection lives on in the receiver's
        received = receive_connection(theirs)
        assert received is not None
        sock, carried = received
        with sock:
            assert carried == b'{"op":"set"}\n{"op":"get"}'
            assert not sock.get_inheritable()
            client.sendall(b"ping")
            assert sock.recv(4) == b"ping"
            sock.sendall(b"pong")
            assert client.recv(4) == b"pong"


def test_the_end_of_the_channel_is_none() -> None:
    ours, theirs = channel_pair()
    with theirs:
        ours.close()
        assert receive_connection(theirs) is None


def test_a_message_without_a_connection_is_refused() -> None:
    ours, theirs = channel_pair()
    with ours, theirs:
        ours.send(b"no descriptor here")
        with pytest.raises(OSError, match="no whole connection"):
            receive_connection(theirs)


@pytest.mark.parametrize("size", [0, MAX_CARRIED + 1])
def test_a_connection_carries_one_line_at_least_and_never_too_much(size: int) -> None:
    ours, theirs = channel_pair()
    client, server = socket.socketpair()
    with ours, theirs, client, server, pytest.raises(ValueError, match="carries"):
        send_connection(ours, server.fileno(), b"x" * size)


def test_the_most_a_connection_carries_arrives_whole() -> None:
    ours, theirs = channel_pair()
    client, server = socket.socketpair()
    with ours, theirs, client, server:
        send_connection(ours, server.fileno(), b"y" * MAX_CARRIED)
        received = receive_connection(theirs)
        assert received is not None
        received[0].close()
        assert received[1] == b"y" * MAX_CARRIED
