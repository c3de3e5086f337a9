"""The socket file: bind it safely (never stealing a live daemon's), and remove it when done.

`helperd.daemon.server` re-exports `StartupError` and `bind_socket`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from pathlib import Path

from helperd_client.errors import HelperdError

from helperd.stores.durable import check_private_dir

__all__ = ["StartupError", "bind_socket"]

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def bind_socket(path: Path, backlog: int = socket.SOMAXCONN) -> socket.socket:
    """Bind a listening socket at ``path``, 0600 in a 0700 directory, never stealing a live one.

    An existing socket is probed first: if a daemon answers there, this one refuses to start
    and leaves it alone; only a stale socket (connection refused) is removed.

    Raises:
        StartupError: the directory is unsafe, the path is taken, or another daemon listens.
    """
    try:
        check_private_dir(path.parent)
    except HelperdError as exc:
        raise StartupError(exc.message) from None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(info.st_mode):
            raise StartupError(f"{path} exists and is not a socket: move it away first")
        if _answers(path):
            raise StartupError(
                f"another helperd is already listening on {path}; stop it first"
                " (or give this one another --socket)"
            )
        log.info("removing stale socket %s", path)
        path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask makes the socket 0600 from the moment it exists: no window with looser modes.
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"{path} is in use by another process") from None
        raise StartupError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    sock.listen(backlog)
    return sock


def _answers(path: Path) -> bool:
    """Whether something accepts connections at ``path`` (a refused connect means stale)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True  # a full backlog or a hung daemon: still someone else's socket
    else:
        return True
    finally:
        probe.close()


def _remove_if_ours(path: Path, inode: int) -> None:
    """Remove the socket file, unless another daemon has since replaced it."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == inode:
            path.unlink()
