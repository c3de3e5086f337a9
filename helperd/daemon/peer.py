"""Who is on the other end of a Unix socket: the peer's UID, per platform.

One implementation for the daemon and every client: `helperd_client.trust.peer_uid`
(``SO_PEERCRED`` on Linux, ``LOCAL_PEERCRED`` on macOS and the BSDs). Where the peer cannot
be identified the answer is None, and the server refuses the connection.
"""

from __future__ import annotations

from helperd_client.trust import peer_uid

__all__ = ["peer_uid"]
