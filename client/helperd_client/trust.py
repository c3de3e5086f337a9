"""Clients trust only their own daemon: the one check every client and the daemon share.

SPEC.md, "Security invariants". Before a client sends a byte, the socket's folder must be a
real directory (``lstat``: a symlink is refused) owned by the caller, with no group or other
write: anyone who could write that folder could swap the socket for one of their own. After
``connect``, the process listening there must run as the caller or as root (root can read the
caller's memory anyway, and a service manager that activates the socket shows as root for the
first connection). A failed check raises `UntrustedSocketError` naming the path and the owner
found; no caller falls back to anything else.

Stdlib only, and light: the keyring shim imports it on every call.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys

from helperd_client.errors import UntrustedSocketError

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the keyring shim must not import typing
if TYPE_CHECKING:
    from os import PathLike

__all__ = ["check_peer", "check_socket_folder", "folder_problem", "peer_uid"]

_LOCAL_PEERCRED = 0x001  # <sys/un.h>
_SOL_LOCAL = 0
_XUCRED = struct.Struct("IiH")  # cr_version, cr_uid, cr_ngroups (the groups follow)


def describe_uid(uid: int) -> str:
    """``uid N``: how messages name an owner (a number is what ``ls -n`` and ``id`` show)."""
    return f"uid {uid}"


def folder_problem(info: os.stat_result, folder: str, uid: int | None = None) -> str | None:
    """Why the folder ``lstat`` described as ``info`` cannot be trusted, or None when it can.

    The rule the daemon applies to its own folders and every client to the socket's folder.

    Args:
        info: ``os.lstat(folder)``.
        folder: its path, for the message.
        uid: whom it must belong to (default: ``os.getuid()``).
    """
    uid = os.getuid() if uid is None else uid
    owner = describe_uid(info.st_uid)
    if stat.S_ISLNK(info.st_mode):
        return f"{folder} is a symbolic link (owned by {owner}), not a directory"
    if not stat.S_ISDIR(info.st_mode):
        return f"{folder} is not a directory (owned by {owner})"
    if info.st_uid != uid:
        return f"{folder} belongs to another user ({owner}), not to you ({describe_uid(uid)})"
    if info.st_mode & 0o022:
        return (
            f"{folder} (owned by {owner}) can be written by group or others"
            f" (mode {stat.S_IMODE(info.st_mode):o})"
        )
    return None


def check_socket_folder(path: str | PathLike[str]) -> bool:
    """Check the folder of the socket at ``path`` before anything is sent there.

    Returns:
        False when the folder does not exist (no daemon can listen there), True when it is
        trusted.

    Raises:
        UntrustedSocketError: the folder is a symlink, not a directory, another user's, or
            writable by group or others.
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise UntrustedSocketError(
            f"refusing to use the helperd socket {os.fspath(path)}: cannot check its folder"
            f" {folder}: {exc.strerror or exc}"
        ) from None
    problem = folder_problem(info, folder)
    if problem is not None:
        raise UntrustedSocketError(
            f"refusing to use the helperd socket {os.fspath(path)}: {problem}; someone else may"
            f" be listening there. Remove {folder} (or set HELPERD_SOCKET to a folder of your"
            " own) and start helperd again"
        )
    return True


def peer_uid(sock: socket.socket) -> int | None:
    """The UID of the process at the other end of ``sock``, or None when the OS cannot say.

    Linux answers with ``SO_PEERCRED``; macOS and the BSDs with ``LOCAL_PEERCRED`` (the
    ``xucred`` structure behind ``getpeereid``).
    """
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


def check_peer(sock: socket.socket, path: str | PathLike[str]) -> None:
    """Check that the process listening on the connected ``sock`` is the caller or root.

    Raises:
        UntrustedSocketError: it runs as another user, or the OS cannot say who it is.
    """
    uid = peer_uid(sock)
    if uid is None:
        raise UntrustedSocketError(
            f"refusing to use the helperd socket {os.fspath(path)}: the system cannot tell who"
            " is listening there"
        )
    if uid not in (os.getuid(), 0):
        raise UntrustedSocketError(
            f"refusing to use the helperd socket {os.fspath(path)}: the process listening there"
            f" runs as {describe_uid(uid)}, not as you ({describe_uid(os.getuid())}) or root;"
            " it is not your helperd"
        )
