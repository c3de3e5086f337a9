"""git-credential-helperd, the installed executable, against a real daemon: get, store and
erase, nothing matching, a locked store, no daemon, an untrusted socket, a hung daemon, and a
daemon started on demand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helperd_client import Client, NotFoundError, autostart

from helperd.testing import Daemon
from tests.integration.test_autostart import HELPERD, stop_by_pid

HELPER = Path(sys.executable).parent / "git-credential-helperd"
DEFAULT_TIMEOUT = 2.0  # the client's default, which these runs keep
INDEX = "http://127.0.0.1:8080/simple/"
REPO = {"protocol": "http", "host": "127.0.0.1:8080", "path": "org/repo.git"}


def _lines(attrs: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n"


def _run(
    action: str, attrs: dict[str, str], env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELPER), action],
        input=_lines(attrs),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=timeout,
    )


def _env(daemon: Daemon, **extra: str) -> dict[str, str]:
    env = dict(daemon.env)
    env.pop("HELPERD_TIMEOUT", None)
    env["HELPERD_SOCKET"] = str(daemon.socket)
    env.update(extra)
    return env


@pytest.fixture
def held(key_daemon: Daemon) -> Daemon:
    """An index record on the git server's host, with a password git's format can carry."""
    with key_daemon.client() as client:
        client.set("acme", "pä ss=w:rd", username="alice", urls=[INDEX])
    return key_daemon


def test_get_serves_the_host_record(held: Daemon) -> None:
    """A repository URL under no record's URL is served from the host's record, and only
    username and password are printed."""
    done = _run("get", REPO, _env(held))
    assert (0, "username=alice\npassword=pä ss=w:rd\n", "") == (
        done.returncode,
        done.stdout,
        done.stderr,
    )


def test_get_serves_a_host_record_only_to_its_scheme_and_never_by_name(
    key_daemon: Daemon,
) -> None:
    """A record named ``acme`` kept for https: git asking for a server named ``acme`` (a
    submodule URL, say) or for its host over plain http gets nothing; https on its host does."""
    with key_daemon.client() as client:
        client.set("acme", "s3cret", username="alice", urls=["https://pkgs.example.test/simple/"])
    env = _env(key_daemon)
    for attrs in (
        {"protocol": "http", "host": "acme", "path": "x.git"},
        {"protocol": "https", "host": "acme", "path": "x.git"},
        {"protocol": "http", "host": "poetry-repository-acme", "path": "x.git"},
        {"protocol": "http", "host": "pkgs.example.test", "path": "other.git"},
        {"protocol": "http", "host": "pkgs.example.test:443", "path": "other.git"},
    ):
        done = _run("get", attrs, env)
        assert (0, "", "") == (done.returncode, done.stdout, done.stderr), attrs
    done = _run("get", {"protocol": "https", "host": "pkgs.example.test", "path": "o.git"}, env)
    assert "username=alice\npassword=s3cret\n" == done.stdout


def test_get_speaks_utf8_whatever_the_locale(held: Daemon) -> None:
    """Input and output are UTF-8 bytes even when Python's stdio encoding is Latin-1."""
    done = subprocess.run(
        [str(HELPER), "get"],
        input=_lines({**REPO, "username": "alice"}).encode(),
        capture_output=True,
        env=_env(held, PYTHONIOENCODING="latin-1"),
        check=False,
        timeout=30,
    )
    assert (0, "username=alice\npassword=pä ss=w:rd\n".encode()) == (done.returncode, done.stdout)


def test_get_prints_the_expiry(held: Daemon) -> None:
    """A record with an expiry answers ``password_expiry_utc`` in epoch seconds; a URL under
    a record's URL wins over the host's record."""
    when = int(time.time()) + 3600
    with held.client() as client:
        url = "http://127.0.0.1:8080/org/"
        expires = datetime.fromtimestamp(when, tz=UTC)
        client.set("repo", "tok", username="bob", urls=[url], expires_at=expires)
    done = _run("get", REPO, _env(held))
    assert f"username=bob\npassword=tok\npassword_expiry_utc={when}\n" == done.stdout


def test_get_with_a_newline_in_the_password_prints_nothing(key_daemon: Daemon) -> None:
    """A password git's line format cannot carry is not handed out at all."""
    with key_daemon.client() as client:
        client.set("acme", "two\nlines", username="alice", urls=[INDEX])
    done = _run("get", REPO, _env(key_daemon))
    assert (0, "") == (done.returncode, done.stdout)


def test_get_with_nothing_matching_prints_nothing(held: Daemon) -> None:
    """Another host, another username or another protocol: exit 0, no output."""
    env = _env(held)
    for attrs in (
        {**REPO, "host": "elsewhere.test"},
        {**REPO, "username": "mallory"},
        {**REPO, "protocol": "ssh"},
    ):
        done = _run("get", attrs, env)
        assert (0, "", "") == (done.returncode, done.stdout, done.stderr)


def test_store_creates_then_updates_then_erase_deletes(key_daemon: Daemon) -> None:
    """store makes ``git-HOST`` with git's URL; a second store replaces the password; a store
    of what is held writes nothing; erase with the wrong password keeps it, with the right one
    deletes it."""
    env = _env(key_daemon)
    creds = {**REPO, "username": "bob", "password": "first"}
    assert 0 == _run("store", creds, env).returncode
    with key_daemon.client() as client:
        got = client.get(name="git-127.0.0.1-8080", username="bob")
        assert ("first", ("http://127.0.0.1:8080/org/repo.git",)) == (got.password, got.urls)
        assert 0 == _run("store", {**creds, "password": "second"}, env).returncode
        updated = client.get(name="git-127.0.0.1-8080", username="bob")
        assert "second" == updated.password
        assert 0 == _run("store", {**creds, "password": "second"}, env).returncode
        assert updated.updated_at == client.get(name="git-127.0.0.1-8080").updated_at
        assert "username=bob\npassword=second\n" == _run("get", REPO, env).stdout
        assert "" == _run("erase", {**creds, "password": "first"}, env).stdout
        assert "second" == client.get(name="git-127.0.0.1-8080", username="bob").password
        assert 0 == _run("erase", {**creds, "password": "second"}, env).returncode
        with pytest.raises(NotFoundError):
            client.get(name="git-127.0.0.1-8080")


def test_erase_leaves_the_host_record(held: Daemon) -> None:
    """erase of the index record's own credentials at a repository URL deletes nothing."""
    _run("erase", {**REPO, "username": "alice", "password": "pä ss=w:rd"}, _env(held))
    with held.client() as client:
        assert "pä ss=w:rd" == client.get(name="acme").password


def test_locked_store_prints_nothing_and_says_so(daemon: Daemon) -> None:
    """While the store is locked, get prints nothing on stdout, exits 0 and says why on stderr."""
    with Client(daemon.socket, passphrase_timeout=120) as client:
        client.init("correct horse")
        client.set("acme", "pw", username="alice", urls=[INDEX])
        client.lock()
    done = _run("get", REPO, _env(daemon))
    assert (0, "") == (done.returncode, done.stdout)
    assert "locked" in done.stderr
    assert "pw" not in done.stderr


def test_no_daemon_with_autostart_off_prints_nothing(home: Path) -> None:
    """Nothing listens and HELPERD_AUTOSTART=0: exit 0 with no output at all."""
    env = {**os.environ, "HELPERD_SOCKET": str(home / "none.sock"), "HELPERD_AUTOSTART": "0"}
    done = _run("get", REPO, env)
    assert (0, "", "") == (done.returncode, done.stdout, done.stderr)


def test_untrusted_socket_folder_is_refused(held: Daemon, home: Path) -> None:
    """A socket in a folder others may write is refused before a byte is sent: the reason on
    stderr, nothing on stdout, exit 1."""
    shared = home / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "helperd.sock").symlink_to(held.socket)
    done = _run("get", REPO, _env(held, HELPERD_SOCKET=str(shared / "helperd.sock")))
    assert (1, "") == (done.returncode, done.stdout)
    assert "can be written by group or others" in done.stderr


def test_a_hung_daemon_does_not_hang_git(held: Daemon) -> None:
    """A daemon that accepts but never answers: the helper ends within its timeout, prints
    nothing on stdout and exits 0 (bound: 5x the default client timeout)."""
    os.kill(held.process.pid, signal.SIGSTOP)
    try:
        done = _run("get", REPO, _env(held), timeout=5 * DEFAULT_TIMEOUT)
    finally:
        os.kill(held.process.pid, signal.SIGCONT)
    assert (0, "") == (done.returncode, done.stdout)
    assert "did not answer" in done.stderr


@pytest.fixture
def on_demand(home: Path, key_file: Path) -> Iterator[dict[str, str]]:
    """No daemon up, autostart at its default, the worktree's helperd on PATH."""
    bin_dir = home / "bin"
    bin_dir.mkdir()
    (bin_dir / "helperd").symlink_to(HELPERD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPERD_")}
    env.update(
        HELPERD_HOME=str(home),
        HOME=str(home),
        PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        HELPERD_STORE="file",
        HELPERD_KEY_FILE=str(key_file),
    )
    try:
        yield env
    finally:
        stop_by_pid(home / "helperd.sock")


def test_store_starts_a_daemon_on_demand(on_demand: dict[str, str], home: Path) -> None:
    """With no daemon up, store starts one (as the keyring plugin does) and the password lands."""
    assert not (home / autostart.LOG_NAME).exists()
    done = _run("store", {**REPO, "username": "bob", "password": "pw"}, on_demand)
    assert (0, "", "") == (done.returncode, done.stdout, done.stderr)
    with Client(home / "helperd.sock") as client:
        assert "pw" == client.get(url="http://127.0.0.1:8080/org/repo.git").password
