"""Socket activation and sd_notify with real programs: systemd-socket-activate and a real
datagram socket as NOTIFY_SOCKET (this machine's PID 1 is not systemd).

``systemd-socket-activate -l PATH`` binds PATH, waits for the first connection, then execs
the daemon in its own process with LISTEN_FDS=1 and LISTEN_PID set, passing on only
LISTEN_*, TERM, PATH, USER, HOME and the variables named with ``-E``, as systemd does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helperd_client import Client

from helperd.testing import daemon_env, start_daemon
from tests.support.tools import require_tool

START_TIMEOUT = 20.0
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def notify_socket(home: Path) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET, at ``home/notify``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(home / "notify"))
        sock.settimeout(START_TIMEOUT)
        yield sock


@contextlib.contextmanager
def activated(
    home: Path, *args: str, env: dict[str, str], mode: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``systemd-socket-activate`` for ``python -m helperd ARGS`` on ``home/helperd.sock``.

    Stops the process it started (and only that one) when the block ends.
    """
    tool = require_tool("systemd-socket-activate")
    command = [tool, *mode, "-l", str(home / "helperd.sock"), "--fdname=helperd"]
    for name, value in env.items():
        command.append(f"-E{name}={value}")
    command += [sys.executable, "-m", "helperd", *args]
    with (home / "daemon.log").open("ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_for((home / "helperd.sock").exists, "the socket to be bound")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll ``condition`` until it is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def program(pid: int) -> str:
    """The program process ``pid`` runs now (its argv[0])."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()


def key_env(home: Path, key_file: Path) -> dict[str, str]:
    """What a headless unit gives the daemon: its home and a key file."""
    return {"HELPERD_HOME": str(home), "HELPERD_KEY_FILE": str(key_file)}


def test_first_connection_starts_the_daemon_and_is_answered(
    home: Path, key_file: Path, notify_socket: socket.socket
) -> None:
    """Nothing runs until the first connection, which the activated daemon answers; set
    and get go through it; it tells systemd READY=1 and STOPPING=1; SIGTERM stops it with
    status 0 and leaves the socket, which belongs to the service manager, in place."""
    env = key_env(home, key_file) | {"NOTIFY_SOCKET": str(home / "notify")}
    with activated(home, "--store", "file", "--log-level", "debug", env=env) as process:
        assert "systemd-socket-activate" == Path(program(process.pid)).name
        with Client(home / "helperd.sock", timeout=START_TIMEOUT) as client:
            client.set("acme", "s3cret", username="alice")
            assert "s3cret" == client.get(name="acme").password
            # The daemon runs in the activator's own process: LISTEN_PID matched.
            assert process.pid == client.status().pid
        assert sys.executable == program(process.pid)
        ready = notify_socket.recv(4096).decode()
        assert ready.startswith("READY=1\nSTATUS=serving on ")
        assert str(home / "helperd.sock") in ready
        assert "store: file" in ready

        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(15)
        assert notify_socket.recv(4096).startswith(b"STOPPING=1")
    assert (home / "helperd.sock").is_socket()
    log = (home / "daemon.log").read_text()
    assert "handed over by the service manager" in log
    assert "clients look for" not in log  # HELPERD_HOME names the same socket


def test_headless_unit_environment(home: Path, notify_socket: socket.socket) -> None:
    """The headless unit's setup, emulated: HELPERD_STORE=file from the environment and the
    key in $CREDENTIALS_DIRECTORY/helperd.key (what LoadCredential= hands over, 0400)."""
    credentials = home / "credentials"
    credentials.mkdir(mode=0o700)
    key = credentials / "helperd.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o400)
    env = {
        "HELPERD_HOME": str(home),
        "HELPERD_STORE": "file",
        "CREDENTIALS_DIRECTORY": str(credentials),
        "NOTIFY_SOCKET": str(home / "notify"),
    }
    with activated(home, env=env), Client(home / "helperd.sock", timeout=START_TIMEOUT) as client:
        client.set("acme", "tok", kind="token")
        status = client.status()
        assert ("file", False) == (status.store, status.locked)
        assert str(key) in status.store_reason
        assert "tok" == client.get(name="acme", username="__token__").password
    assert notify_socket.recv(4096).startswith(b"READY=1\n")


def test_notify_socket_of_a_daemon_that_binds_its_own_socket(
    home: Path, key_file: Path, notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon started with NOTIFY_SOCKET (Type=notify without socket activation) sends
    READY=1 with its socket once it accepts connections, and STOPPING=1 on SIGTERM."""
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    assert "NOTIFY_SOCKET" not in daemon_env(home)  # never leaked from the test's own env
    env = {"HELPERD_KEY_FILE": str(key_file), "NOTIFY_SOCKET": str(home / "notify")}
    daemon = start_daemon(home, "--store", "file", env=env)
    try:
        ready = notify_socket.recv(4096).decode()
        assert f"READY=1\nSTATUS=serving on {daemon.socket} (store: file" in ready
        with daemon.client() as client:
            assert client.hello().protocol == 1
        assert 0 == daemon.stop()
        assert notify_socket.recv(4096).startswith(b"STOPPING=1")
    finally:
        daemon.stop()
    assert not daemon.socket.exists()  # a socket it bound itself is removed


def test_idle_exit_after_the_last_connection(home: Path, key_file: Path) -> None:
    """With HELPERD_IDLE_EXIT, an activated daemon stays up while a connection is open and
    exits with status 0 once none has been open for that long; the socket stays."""
    env = key_env(home, key_file) | {"HELPERD_IDLE_EXIT": "1"}
    with activated(home, "--store", "file", env=env) as process:
        with Client(home / "helperd.sock", timeout=START_TIMEOUT) as client:
            client.hello()
            time.sleep(2.5)
            assert process.poll() is None, "exited with a connection open"
            client.hello()
        assert 0 == process.wait(10)
    assert (home / "helperd.sock").is_socket()
    assert "without connections" in (home / "daemon.log").read_text()


def test_an_unlocked_passphrase_store_keeps_the_daemon_up(home: Path) -> None:
    """--idle-exit never drops an unlocked passphrase store: the daemon exits only once the
    store is locked."""
    env = {"HELPERD_HOME": str(home)}
    with activated(home, "--store", "file", "--idle-exit", "1", env=env) as process:
        with Client(home / "helperd.sock", timeout=START_TIMEOUT) as client:
            client.init(PASSPHRASE)
        time.sleep(2.5)
        assert process.poll() is None, "exited with the store unlocked"
        with Client(home / "helperd.sock", timeout=START_TIMEOUT) as client:
            client.lock()
        assert 0 == process.wait(10)


def test_idle_exit_unlocked_exits_all_the_same(home: Path) -> None:
    """--idle-exit-unlocked lets the daemon exit with the passphrase store unlocked."""
    args = ("--store", "file", "--idle-exit", "1", "--idle-exit-unlocked")
    with activated(home, *args, env={"HELPERD_HOME": str(home)}) as process:
        with Client(home / "helperd.sock", timeout=START_TIMEOUT) as client:
            client.init(PASSPHRASE)
            assert not client.status().locked
        assert 0 == process.wait(10)


def test_idle_exit_is_ignored_without_activation(home: Path, key_file: Path) -> None:
    """A daemon that bound its own socket never exits by itself (nothing would restart it)."""
    daemon = start_daemon(
        home, "--store", "file", "--idle-exit", "0.5", env={"HELPERD_KEY_FILE": str(key_file)}
    )
    try:
        time.sleep(1.5)
        with daemon.client() as client:
            client.hello()
    finally:
        daemon.stop()
    assert "--idle-exit applies only" in daemon.log.read_text()


def test_a_datagram_socket_is_refused(home: Path, key_file: Path) -> None:
    """A service manager handing over a datagram socket gets a clear refusal and status 1."""
    with activated(home, "--store", "file", env=key_env(home, key_file), mode=("-d",)) as process:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"wake up", str(home / "helperd.sock"))
        assert 1 == process.wait(START_TIMEOUT)
    log = (home / "daemon.log").read_text()
    assert "helperd: file descriptor 3 (named 'helperd') from systemd" in log
    assert "not a Unix stream socket" in log


def test_an_accepted_connection_is_refused(home: Path, key_file: Path) -> None:
    """Accept=yes hands over a connection, not a listening socket: the daemon says so."""
    with activated(home, "--store", "file", env=key_env(home, key_file), mode=("-a",)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
            peer.settimeout(START_TIMEOUT)
            peer.connect(str(home / "helperd.sock"))
            assert b"" == peer.recv(1)  # closed by the daemon as it exits
        wait_for(lambda: "is not listening" in (home / "daemon.log").read_text(), "the refusal")
