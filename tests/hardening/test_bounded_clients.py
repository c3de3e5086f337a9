"""Bounded clients: a daemon that hangs never hangs its callers.

A fake server on a Unix socket accepts and never answers, answers one byte a second (a
per-``recv`` timeout would never fire: only a deadline for the whole call does), or never
accepts at all (its backlog full). ``helperctl get`` (``HELPERD_TIMEOUT=1``), the client
library and the keyring plugin must each give up within five times their timeout. Poetry
against such a daemon is tested in the e2e ring.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helperd_client import Client, DaemonUnreachableError
from helperd_client.keyring_backend import HelperdKeyring
from keyring.errors import PasswordDeleteError, PasswordSetError

from tests.hardening import Figures, timeout_for

pytestmark = pytest.mark.timeout(timeout_for(120, 300))

TIMEOUT = 1.0
BOUND = 5 * TIMEOUT
HELPERCTL = str(Path(sys.executable).parent / "helperctl")
ANSWER = (
    b'{"v":1,"id":1,"ok":true,"result":{"name":"foo","username":"u","password":"never",'
    b'"kind":"basic","urls":[],"expires_at":null,"created_at":null,"updated_at":null}}\n'
)


class FakeServer:
    """A Unix-socket server that misbehaves in one of three ways (``mode``)."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        self.mode = mode
        self.stop = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sockets: list[socket.socket] = [self.listener]
        self.threads: list[threading.Thread] = []

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeServer]:
        """Serve for the block; every socket and thread is closed and joined afterwards."""
        self.listener.bind(str(self.path))
        try:
            if self.mode == "never-accepts":
                self.listener.listen(0)
                self.fill_backlog()
            else:
                self.listener.listen(16)
                self.spawn(self.accept_loop)
            yield self
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join(5)
            for sock in self.sockets:
                sock.close()

    def fill_backlog(self) -> None:
        """Queue connections until a new one would have to wait."""
        for _ in range(64):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            self.sockets.append(sock)
            try:
                sock.connect(str(self.path))
            except BlockingIOError:
                return
        pytest.fail("the backlog never filled")

    def spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def accept_loop(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.sockets.append(conn)
            self.spawn(self.misbehave, conn)

    def misbehave(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        with contextlib.suppress(OSError):
            while b"\n" not in conn.recv(65_536) and not self.stop.is_set():
                pass
        for byte in ANSWER if self.mode == "one-byte-a-second" else b"":
            if self.stop.wait(1.0):
                return
            with contextlib.suppress(OSError):
                conn.send(bytes([byte]))
        self.stop.wait()


MODES = ["never-answers", "one-byte-a-second", "never-accepts"]


@pytest.fixture(params=MODES)
def hung(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    """The socket of a fake daemon that misbehaves one way, and that way's name."""
    path = tmp_path_factory.mktemp("hung") / "s.sock"
    with FakeServer(path, request.param).running():
        yield path, request.param


def test_helperctl_gives_up(hung: tuple[Path, str], figures: Figures) -> None:
    """``helperctl get`` with HELPERD_TIMEOUT=1 exits 3 (not reachable) within 5 s."""
    path, mode = hung
    env = {"PATH": "/usr/bin:/bin", "HELPERD_SOCKET": str(path), "HELPERD_TIMEOUT": str(TIMEOUT)}
    started = time.monotonic()
    done = subprocess.run(
        [HELPERCTL, "get", "foo"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    took = time.monotonic() - started
    figures(f"helperctl get, daemon that {mode}", took, "s")
    assert 3 == done.returncode, done.stderr
    assert "never" not in done.stdout
    assert took < BOUND


def test_client_library_gives_up(
    hung: tuple[Path, str], figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Client` raises DaemonUnreachableError within 5x its timeout (given, or HELPERD_TIMEOUT)."""
    path, mode = hung
    monkeypatch.setenv("HELPERD_TIMEOUT", str(TIMEOUT))
    took = []
    for client in (Client(path, timeout=TIMEOUT), Client(path)):
        started = time.monotonic()
        with client, pytest.raises(DaemonUnreachableError):
            client.get(name="foo")
        took.append(time.monotonic() - started)
    figures(f"client library, daemon that {mode}", max(took), "s")
    assert max(took) < BOUND


def test_keyring_plugin_gives_up(
    hung: tuple[Path, str], figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keyring plugin: reads answer None within 5x the timeout, then at once; writes raise."""
    path, mode = hung
    monkeypatch.setenv("HELPERD_SOCKET", str(path))
    monkeypatch.setenv("HELPERD_TIMEOUT", str(TIMEOUT))
    backend = HelperdKeyring()
    took: dict[str, float] = {}
    results = []
    for label, call in (
        ("get", lambda: backend.get_password("foo", "u")),
        ("again", lambda: backend.get_credential("foo", None)),
    ):
        started = time.monotonic()
        results.append(call())
        took[label] = time.monotonic() - started
    assert [None, None] == results
    writer = HelperdKeyring()
    started = time.monotonic()
    with pytest.raises(PasswordSetError):
        writer.set_password("foo", "u", "a new secret")
    took["set"] = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(PasswordDeleteError):
        writer.delete_password("foo", "u")
    took["delete"] = time.monotonic() - started
    shown = "/".join(f"{took[k]:.2f}" for k in ("get", "again", "set", "delete"))
    figures(f"keyring plugin get/again/set/delete, daemon that {mode}", shown, "s")
    assert took["get"] < BOUND
    assert took["again"] < 0.1, "after one timeout the plugin rests instead of waiting again"
    assert took["set"] < BOUND
    assert took["delete"] < BOUND
