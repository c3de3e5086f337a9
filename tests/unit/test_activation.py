"""Socket hand-over (systemd, launchd), sd_notify and the idle-exit rule, without a daemon.

The hand-over tests put real sockets on file descriptors 3, 4, ... as systemd does, and put
back whatever this process had there afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helperd.daemon.activation import (
    SD_LISTEN_FDS_START,
    ActivationError,
    IdleExit,
    Notifier,
    _launchd_fds,
    launchd_sockets,
    listen_fds,
    socket_address,
    socket_problems,
)


@pytest.fixture
def tmp() -> Iterator[Path]:
    """A short temporary folder (AF_UNIX paths are limited to about 100 bytes)."""
    with tempfile.TemporaryDirectory(prefix="hd", dir="/tmp") as path:
        yield Path(path)


def listener(path: Path) -> socket.socket:
    """A listening Unix stream socket at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen()
    return sock


@contextlib.contextmanager
def handed_over(*sources: socket.socket | int | None) -> Iterator[list[int]]:
    """Put ``sources`` on fds 3, 4, ... (None: leave that fd closed); restore them after."""
    targets = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + len(sources)))
    saved: dict[int, tuple[int, bool] | None] = {}
    for fd in targets:
        try:
            saved[fd] = (os.dup(fd), os.get_inheritable(fd))
        except OSError:
            saved[fd] = None
    try:
        for fd, source in zip(targets, sources, strict=True):
            if source is None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            else:
                number = source if isinstance(source, int) else source.fileno()
                os.dup2(number, fd, inheritable=True)
        yield targets
    finally:
        for fd, old in saved.items():
            if old is None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            else:
                os.dup2(old[0], fd, inheritable=old[1])
                os.close(old[0])


def systemd_env(count: int, names: str | None = None, pid: int | None = None) -> dict[str, str]:
    """The variables systemd sets for a socket-activated process."""
    env = {"LISTEN_FDS": str(count), "LISTEN_PID": str(os.getpid() if pid is None else pid)}
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return env | {"PATH": "/usr/bin"}


class TestListenFds:
    def test_takes_the_listening_socket(self, tmp: Path) -> None:
        """A listening Unix socket on fd 3 is served, close-on-exec; LISTEN_* are removed."""
        env = systemd_env(1, "helperd")
        with listener(tmp / "s.sock") as sock, handed_over(sock):
            [taken] = listen_fds(env)
            try:
                assert (3, socket.AF_UNIX, socket.SOCK_STREAM) == (
                    taken.fileno(),
                    taken.family,
                    taken.type,
                )
                assert str(tmp / "s.sock") == socket_address(taken)
                assert not os.get_inheritable(3)
            finally:
                taken.detach()
        assert {"PATH": "/usr/bin"} == env

    def test_prefers_the_socket_named_helperd(self, tmp: Path) -> None:
        """With several sockets, the one named helperd comes first, the others after it."""
        env = systemd_env(3, "other:helperd:third")
        with (
            listener(tmp / "a.sock") as a,
            listener(tmp / "b.sock") as b,
            listener(tmp / "c.sock") as c,
            handed_over(a, b, c),
        ):
            taken = listen_fds(env)
            try:
                assert [4, 3, 5] == [s.fileno() for s in taken]
            finally:
                for s in taken:
                    s.detach()

    def test_names_that_do_not_match_the_count_are_ignored(self, tmp: Path) -> None:
        """A LISTEN_FDNAMES with the wrong number of names leaves systemd's order alone."""
        env = systemd_env(2, "helperd")
        with listener(tmp / "a.sock") as a, listener(tmp / "b.sock") as b, handed_over(a, b):
            taken = listen_fds(env)
            try:
                assert [3, 4] == [s.fileno() for s in taken]
            finally:
                for s in taken:
                    s.detach()

    def test_ignores_variables_meant_for_another_process(self, tmp: Path) -> None:
        """LISTEN_PID of another process: no socket is taken, and the variables are removed."""
        env = systemd_env(1, "helperd", pid=os.getpid() + 1)
        with listener(tmp / "s.sock") as sock, handed_over(sock):
            assert [] == listen_fds(env)
            assert os.get_inheritable(3)  # untouched
        assert {"PATH": "/usr/bin"} == env

    def test_not_socket_activated(self) -> None:
        """Without LISTEN_FDS there is nothing to take."""
        assert [] == listen_fds({"PATH": "/usr/bin"})

    def test_cleans_the_process_environment_by_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Called without an environment, it removes LISTEN_* from os.environ (children)."""
        for name, value in systemd_env(1, "helperd", pid=os.getpid() + 1).items():
            monkeypatch.setenv(name, value)
        assert [] == listen_fds()
        assert not {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} & set(os.environ)

    def test_refuses_a_socket_that_is_not_listening(self) -> None:
        """A connected socket (Accept=yes) is refused, and its fd is left open."""
        left, right = socket.socketpair()
        with left, right, handed_over(left):
            with pytest.raises(ActivationError, match="not listening"):
                listen_fds(systemd_env(1, "helperd"))
            os.fstat(3)  # still open: it is not ours to close

    def test_refuses_a_datagram_socket(self) -> None:
        """A Unix datagram socket is refused: helperd speaks over a stream."""
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dgram,
            handed_over(dgram),
            pytest.raises(ActivationError, match="not a Unix stream socket"),
        ):
            listen_fds(systemd_env(1))

    def test_refuses_an_internet_socket(self) -> None:
        """A TCP socket is refused: helperd listens only on a Unix socket."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            tcp.listen()
            with handed_over(tcp), pytest.raises(ActivationError, match="not a Unix stream"):
                listen_fds(systemd_env(1))

    def test_refuses_a_file_descriptor_that_is_not_a_socket(self) -> None:
        """A pipe handed over as a socket is refused, naming the descriptor."""
        read_end, write_end = os.pipe()
        try:
            with (
                handed_over(read_end),
                pytest.raises(ActivationError, match=r"file descriptor 3 .* not a socket"),
            ):
                listen_fds(systemd_env(1))
        finally:
            os.close(read_end)
            os.close(write_end)

    def test_refuses_a_missing_file_descriptor(self, tmp: Path) -> None:
        """LISTEN_FDS counting a descriptor that is not open is an error."""
        with (
            listener(tmp / "s.sock") as sock,
            handed_over(sock, None),
            pytest.raises(ActivationError, match="4 is not open"),
        ):
            listen_fds(systemd_env(2))

    @pytest.mark.parametrize("count", ["abc", "-1", "1000"])
    def test_refuses_a_malformed_count(self, count: str) -> None:
        """LISTEN_FDS that is not a small number is an error, and is removed all the same."""
        env = {"LISTEN_FDS": count, "LISTEN_PID": str(os.getpid())}
        with pytest.raises(ActivationError, match="LISTEN_FDS"):
            listen_fds(env)
        assert {} == env


class TestSocketChecks:
    def test_a_private_socket_has_no_problem(self, tmp: Path) -> None:
        """A 0600 socket of this user is what helperd binds itself: nothing to say."""
        with listener(tmp / "s.sock") as sock:
            os.chmod(tmp / "s.sock", 0o600)
            assert [] == socket_problems(sock)

    def test_a_loose_mode_is_reported(self, tmp: Path) -> None:
        """A socket others may connect to is reported with its mode and the fix."""
        with listener(tmp / "s.sock") as sock:
            os.chmod(tmp / "s.sock", 0o666)
            [problem] = socket_problems(sock)
        assert "mode 0666" in problem
        assert "SocketMode=0600" in problem

    def test_another_owner_is_reported(self, tmp: Path) -> None:
        """A socket that belongs to another user is reported."""
        with listener(tmp / "s.sock") as sock:
            os.chmod(tmp / "s.sock", 0o600)
            owner, folder = socket_problems(sock, uid=os.getuid() + 1)
        assert "SocketUser=" in owner
        assert "every client refuses" in folder

    def test_a_folder_clients_refuse_is_reported(self, tmp: Path) -> None:
        """A group-writable socket folder is reported: every client would refuse the socket."""
        with listener(tmp / "s.sock") as sock:
            os.chmod(tmp / "s.sock", 0o600)
            os.chmod(tmp, 0o770)
            [problem] = socket_problems(sock)
        assert "every client refuses socket" in problem
        assert "can be written by group or others (mode 770)" in problem

    def test_an_abstract_socket_is_reported(self) -> None:
        """An abstract socket has no file permissions: it is named with @ and reported."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(f"\0helperd-test-{os.getpid()}")
            sock.listen()
            assert f"@helperd-test-{os.getpid()}" == socket_address(sock)
            [problem] = socket_problems(sock)
        assert "abstract" in problem


class TestNotifier:
    @pytest.fixture
    def receiver(self, tmp: Path) -> Iterator[tuple[socket.socket, str]]:
        """A datagram socket standing in for systemd's notification socket."""
        path = tmp / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(5)
            yield sock, str(path)

    def test_ready_status_stopping(self, receiver: tuple[socket.socket, str]) -> None:
        """Each call sends one datagram in sd_notify's KEY=VALUE form."""
        sock, path = receiver
        notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
        assert notifier.enabled
        assert notifier.ready("serving on /run/x")
        assert notifier.status("two\nlines")
        assert notifier.stopping()
        assert [
            b"READY=1\nSTATUS=serving on /run/x",
            b"STATUS=two lines",
            b"STOPPING=1",
        ] == [sock.recv(4096) for _ in range(3)]

    def test_abstract_socket(self) -> None:
        """NOTIFY_SOCKET=@name is a socket in the abstract namespace."""
        name = f"helperd-notify-{os.getpid()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            sock.settimeout(5)
            assert Notifier("@" + name).ready()
            assert b"READY=1" == sock.recv(4096)

    def test_without_notify_socket_it_does_nothing(self) -> None:
        """No NOTIFY_SOCKET (not run by systemd): nothing is sent, nothing fails."""
        notifier = Notifier.from_env({})
        assert not notifier.enabled
        assert not notifier.ready("x")
        assert not notifier.stopping()

    def test_a_dead_notify_socket_is_logged_not_raised(
        self, tmp: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A notification that cannot be delivered is a warning: the daemon goes on."""
        with caplog.at_level(logging.WARNING, logger="helperd.daemon.activation"):
            assert not Notifier(str(tmp / "nobody-listens")).ready("x")
        assert "could not notify systemd" in caplog.text

    def test_an_unsupported_address_turns_notifications_off(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An address that is not a Unix socket (say vsock:) is reported and ignored."""
        with caplog.at_level(logging.WARNING, logger="helperd.daemon.activation"):
            notifier = Notifier("vsock:2:1234")
        assert not notifier.enabled
        assert not notifier.ready()
        assert "not a Unix socket address" in caplog.text


class TestIdleExit:
    @pytest.mark.parametrize(
        ("activated", "idle_since", "unlocked", "while_unlocked", "expected"),
        [
            (True, 0.0, False, False, True),  # activated, idle long enough
            (True, 95.0, False, False, False),  # idle, but not for long enough
            (True, None, False, False, False),  # a connection is open
            (False, 0.0, False, False, False),  # bound its own socket: nobody would restart it
            (True, 0.0, True, False, False),  # an unlocked passphrase store keeps it up
            (True, 0.0, True, True, True),  # ... unless asked to exit all the same
        ],
    )
    def test_due(
        self,
        activated: bool,
        idle_since: float | None,
        unlocked: bool,
        while_unlocked: bool,
        expected: bool,
    ) -> None:
        """A socket-activated daemon exits after the idle time, never with a client
        connected, and never while a passphrase store is unlocked unless told to."""
        policy = IdleExit(10.0, while_unlocked=while_unlocked)
        actual = policy.due(
            activated=activated, idle_since=idle_since, now=100.0, passphrase_unlocked=unlocked
        )
        assert expected == actual

    def test_exactly_at_the_limit(self) -> None:
        """The daemon exits once the idle time has fully passed."""
        policy = IdleExit(10.0)
        assert policy.due(activated=True, idle_since=90.0, now=100.0, passphrase_unlocked=False)


_ACTIVATE = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
    ctypes.POINTER(ctypes.c_size_t),
)


class TestLaunchd:
    """launchd itself runs only on macOS: here its C calling convention is exercised with a
    stand-in for ``launch_activate_socket`` that allocates the array as libSystem does."""

    def test_off_macos_there_is_no_socket(self) -> None:
        """On Linux, launchd_sockets answers no socket without calling anything."""
        assert [] == launchd_sockets(platform="linux")

    def test_reads_and_frees_the_array(self) -> None:
        """The descriptors come back in order and the malloc-ed array is freed once."""
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        calls: list[bytes] = []
        freed: list[int] = []

        def fake(
            name: bytes,
            fds: ctypes._Pointer[ctypes._Pointer[ctypes.c_int]],
            count: ctypes._Pointer[ctypes.c_size_t],
        ) -> int:
            calls.append(name)
            array = ctypes.cast(
                libc.malloc(2 * ctypes.sizeof(ctypes.c_int)), ctypes.POINTER(ctypes.c_int)
            )
            array[0], array[1] = 7, 9
            fds[0] = array
            count[0] = 2
            return 0

        def free(pointer: ctypes._Pointer[ctypes.c_int]) -> None:
            address = ctypes.cast(pointer, ctypes.c_void_p).value
            assert address is not None
            freed.append(address)
            libc.free(ctypes.c_void_p(address))

        assert [7, 9] == _launchd_fds("Listeners", _ACTIVATE(fake), free)
        assert [b"Listeners"] == calls
        assert 1 == len(freed)

    @pytest.mark.parametrize("code", [errno.ESRCH, errno.ENOENT])
    def test_not_started_by_launchd(self, code: int) -> None:
        """ESRCH (not a launchd job) and ENOENT (no such Sockets entry) mean: bind our own."""

        def fake(name: bytes, fds: object, count: object) -> int:
            return code

        assert [] == _launchd_fds("Listeners", _ACTIVATE(fake), lambda _pointer: None)

    def test_other_errors_are_reported(self) -> None:
        """EALREADY (the socket was taken before) stops the daemon with a clear message."""

        def fake(name: bytes, fds: object, count: object) -> int:
            return errno.EALREADY

        with pytest.raises(ActivationError, match="launchd did not hand over"):
            _launchd_fds("Listeners", _ACTIVATE(fake), lambda _pointer: None)
