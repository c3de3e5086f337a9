"""Service managers: sockets they hand over, and telling systemd how the daemon is doing.

systemd passes listening sockets as file descriptors 3, 4, ... with ``LISTEN_FDS``,
``LISTEN_PID`` and ``LISTEN_FDNAMES`` (`listen_fds`); launchd hands them over through
``launch_activate_socket`` (`launchd_sockets`). systemd learns that the daemon is ready, what
it is doing and that it is stopping from datagrams sent to ``NOTIFY_SOCKET`` (`Notifier`).
`IdleExit` decides when a socket-activated daemon may exit on its own.

Standard library only, and pure where it can be: the environment is a parameter.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import stat
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

from helperd_client.trust import folder_problem

__all__ = [
    "FD_NAME",
    "SD_LISTEN_FDS_START",
    "ActivationError",
    "IdleExit",
    "Notifier",
    "launchd_sockets",
    "listen_fds",
    "socket_address",
    "socket_problems",
]

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3
"""The first file descriptor systemd hands over (``SD_LISTEN_FDS_START`` in sd-daemon.h)."""

FD_NAME = "helperd"
"""The ``FileDescriptorName=`` of helperd's socket units, preferred when several are passed."""

NOTIFY_TIMEOUT = 2.0
"""Longest wait, in seconds, for one notification datagram to be queued."""

_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
_MAX_FDS = 64  # far more than any socket unit of ours; guards against a garbage LISTEN_FDS


class ActivationError(Exception):
    """A socket handed over by a service manager cannot be served; the message says why."""


def listen_fds(
    env: MutableMapping[str, str] | None = None, *, pid: int | None = None
) -> list[socket.socket]:
    """The listening sockets systemd handed over, the one named `FD_NAME` first.

    The variables are honoured only when ``LISTEN_PID`` is this process (else they were
    meant for a parent), and are removed from ``env`` in every case, so that no child
    process inherits them. Each descriptor is marked close-on-exec.

    Args:
        env: the environment to read and clean (default: ``os.environ``).
        pid: this process's ID (default: ``os.getpid()``).

    Returns:
        No socket when the daemon was not socket-activated by systemd.

    Raises:
        ActivationError: a handed-over descriptor is not a listening Unix stream socket,
            or the variables are malformed.
    """
    env = os.environ if env is None else env
    try:
        return _systemd_sockets(env, os.getpid() if pid is None else pid)
    finally:
        for name in _LISTEN_VARS:
            env.pop(name, None)


def _systemd_sockets(env: Mapping[str, str], pid: int) -> list[socket.socket]:
    count = env.get("LISTEN_FDS")
    if not count:
        return []
    listen_pid = env.get("LISTEN_PID", "")
    if not listen_pid.isdigit() or int(listen_pid) != pid:
        log.debug("LISTEN_FDS is set for process %s, not for this one: ignored", listen_pid)
        return []
    if not count.isdigit() or not 0 <= int(count) <= _MAX_FDS:
        raise ActivationError(f"LISTEN_FDS={count!r} is not a number of file descriptors")
    fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count))
    names = env.get("LISTEN_FDNAMES", "").split(":")
    if len(names) != len(fds):
        names = ["unknown"] * len(fds)
    for fd in fds:
        try:
            os.set_inheritable(fd, False)
        except OSError as exc:
            raise ActivationError(
                f"LISTEN_FDS={count} but file descriptor {fd} is not open: {exc.strerror}"
            ) from None
    # A stable sort: the service manager's order, with our named socket first.
    order = sorted(zip(fds, names, strict=True), key=lambda pair: pair[1] != FD_NAME)
    return _adopt_all(order, "systemd")


def launchd_sockets(
    name: str = "Listeners", *, platform: str = sys.platform
) -> list[socket.socket]:
    """The listening sockets of the ``Sockets`` entry ``name`` of this launchd job (macOS).

    Args:
        name: the key under ``Sockets`` in the job's plist.
        platform: ``sys.platform`` value (anything but ``darwin`` answers no socket).

    Returns:
        No socket off macOS, or when launchd did not start this process for that entry.

    Raises:
        ActivationError: launchd refused the hand-over, or a socket is not a listening
            Unix stream socket.
    """
    if platform != "darwin":
        return []
    libc = ctypes.CDLL(None)
    try:
        activate = libc.launch_activate_socket
    except AttributeError:
        return []
    activate.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    activate.restype = ctypes.c_int
    free = libc.free
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    fds = _launchd_fds(name, activate, free)
    return _adopt_all([(fd, name) for fd in fds], "launchd")


def _launchd_fds(
    name: str,
    activate: Callable[..., int],
    free: Callable[[ctypes._Pointer[ctypes.c_int]], object],
) -> list[int]:
    """Call ``launch_activate_socket(name, &fds, &count)``; free the array it allocates."""
    array = ctypes.POINTER(ctypes.c_int)()
    count = ctypes.c_size_t(0)
    error = activate(name.encode(), ctypes.byref(array), ctypes.byref(count))
    # ESRCH: not started by launchd; ENOENT: its plist has no such Sockets entry.
    if error in (errno.ESRCH, errno.ENOENT):
        return []
    if error:
        raise ActivationError(
            f"launchd did not hand over the socket {name!r}: {os.strerror(error)}"
        )
    if not array:
        return []
    try:
        return [array[i] for i in range(count.value)]
    finally:
        free(array)


def _adopt_all(fds: list[tuple[int, str]], manager: str) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for fd, name in fds:
            sockets.append(_adopt(fd, name, manager))
    except ActivationError:
        for sock in sockets:
            sock.detach()  # the descriptors stay the service manager's
        raise
    return sockets


def _adopt(fd: int, name: str, manager: str) -> socket.socket:
    """A socket object for ``fd``, if it is a listening Unix stream socket."""
    what = f"file descriptor {fd} (named {name!r}) from {manager}"
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ActivationError(f"{what} is not a socket: {exc.strerror or exc}") from None
    try:
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ActivationError(
                f"{what} is not a Unix stream socket: helperd listens only on a Unix socket"
                " (ListenStream= with a path in the socket unit)"
            )
        accepting = getattr(socket, "SO_ACCEPTCONN", None)
        if accepting is not None and not sock.getsockopt(socket.SOL_SOCKET, accepting):
            raise ActivationError(
                f"{what} is not listening: helperd takes a listening socket"
                " (Accept=no in the socket unit)"
            )
    except BaseException:
        sock.detach()
        raise
    return sock


def socket_address(sock: socket.socket) -> str:
    """Where ``sock`` listens: its path, ``@name`` for an abstract socket, or ``(unnamed)``."""
    address = sock.getsockname()
    if isinstance(address, bytes):
        address = address.decode("utf-8", "backslashreplace")
    if not isinstance(address, str) or not address:
        return "(unnamed)"
    if address.startswith("\0"):
        return "@" + address[1:]
    return address


def socket_problems(sock: socket.socket, *, uid: int | None = None) -> list[str]:
    """What makes a handed-over socket more open than the 0600 helperd would bind.

    The service manager created it, so these are warnings: every connection is still
    checked for its peer's UID.

    Args:
        sock: the listening socket.
        uid: the daemon's user (default: ``os.getuid()``).
    """
    uid = os.getuid() if uid is None else uid
    where = socket_address(sock)
    if where.startswith("@"):
        problem = (
            f"socket {where} is abstract: any process in this network namespace can connect"
            " (other users are refused by the peer check); prefer a path (ListenStream=/...)"
        )
        return [problem]
    if not where.startswith("/"):
        return [f"socket {where} has no path: its permissions cannot be checked"]
    try:
        info = os.stat(where)
    except OSError as exc:
        return [f"cannot check socket {where}: {exc.strerror or exc}"]
    problems = []
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        problems.append(
            f"socket {where} has mode {mode:04o}, looser than 0600: other users can connect"
            " (the peer check refuses them); set SocketMode=0600 in the socket unit"
        )
    if info.st_uid != uid:
        problems.append(
            f"socket {where} belongs to uid {info.st_uid}, not to this daemon's uid {uid};"
            " set SocketUser= in the socket unit"
        )
    folder = os.path.dirname(where)
    try:
        unsafe = folder_problem(os.lstat(folder), folder, uid)  # the rule every client applies
    except OSError:
        unsafe = None
    if unsafe is not None:
        problems.append(
            f"every client refuses socket {where}: {unsafe}; make the folder the user's own,"
            " 0700 (ExecStartPre=install -d -m 0700 -o USER FOLDER in the socket unit)"
        )
    return problems


class Notifier:
    """Tells systemd how the daemon is doing, through the ``NOTIFY_SOCKET`` datagram socket.

    Does nothing when there is no notification socket. Never raises: a notification that
    cannot be sent is logged, and the daemon goes on.

    Args:
        address: the value of ``NOTIFY_SOCKET``: an absolute path, or ``@name`` for an
            abstract socket. None or empty: notifications are off.
    """

    def __init__(self, address: str | None) -> None:
        self._address: str | None = None
        self._display = address or ""
        if not address:
            return
        if address.startswith("@"):
            self._address = "\0" + address[1:]
        elif address.startswith("/"):
            self._address = address
        else:
            log.warning("NOTIFY_SOCKET=%s is not a Unix socket address: not notifying", address)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """The notifier for ``$NOTIFY_SOCKET`` in ``env`` (default: ``os.environ``)."""
        return cls((os.environ if env is None else env).get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """Whether notifications are sent anywhere."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: the daemon accepts connections (with a ``STATUS=`` line)."""
        return self._send("READY=1", status)

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line that ``systemctl status`` shows."""
        return self._send(None, text)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: the daemon is shutting down."""
        return self._send("STOPPING=1", status)

    def _send(self, state: str | None, status: str | None) -> bool:
        """Send one datagram; whether it was sent."""
        if self._address is None:
            return False
        lines = [] if state is None else [state]
        if status is not None:
            lines.append("STATUS=" + " ".join(status.splitlines()))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(NOTIFY_TIMEOUT)
                sock.sendto("\n".join(lines).encode("utf-8", "replace"), self._address)
        except OSError as exc:
            log.warning("could not notify systemd at %s: %s", self._display, exc.strerror or exc)
            return False
        return True


@dataclass(frozen=True)
class IdleExit:
    """When a socket-activated daemon exits on its own, to be started again on demand.

    Attributes:
        after: seconds without any open connection.
        while_unlocked: exit even while a passphrase store is unlocked (whoever connects
            next must unlock it again). Otherwise an unlocked store keeps the daemon up
            until it is locked (by hand or by the idle lock).
    """

    after: float
    while_unlocked: bool = False

    def due(
        self, *, activated: bool, idle_since: float | None, now: float, passphrase_unlocked: bool
    ) -> bool:
        """Whether the daemon should exit now.

        Args:
            activated: the daemon serves a socket a service manager handed over (a daemon
                that bound its own socket never exits by itself: nobody would restart it).
            idle_since: monotonic time since which no connection has been open; None while
                one is.
            now: the monotonic time now.
            passphrase_unlocked: a passphrase-protected store is unlocked.
        """
        if not activated or idle_since is None:
            return False
        if passphrase_unlocked and not self.while_unlocked:
            return False
        return now - idle_since >= self.after
