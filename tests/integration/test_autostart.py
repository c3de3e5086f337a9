"""On-demand start: the keyring plugin and the shim start a daemon when none answers, and a
write that still cannot be delivered fails loudly; Client and helperctl never start one.

Each started daemon lives in the test's temporary HELPERD_HOME, runs the worktree's own
``helperd`` (a link in a PATH folder of the test's), and is stopped by the test by its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helperd_client import Client, DaemonNotRunningError, DaemonUnreachableError, autostart
from helperd_client.keyring_backend import HelperdKeyring
from keyring.errors import PasswordSetError

from helperd.testing import STOP_TIMEOUT

HELPERD = Path(sys.executable).parent / "helperd"


def stop_by_pid(socket: Path) -> None:
    """Stop the daemon answering on ``socket`` (if any) by the PID its status gives."""
    try:
        with Client(socket, timeout=5) as client:
            pid = client.status().pid
    except DaemonUnreachableError:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state == "Z":  # exited; its new parent reaps it
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"the started daemon {pid} did not stop on SIGTERM")


@pytest.fixture
def on_demand(home: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The environment a tool runs in with no daemon up: autostart at its default (on), the
    worktree's helperd on PATH, a file store opened by a key file. Yields the socket."""
    bin_dir = home / "bin"
    bin_dir.mkdir()
    (bin_dir / "helperd").symlink_to(HELPERD)
    for name in ("HELPERD_AUTOSTART", "HELPERD_SOCKET", "HELPERD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HELPERD_HOME", str(home))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("HELPERD_STORE", "file")
    monkeypatch.setenv("HELPERD_KEY_FILE", str(key_file))
    monkeypatch.setattr(autostart, "INSTALL_LINKS", ())  # never install.sh's links in a test
    socket = home / "helperd.sock"
    try:
        yield socket
    finally:
        stop_by_pid(socket)


def test_plugin_write_starts_a_daemon_that_keeps_the_password(on_demand: Path) -> None:
    """A write with no daemon up starts one (logging to helperd.log, 0600) and lands there."""
    HelperdKeyring().set_password("poetry-repository-acme", "alice", "pw-started")
    with Client(on_demand) as client:
        assert "pw-started" == client.get(name="acme", username="alice").password
    log = on_demand.parent / autostart.LOG_NAME
    assert 0o600 == stat.S_IMODE(log.stat().st_mode)
    assert "listening on" in log.read_text()


def test_plugin_read_starts_a_daemon(on_demand: Path) -> None:
    """A read with no daemon up starts one and answers from it (here: nothing stored)."""
    assert None is HelperdKeyring().get_password("poetry-repository-acme", "alice")
    with Client(on_demand) as client:
        assert [] == client.list()


def test_plugin_write_without_an_executable_fails_loudly(
    on_demand: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No helperd to start: the write raises PasswordSetError saying so; a read is None."""
    monkeypatch.setenv("PATH", "/nonexistent")
    plugin = HelperdKeyring()
    assert None is plugin.get_password("poetry-repository-acme", "alice")
    with pytest.raises(PasswordSetError, match="no `helperd` executable was found"):
        plugin.set_password("poetry-repository-acme", "alice", "pw")
    assert not on_demand.exists()


def test_plugin_write_with_autostart_off_fails_loudly(
    on_demand: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HELPERD_AUTOSTART=0: no daemon is started, and the write raises with the fix."""
    monkeypatch.setenv("HELPERD_AUTOSTART", "0")
    with pytest.raises(PasswordSetError, match="HELPERD_AUTOSTART=0"):
        HelperdKeyring().set_password("poetry-repository-acme", "alice", "pw")
    assert not on_demand.exists()


def test_plugin_write_when_the_start_fails_names_the_log(
    on_demand: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon that exits at once (its store cannot open): the write raises, naming the log,
    within the client's timeout."""
    monkeypatch.setenv("HELPERD_STORE", "nowhere")  # the daemon refuses it and exits 1
    started = time.monotonic()
    with pytest.raises(PasswordSetError, match=r"helperd\.log") as raised:
        HelperdKeyring().set_password("poetry-repository-acme", "alice", "pw")
    assert time.monotonic() - started < 5 * 2.0 + 5, "bounded by the client's timeout"
    assert "pw" not in str(raised.value).split(":")[-1]


def test_client_and_helperctl_never_start_a_daemon(on_demand: Path) -> None:
    """helperd_client.Client raises DaemonNotRunningError and helperctl exits 3: no start."""
    with pytest.raises(DaemonNotRunningError), Client(on_demand) as client:
        client.list()
    done = subprocess.run(
        [str(HELPERD.parent / "helperctl"), "list"], capture_output=True, timeout=60, check=False
    )
    assert 3 == done.returncode, done.stderr
    assert not on_demand.exists()


def test_shim_starts_a_daemon(on_demand: Path) -> None:
    """The keyring shim starts a daemon for a get, and answers from it."""
    with contextlib.suppress(FileNotFoundError):
        on_demand.unlink()
    done = subprocess.run(
        [sys.executable, "-I", "-m", "helperd_client.shim", "get", "poetry-repository-x", "bob"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert 1 == done.returncode, done.stderr  # not found, from the started daemon
    with Client(on_demand) as client:
        assert [] == client.list()


def test_threads_of_one_tool_start_one_daemon(on_demand: Path) -> None:
    """Several threads of one tool asking at once with no daemon up start one daemon only."""
    plugin = HelperdKeyring()
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda n: plugin.get_password(f"svc-{n}", "u"), range(4)))
    assert [None] * 4 == answers
    log = (on_demand.parent / autostart.LOG_NAME).read_text()
    assert 1 == log.count("listening on"), log
    assert "already listening" not in log
