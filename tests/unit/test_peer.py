"""Peer credentials: identified on Linux, and refused whenever they cannot be identified."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import pytest
from helperd_client import trust

from helperd.core.service import Service
from helperd.daemon import peer, server
from helperd.daemon.server import Server
from tests.unit.test_service import MemoryStore


def test_linux_peer_uid_is_ours() -> None:
    """SO_PEERCRED reports the UID of the process on the other end."""
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        expected = os.getuid() if sys.platform.startswith("linux") else None
        assert expected == peer.peer_uid(left)


def test_macos_path_fails_closed_when_the_os_cannot_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """The LOCAL_PEERCRED path answers None when the call fails (here: not macOS)."""
    monkeypatch.setattr(trust.sys, "platform", "darwin")
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert None is peer.peer_uid(left)


def test_unidentified_peer_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection whose peer cannot be identified gets forbidden and is closed."""
    monkeypatch.setattr(server, "peer_uid", lambda sock: None)
    path = home / "s.sock"

    async def scenario() -> dict[str, object]:
        daemon = Server(Service(MemoryStore(), store_reason="test"))
        task = asyncio.create_task(daemon.serve(server.bind_socket(path), owned_path=path))
        for _ in range(100):
            if path.exists():
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_unix_connection(str(path))
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        daemon.stop()
        await asyncio.wait_for(task, 15)
        answer: dict[str, object] = json.loads(line)
        return answer

    answer = asyncio.run(scenario())
    assert {"code": "forbidden"} == {"code": answer["error"]["code"]}  # type: ignore[index]
    assert not path.exists(), "the socket it bound is removed on stop"
