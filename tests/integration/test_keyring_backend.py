"""helperd's keyring plugin against a real daemon: keyring's own contract suite and the
Poetry-specific services, plus what happens when the daemon is down, hung or locked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from helperd_client import Client
from helperd_client.keyring_backend import PRIORITY, HelperdKeyring
from keyring.backends import SecretService as SecretServiceBackend
from keyring.errors import PasswordDeleteError, PasswordSetError
from keyring.testing.backend import BackendBasicTests

from helperd.testing import Daemon, start_daemon
from tests.support.secret_service import SecretService

URL = "http://127.0.0.1:8080/simple/"


@pytest.fixture
def plugin_socket(key_daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    """The plugin finds the daemon through HELPERD_SOCKET, as a tool's process would."""
    monkeypatch.setenv("HELPERD_SOCKET", str(key_daemon.socket))
    monkeypatch.setenv("HELPERD_TIMEOUT", "1")
    return key_daemon


class _Contract(BackendBasicTests):
    """keyring's BackendBasicTests, in full, against the plugin and the daemon of the
    fixture named ``daemon_fixture`` (subclasses choose the store behind it)."""

    daemon_fixture: str

    @pytest.fixture(autouse=True)
    def _init_properties(self, request: pytest.FixtureRequest) -> Iterator[None]:
        # Replaces the mixin's fixture so that the daemon outlives the cleanup.
        request.getfixturevalue(self.daemon_fixture)
        self.keyring = self.init_keyring()
        self.credentials_created: set[tuple[str, str]] = set()
        yield
        self.cleanup()

    def init_keyring(self) -> HelperdKeyring:
        return HelperdKeyring()


class TestContractOnFileStore(_Contract):
    """The contract with the encrypted file store behind the plugin."""

    daemon_fixture = "plugin_socket"


@pytest.fixture
def keyring_daemon(
    home: Path, secret_service: SecretService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemon]:
    """A daemon with the OS keyring store on a private gnome-keyring."""
    daemon = start_daemon(home, "--store", "keyring", env=secret_service.env)
    monkeypatch.setenv("HELPERD_SOCKET", str(daemon.socket))
    try:
        yield daemon
    finally:
        daemon.stop()


class TestContractOnKeyringStore(_Contract):
    """The contract with the OS keyring store (a real Secret Service) behind the plugin."""

    daemon_fixture = "keyring_daemon"


def test_generic_entries_live_where_keyring_puts_them(keyring_daemon: Daemon) -> None:
    """With the keyring store, a generic entry is readable by keyring's own Secret Service
    backend, and an entry stored before helperd is readable through the plugin."""
    plugin = HelperdKeyring()
    plugin.set_password("some-app", "me", "app-secret")
    native = SecretServiceBackend.Keyring()
    assert "app-secret" == native.get_password("some-app", "me")
    native.set_password("older-app", "you", "older-secret")
    assert "older-secret" == plugin.get_password("older-app", "you")
    plugin.delete_password("older-app", "you")
    assert None is native.get_password("older-app", "you")


def test_always_viable_never_raising_never_connecting(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No socket, or a listener that never accepts: priority answers PRIORITY, above the
    chainer, without raising and without connecting (a plugin that stepped aside let Poetry
    write plaintext)."""
    monkeypatch.setenv("HELPERD_SOCKET", str(home / "helperd.sock"))
    assert PRIORITY == HelperdKeyring.priority
    assert PRIORITY > 10
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(home / "helperd.sock"))
    listener.listen(1)
    listener.setblocking(False)
    try:
        assert PRIORITY == HelperdKeyring.priority
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()


def test_named_in_python_keyring_backend_with_the_daemon_down(home: Path) -> None:
    """PYTHON_KEYRING_BACKEND naming the plugin, no daemon, no autostart: a read is a quiet
    None (exit 0, no traceback), a write fails with the fix."""
    code = (
        "import keyring, sys\n"
        "print(keyring.get_password('poetry-repository-acme', 'alice'))\n"
        "try:\n"
        "    keyring.set_password('poetry-repository-acme', 'alice', 'pw')\n"
        "except keyring.errors.PasswordSetError as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "helperd_client.keyring_backend.HelperdKeyring",
        "HELPERD_SOCKET": str(home / "helperd.sock"),
        "HELPERD_AUTOSTART": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert (0, "None") == (done.returncode, done.stdout.splitlines()[0]), done.stderr
    assert "Traceback" not in done.stderr
    assert "refused: helperd could not store the password" in done.stdout
    assert "HELPERD_AUTOSTART=0" in done.stdout


def test_keyring_picks_the_plugin(plugin_socket: Daemon) -> None:
    """With the daemon up, keyring's own backend selection lands on helperd's plugin."""
    code = "import keyring; print(type(keyring.get_keyring()).__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "helperd_client.keyring_backend" == out.stdout.strip()


def test_poetry_services(plugin_socket: Daemon) -> None:
    """The services Poetry asks for answer as INTEGRATION.md says they must."""
    with plugin_socket.client() as client:
        client.set("acme", "basic-pw", username="alice", urls=[URL])
        client.set("acme", "token-pw", kind="token")
        client.set("bare", "bare-pw", urls=["https://bare.example.test/simple/"])
    plugin = HelperdKeyring()
    assert None is plugin.get_password("python-poetry-check", "python-poetry")
    assert "basic-pw" == plugin.get_password("poetry-repository-acme", "alice")
    assert "token-pw" == plugin.get_password("poetry-repository-acme", "__token__")
    assert None is plugin.get_password("poetry-repository-acme", "__poetry_source_empty_username__")
    assert "bare-pw" == plugin.get_password(
        "poetry-repository-bare", "__poetry_source_empty_username__"
    )
    for service in (URL, URL.rstrip("/"), URL + "privpkg/", "127.0.0.1:8080"):
        credential = plugin.get_credential(service, None)
        assert credential is not None, service
        assert ("alice", "basic-pw") == (credential.username, credential.password)


def test_poetry_write_through(
    plugin_socket: Daemon, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    """set/delete on poetry-repository-NAME land in helperd, with the URL from config.toml."""
    config = home / "pypoetry"
    config.mkdir()
    (config / "config.toml").write_text(f'[repositories.acme]\nurl = "{URL}"\n')
    monkeypatch.setenv("POETRY_CONFIG_DIR", str(config))
    plugin = HelperdKeyring()
    plugin.set_password("poetry-repository-acme", "alice", "pw1")
    plugin.set_password("poetry-repository-acme", "__token__", "tok1")
    with plugin_socket.client() as client:
        basic = client.get(name="acme")
        assert ("alice", "pw1", "basic", (URL,)) == (
            basic.username,
            basic.password,
            basic.kind,
            basic.urls,
        )
        assert "token" == client.get(name="acme", username="__token__").kind
        plugin.delete_password("poetry-repository-acme", "__token__")
        assert ["alice"] == [r.username for r in client.list()]


def test_poetry_write_through_merges_urls(
    plugin_socket: Daemon, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    """A record holding an index and an upload URL keeps both and gains config.toml's URL."""
    upload = "http://127.0.0.1:8080/upload/"
    other = "http://127.0.0.1:9090/simple/"
    with plugin_socket.client() as client:
        client.set("acme", "old", username="alice", urls=[URL, upload])
    config = home / "pypoetry"
    config.mkdir()
    (config / "config.toml").write_text(f'[repositories.acme]\nurl = "{other}"\n')
    monkeypatch.setenv("POETRY_CONFIG_DIR", str(config))
    HelperdKeyring().set_password("poetry-repository-acme", "alice", "new")
    with plugin_socket.client() as client:
        record = client.get(name="acme", username="alice")
    assert ("new", (URL, upload, other)) == (record.password, record.urls)


def test_stale_socket_answers_none_at_once(
    home: Path,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A killed daemon's socket: reads answer None at once and say so once; writes raise."""
    daemon = start_daemon(home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)})
    daemon.stop(signal.SIGKILL)
    monkeypatch.setenv("HELPERD_SOCKET", str(daemon.socket))
    plugin = HelperdKeyring()
    started = time.monotonic()
    assert None is plugin.get_password("poetry-repository-acme", "alice")
    assert None is plugin.get_credential(URL, None)
    assert time.monotonic() - started < 1
    assert 1 == capsys.readouterr().err.count("helperd is not running")
    with pytest.raises(PasswordSetError, match="start it with"):
        plugin.set_password("poetry-repository-acme", "alice", "pw")


def test_hung_daemon_costs_one_timeout_then_rests(plugin_socket: Daemon) -> None:
    """A daemon that never answers costs one read timeout; later reads answer None at once."""
    plugin_socket.process.send_signal(signal.SIGSTOP)
    try:
        plugin = HelperdKeyring()
        started = time.monotonic()
        assert None is plugin.get_credential(URL, None)
        first = time.monotonic() - started
        started = time.monotonic()
        assert None is plugin.get_password("poetry-repository-acme", "alice")
        second = time.monotonic() - started
    finally:
        plugin_socket.process.send_signal(signal.SIGCONT)
    assert first < 5 * 1.0, "bounded by HELPERD_TIMEOUT=1"
    assert second < 0.5


def test_locked_store_answers_none_and_says_so_once(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A locked store: reads answer None, and one line tells the user to unlock."""
    daemon = start_daemon(home, "--store", "file")
    try:
        monkeypatch.setenv("HELPERD_SOCKET", str(daemon.socket))
        with Client(daemon.socket) as client:
            client.init("pass phrase")
            client.set("acme", "pw", username="alice")
            client.lock()
        plugin = HelperdKeyring()
        assert None is plugin.get_password("poetry-repository-acme", "alice")
        assert None is plugin.get_credential(URL, None)
        err = capsys.readouterr().err
        assert 1 == err.count("helperctl unlock")
        with pytest.raises(PasswordDeleteError, match="helperctl unlock"):
            plugin.delete_password("poetry-repository-acme", "alice")
    finally:
        daemon.stop()


def test_keyring_module_api_goes_through_the_plugin(plugin_socket: Daemon) -> None:
    """keyring.set_keyring(plugin) then the module functions store and read in helperd."""
    keyring.set_keyring(HelperdKeyring())
    try:
        keyring.set_password("poetry-repository-x", "bob", "pw-x")
        assert "pw-x" == plugin_socket.client().get(name="x").password
    finally:
        keyring.set_keyring(keyring.backends.fail.Keyring())


def test_one_connection_serves_many_calls_and_outlives_idle_closes(
    home: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin keeps one connection for its calls; after the daemon closes it for idleness
    (read_timeout), and after a daemon restart, the next call simply opens another."""
    (home / "config.toml").write_text("read_timeout = 0.3\n")
    env = {"HELPERD_KEY_FILE": str(key_file)}
    daemon = start_daemon(home, "--store", "file", env=env)
    monkeypatch.setenv("HELPERD_SOCKET", str(daemon.socket))
    try:
        daemon.client().set("acme", "pw", username="alice", urls=[URL])
        plugin = HelperdKeyring()
        assert "pw" == plugin.get_password(URL, "alice")
        kept = plugin._client()._sock
        assert kept is not None
        assert "pw" == plugin.get_password("poetry-repository-acme", "alice")
        assert kept is plugin._client()._sock, "the second call reused the connection"

        time.sleep(1.0)  # the daemon closes the idle connection after 0.3 s
        assert "pw" == plugin.get_password(URL, "alice")
        assert kept is not plugin._client()._sock

        daemon.stop()
        daemon = start_daemon(home, "--store", "file", env=env)
        assert "pw" == plugin.get_password(URL, "alice")
    finally:
        daemon.stop()


def test_a_forked_child_opens_its_own_connection(plugin_socket: Daemon) -> None:
    """After a fork, the child's calls go over a connection of its own (a shared socket would
    hand one process the other's answers), and the parent's connection stays its own."""
    with plugin_socket.client() as client:
        for n in range(20):
            client.set(f"r{n}", f"pw-{n}", username="alice")
    plugin = HelperdKeyring()
    assert "pw-0" == plugin.get_password("r0", "alice")  # the parent's connection is open
    inherited = plugin._client()._sock
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits
        try:
            ok = all(plugin.get_password(f"r{n}", "alice") == f"pw-{n}" for n in range(20))
            own = plugin._client()._sock is not inherited
            os.write(write, b"ok" if ok and own else b"wrong")
        finally:
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            assert b"ok" == pipe.read()
        assert all(plugin.get_password(f"r{n}", "alice") == f"pw-{n}" for n in range(20))
        assert inherited is plugin._client()._sock, "the parent kept its connection"
    finally:
        os.waitpid(child, 0)
