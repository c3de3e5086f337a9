"""Who is on the other end of a Unix socket: the peer's UID, per platform.

Linux answers with ``SO_PEERCRED``; macOS and the BSDs with ``LOCAL_PEERCRED`` (the
``xucred`` structure behind ``getpeereid``). Where the peer cannot be identified the answer
is None, and the server refuses the connection.
"""

from __future__ import annotations

import socket
import struct
import sys

__all__ = ["peer_uid"]

_LOCAL_PEERCRED = 0x001  # <sys/un.h>
_SOL_LOCAL = 0
_XUCRED = struct.Struct("IiH")  # cr_version, cr_uid, cr_ngroups (the groups follow)


def peer_uid(sock: socket.socket) -> int | None:
    """The UID of the process connected to ``sock``, or None when the OS cannot say."""
    try:
        if sys.platform.startswith("linux"):
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            return int(uid)
        if sys.platform == "darwin" or "bsd" in sys.platform:
            raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, 256)
            _version, uid, _ngroups = _XUCRED.unpack_from(raw)
            return int(uid)
    except (OSError, struct.error):
        return None
    return None
