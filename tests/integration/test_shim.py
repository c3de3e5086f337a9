"""The ``keyring`` shim against a real daemon: byte-for-byte the real CLI's answers, calls
handed on to the real ``keyring`` unchanged, and never a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helperd_client import shim

from helperd.testing import Daemon
from tests.support.tools import require

URL = "http://127.0.0.1:8080/simple/"
REAL_KEYRING = Path(sys.executable).parent / "keyring"
TIMEOUT = 1.0


@pytest.fixture(autouse=True)
def _real_keyring() -> None:
    """The shim is compared with the real keyring CLI, which keyring installs beside it."""
    require(REAL_KEYRING.exists(), f"no keyring CLI at {REAL_KEYRING}")


@pytest.fixture
def records(key_daemon: Daemon) -> Daemon:
    """alice's repository record, a generic entry and a token record, with awkward characters."""
    with key_daemon.client() as client:
        client.set("acme", "pä ss:\"w'ord", username="alice", urls=[URL])
        client.set("tool-x", "gen-secret", username="bob", kind="generic")
    return key_daemon


def _env(daemon: Daemon, path: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(daemon.env)
    env.update({"HELPERD_SOCKET": str(daemon.socket), "HELPERD_TIMEOUT": str(TIMEOUT)})
    env["PATH"] = path if path is not None else str(REAL_KEYRING.parent)
    env.pop("PYTHON_KEYRING_BACKEND", None)
    env.pop(shim.RECURSION_ENV, None)
    env.update(extra)
    return env


def _shim(
    args: list[str], env: dict[str, str], stdin: str = "", timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-I", "-m", "helperd_client.shim", *args],
        check=False,
        input=stdin.encode(),
        capture_output=True,
        env=env,
        timeout=timeout,
    )


def _real(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(REAL_KEYRING), *args], check=False, input=b"", capture_output=True, env=env, timeout=60
    )


SERVED = [
    ["get", URL, "alice"],
    ["get", URL, "--mode", "creds"],
    ["get", URL, "alice", "--mode", "creds"],
    ["--mode=creds", "--output=json", "get", URL],
    ["--mode=creds", "--output=json", "get", URL, "alice"],
    ["get", "127.0.0.1:8080", "alice"],
    ["get", "acme", "alice"],
    ["get", "tool-x", "bob"],
    ["--mode=creds", "--output=json", "get", "tool-x"],
    # not found, in every form
    ["get", URL, "mallory"],
    ["get", "http://nowhere.test/simple/", "--mode", "creds"],
    ["--mode=creds", "--output=json", "get", "http://nowhere.test/simple/"],
    ["get", "python-poetry-check", "python-poetry"],
    ["get", "poetry-repository-acme", "__poetry_source_empty_username__"],
]


@pytest.mark.parametrize("args", SERVED, ids=" ".join)
def test_shim_matches_the_real_cli_byte_for_byte(records: Daemon, args: list[str]) -> None:
    """For every served form, found or not, stdout and the exit status equal the real CLI's."""
    env = _env(records)
    mine, theirs = _shim(args, env), _real(args, env)
    assert (theirs.returncode, theirs.stdout) == (mine.returncode, mine.stdout), theirs.stderr
    assert b"" == mine.stderr


def test_served_answers_come_from_helperd_without_the_real_cli(records: Daemon) -> None:
    """With no real keyring on PATH at all, served forms still answer (the daemon did it)."""
    env = _env(records, path="/nonexistent")
    done = _shim(["get", URL, "--mode", "creds"], env)
    assert (0, "alice\npä ss:\"w'ord\n".encode()) == (done.returncode, done.stdout)


def test_locked_store_is_not_found_with_the_hint(daemon: Daemon) -> None:
    """A locked store answers exit 1 at once, with the plugin's hint on stderr, as the real CLI."""
    with daemon.client() as client:
        client.init("correct horse battery staple")
        client.set("acme", "pw", username="alice", urls=[URL])
        client.lock()
    env = _env(daemon)
    mine, theirs = _shim(["get", URL, "alice"], env), _real(["get", URL, "alice"], env)
    assert (1, b"") == (mine.returncode, mine.stdout)
    assert (theirs.returncode, theirs.stdout) == (mine.returncode, mine.stdout)
    assert b"helperctl unlock" in mine.stderr


# --- pass-through ------------------------------------------------------------------------------


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """A folder holding a stand-in ``keyring`` that logs its argv and stdin and exits 7."""
    folder = tmp_path / "real"
    folder.mkdir()
    script = folder / "keyring"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{folder}/argv"\n'
        f'/bin/cat > "{folder}/stdin"\n'
        'printf "forwarded=%s\\n" "$HELPERD_KEYRING_SHIM_FORWARDED"\n'
        "exit 7\n"
    )
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ["set", "svc", "user"],
        ["del", "svc", "user"],
        ["--help"],
        ["-b", "keyring.backends.null.Keyring", "get", "svc", "user"],
    ],
)
def test_other_calls_go_to_the_real_keyring_unchanged(
    records: Daemon, stand_in: Path, tmp_path: Path, args: list[str]
) -> None:
    """``set``, ``del`` and everything else reach the real keyring with argv, stdin and status."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    (shim_dir / "keyring").write_text(f"#!/bin/sh\n{shim.MARKER}\n")  # another shim: skipped
    (shim_dir / "keyring").chmod(0o755)
    env = _env(records, path=os.pathsep.join([str(shim_dir), str(stand_in)]))
    done = _shim(args, env, stdin="the-new-password\n")
    assert 7 == done.returncode, done.stderr
    assert b"forwarded=1\n" == done.stdout
    assert args == (stand_in / "argv").read_text().splitlines()
    assert "the-new-password\n" == (stand_in / "stdin").read_text()


def test_set_and_del_through_the_real_keyring_cli(records: Daemon) -> None:
    """With the real CLI behind it, ``set`` (password on stdin) and ``del`` work through helperd."""
    env = _env(records)
    done = _shim(["set", "tool-y", "carol"], env, stdin="y-secret\n")
    assert 0 == done.returncode, done.stderr
    got = _shim(["get", "tool-y", "carol"], env)
    assert (0, b"y-secret\n") == (got.returncode, got.stdout)
    gone = _shim(["del", "tool-y", "carol"], env)
    assert 0 == gone.returncode, gone.stderr
    assert 1 == _shim(["get", "tool-y", "carol"], env).returncode


def test_down_daemon_hands_the_get_to_the_real_keyring(records: Daemon, stand_in: Path) -> None:
    """With nothing listening on the socket, a served form goes to the real keyring."""
    env = _env(records, path=str(stand_in), HELPERD_SOCKET=str(records.home / "nothing.sock"))
    done = _shim(["get", URL, "alice"], env)
    assert 7 == done.returncode, done.stderr
    assert ["get", URL, "alice"] == (stand_in / "argv").read_text().splitlines()


def test_hung_daemon_does_not_hang_the_shim(records: Daemon) -> None:
    """A daemon that accepts and never answers: the shim gives up within 5x its timeout.

    The real keyring behind it (the plugin) waits one more timeout and finds nothing.
    """
    env = _env(records)
    os.kill(records.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = _shim(["get", URL, "alice"], env, timeout=30)
        seconds = time.monotonic() - started
    finally:
        os.kill(records.process.pid, signal.SIGCONT)
    assert 1 == done.returncode, done.stderr
    assert b"" == done.stdout
    assert seconds < 5 * TIMEOUT + 3, seconds  # + interpreter and keyring start-up


def test_hung_daemon_with_nothing_behind_is_bounded(records: Daemon) -> None:
    """With no real keyring behind it, a hung daemon costs one timeout and a clear error."""
    env = _env(records, path="/nonexistent")
    os.kill(records.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = _shim(["--mode=creds", "--output=json", "get", URL], env, timeout=30)
        seconds = time.monotonic() - started
    finally:
        os.kill(records.process.pid, signal.SIGCONT)
    assert shim.NO_KEYRING == done.returncode
    assert b"no real `keyring` found" in done.stderr
    assert seconds < 5 * TIMEOUT, seconds
