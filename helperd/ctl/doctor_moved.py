"""Daemons still listening where older helperd versions put the socket (``helperctl doctor``).

Older versions used ``${TMPDIR:-/tmp}/helperd-<uid>/helperd.sock`` even when the user's home
could hold it, and on macOS ``$TMPDIR/helperd/helperd.sock``, with no UID at all. A daemon
started then keeps listening there after an upgrade, while every client now looks at the new
path: doctor finds it and says how to move (stop it, start it again).
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OldSocket", "old_socket_paths", "old_sockets"]


@dataclass(frozen=True)
class OldSocket:
    """Something listening at an old socket path: the process's ID and UID where known."""

    path: Path
    pid: int | None = None
    uid: int | None = None


def old_socket_paths(
    env: Mapping[str, str], *, platform: str = sys.platform, uid: int | None = None
) -> list[Path]:
    """Where older versions put the socket, for this environment."""
    uid = os.getuid() if uid is None else uid
    folders = {env.get("TMPDIR") or "/tmp", "/tmp"}  # noqa: S108 - the old rule's own paths
    name = "helperd" if platform == "darwin" else f"helperd-{uid}"
    return [Path(folder, name, "helperd.sock") for folder in sorted(folders)]


def old_sockets(
    env: Mapping[str, str], current: Path, *, timeout: float = 1.0
) -> tuple[OldSocket, ...]:
    """Every old path other than ``current`` where a connection is accepted.

    Only ``connect`` is tried: not a byte is sent (the listener may be anyone's).
    """
    found = []
    for path in old_socket_paths(env):
        if path == current:
            continue
        try:
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            try:
                probe.connect(str(path))
            except OSError:
                continue
            found.append(OldSocket(path, *_peer(probe)))
    return tuple(found)


def _peer(sock: socket.socket) -> tuple[int | None, int | None]:
    if not sys.platform.startswith("linux"):
        from helperd_client.trust import peer_uid  # noqa: PLC0415

        return None, peer_uid(sock)
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None, None
    pid, uid, _gid = struct.unpack("3i", raw)
    return pid, uid
