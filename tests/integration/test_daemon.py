"""The real daemon on a real Unix socket: every op, bad frames, lifecycle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helperd_client import BadRequestError, Client, LockedError, NotFoundError
from helperd_client.wire import MAX_LINE

from helperd.testing import Daemon, start_daemon
from tests.integration import wire
from tests.support.tools import require_root

SECRET = "s3cret-Ω\nsecond line"
HELPERCTL = (sys.executable, "-c", "from helperd.ctl.main import main; main()")


def test_every_op_round_trips(key_daemon: Daemon) -> None:
    """hello, status, set, get, list and delete all work against a key-file store."""
    with key_daemon.client() as client:
        hello = client.hello()
        assert ("helperd", 1) == (hello.daemon, hello.protocol)
        assert {"get", "set", "delete", "list", "status"} <= set(hello.ops)

        info = client.set(
            "foo", SECRET, username="alice", urls=["https://pkgs.example.test/simple/"]
        )
        assert ("foo", "alice", "basic") == (info.name, info.username, info.kind)

        by_name = client.get(service="foo")
        by_url = client.get(url="https://pkgs.example.test/simple/privpkg/")
        by_host = client.get(service="pkgs.example.test")
        assert {SECRET} == {by_name.password, by_url.password, by_host.password}
        assert "alice" == by_url.username

        [listed] = client.list()
        assert ("foo", "https://pkgs.example.test/simple/") == (listed.name, listed.url)

        status = client.status()
        assert ("file", False, 1) == (status.store, status.locked, status.repositories)

        assert 1 == client.delete("foo")
        with pytest.raises(NotFoundError):
            client.get(name="foo")


def test_one_connection_carries_many_requests_in_order(key_daemon: Daemon) -> None:
    """Responses come back in order, each with the id of its request."""
    with wire.connect(key_daemon.socket) as sock:
        sock.sendall(b"".join(wire.request("hello", request_id=i) for i in range(5)))
        ids = [wire.read_line(sock)["id"] for _ in range(5)]  # type: ignore[index]
    assert [0, 1, 2, 3, 4] == ids


def test_basic_and_token_records_share_a_name(key_daemon: Daemon) -> None:
    """One name holds a basic and a token record; without a username, basic wins."""
    with key_daemon.client() as client:
        client.set("acme", "basic-pw", username="alice")
        client.set("acme", "token-pw", kind="token")
        assert "basic-pw" == client.get(name="acme").password
        assert "token-pw" == client.get(name="acme", username="__token__").password
        assert (
            "token-pw"
            == client.get(service="poetry-repository-acme", username="__token__").password
        )
        assert 2 == len(client.list())
        assert 1 == client.delete("acme", "__token__")
        assert ["alice"] == [r.username for r in client.list()]


def test_expired_record_is_not_served(key_daemon: Daemon) -> None:
    """A record past its expires_at answers not_found, saying it expired."""
    with key_daemon.client() as client:
        soon = datetime.now(UTC) + timedelta(seconds=1)
        client.set("short", "tok", kind="token", expires_at=soon)
        assert "tok" == client.get(name="short").password
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
        with pytest.raises(NotFoundError, match="expired"):
            client.get(name="short")
        [listed] = client.list()
        assert listed.expired


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuch", "no record for service 'nosuch'"),
        ("https://nowhere.example.test/simple/", "no record matches URL"),
        ("nowhere.example.test", "no record for service 'nowhere.example.test'"),
    ],
)
def test_helperctl_get_of_nothing_says_no_record(
    key_daemon: Daemon, target: str, message: str
) -> None:
    """``helperctl get`` of a name, URL or host that matches nothing exits 4 with a message
    that starts ``no record``."""
    done = subprocess.run(
        [*HELPERCTL, "--socket", str(key_daemon.socket), "get", target],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert 4 == done.returncode, done.stderr
    assert done.stderr.startswith(f"helperctl: {message}"), done.stderr


def test_set_refuses_a_url_with_a_password(key_daemon: Daemon) -> None:
    """A URL carrying a password is refused, and the error does not repeat it."""
    with key_daemon.client() as client, pytest.raises(BadRequestError) as caught:
        client.set("foo", "pw", username="bob", urls=["https://bob:hunter2@pkgs.example.test/"])
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param(b"this is not json\n", "bad_request", id="not-json"),
        pytest.param(b"\xff\xfe\n", "bad_request", id="not-utf8"),
        pytest.param(b"[1, 2]\n", "bad_request", id="not-an-object"),
        pytest.param(wire.request("fly"), "unknown_op", id="unknown-op"),
        pytest.param(b'{"v": 2, "id": 1, "op": "hello"}\n', "unsupported_version", id="v2"),
        pytest.param(b'{"id": 1, "op": "hello"}\n', "unsupported_version", id="no-version"),
        pytest.param(b'{"v": 1, "id": 1, "op": "get", "name": 5}\n', "bad_request", id="int-name"),
        pytest.param(b'{"v": 1, "id": 1, "op": "get"}\n', "bad_request", id="no-target"),
        pytest.param(b'{"v": 1, "id": 1.5, "op": "hello"}\n', "bad_request", id="float-id"),
        pytest.param(
            b'{"v": 1, "id": 1, "op": "set", "name": "x", "password": "p", "bogus": 1}\n',
            "bad_request",
            id="unknown-field",
        ),
    ],
)
def test_bad_frames_get_the_right_code(key_daemon: Daemon, payload: bytes, code: str) -> None:
    """A bad frame is answered with its error code, and the daemon serves the next client."""
    answer = wire.exchange(key_daemon.socket, payload)
    assert answer is not None
    assert (False, code) == (answer["ok"], answer["error"]["code"])
    assert key_daemon.client().hello().protocol == 1


def test_validation_errors_never_quote_the_password(key_daemon: Daemon) -> None:
    """A set with a wrong field type is refused without echoing the password it carried."""
    payload = wire.request("set", name=["x"], password="hunter2-secret", username="u")
    answer = wire.exchange(key_daemon.socket, payload)
    assert answer is not None
    assert "bad_request" == answer["error"]["code"]
    assert "hunter2" not in json.dumps(answer)


def test_line_of_exactly_the_limit_is_read_and_one_more_is_too_large(key_daemon: Daemon) -> None:
    """A 65,536-byte line is parsed (and refused as a bad request); 65,537 bytes is too_large."""
    prefix = b'{"v": 1, "id": 1, "op": "hello", "pad": "'
    suffix = b'"}'
    exact = prefix + b"x" * (MAX_LINE - len(prefix) - len(suffix)) + suffix
    assert MAX_LINE == len(exact)
    assert "bad_request" == wire.exchange(key_daemon.socket, exact + b"\n")["error"]["code"]  # type: ignore[index]
    over = prefix + b"x" * (MAX_LINE + 1 - len(prefix) - len(suffix)) + suffix
    with wire.connect(key_daemon.socket) as sock:
        sock.sendall(over + b"\n")
        answer = wire.read_line(sock)
        assert answer is not None
        assert "too_large" == answer["error"]["code"]
        assert None is wire.read_line(sock), "the connection is closed after too_large"
    assert 1 == key_daemon.client().hello().protocol


def test_sigterm_removes_the_socket_and_exits_zero(key_daemon: Daemon) -> None:
    """SIGTERM: the daemon exits 0 and leaves no socket behind."""
    assert key_daemon.socket.exists()
    assert 0 == key_daemon.stop(signal.SIGTERM)
    assert not key_daemon.socket.exists()


def test_sigterm_closes_open_connections_cleanly(key_daemon: Daemon) -> None:
    """Connections left open at a stop (one idle, one halfway through a line, as a helperctl
    waiting at a prompt leaves them) are closed, and the log holds no traceback."""
    with wire.connect(key_daemon.socket) as idle, wire.connect(key_daemon.socket) as halfway:
        idle.sendall(wire.request("hello"))
        assert wire.read_line(idle) is not None
        halfway.sendall(b'{"op":"he')
        assert 0 == key_daemon.stop(signal.SIGTERM)
        assert None is wire.read_line(idle)
        assert None is wire.read_line(halfway)
    assert "Traceback" not in key_daemon.log.read_text()


def test_restart_keeps_the_data(home: Path, key_daemon: Daemon) -> None:
    """What was stored before a restart is served after it."""
    key_daemon.client().set("keep", SECRET, username="u")
    key_daemon.stop()
    again = start_daemon(
        home, "--store", "file", env={"HELPERD_KEY_FILE": str(home / "helperd.key")}
    )
    try:
        assert SECRET == again.client().get(name="keep").password
    finally:
        again.stop()


def test_second_daemon_on_the_same_home_is_refused(home: Path, key_daemon: Daemon) -> None:
    """A second daemon exits with a clear message and the first keeps serving."""
    key_daemon.client().set("foo", "pw", username="u")
    second = start_daemon(home, "--store", "file", wait=False)
    assert 1 == second.process.wait(15)
    assert "already listening" in second.log.read_text()
    assert "pw" == key_daemon.client().get(name="foo").password


def test_stale_socket_is_replaced(home: Path, key_file: Path) -> None:
    """A socket file left by a killed daemon is removed and the new daemon starts."""
    first = start_daemon(home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)})
    first.stop(signal.SIGKILL)
    assert first.socket.exists()
    second = start_daemon(home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)})
    try:
        assert 1 == second.client().hello().protocol
    finally:
        second.stop()


def test_modes_of_every_file_and_directory(key_daemon: Daemon) -> None:
    """Everything the daemon creates under its home is 0600 (files, socket) or 0700 (dirs)."""
    key_daemon.client().set("foo", SECRET, username="u")
    for path in [key_daemon.home, *key_daemon.home.rglob("*")]:
        if path == key_daemon.log:
            continue  # opened by the test harness, not by the daemon
        mode = path.stat().st_mode & 0o777
        assert (0o700 if path.is_dir() else 0o600) == mode, path


def test_no_secret_in_any_file_or_the_log(key_daemon: Daemon) -> None:
    """The secret appears in no file under the home, the debug log included."""
    needle = "Zq8-unique-secret-value"
    with key_daemon.client() as client:
        client.set("foo", needle, username="u", urls=["https://h.example.test/"])
        client.get(name="foo")
        client.list()
        client.delete("foo")
        client.set("foo", needle, username="u")
    for path in key_daemon.home.rglob("*"):
        if path.is_file():
            assert needle.encode() not in path.read_bytes(), path


def test_idle_connection_does_not_block_others(home: Path, key_file: Path) -> None:
    """A peer sending half a line, then nothing, is cut at the read timeout; others are served."""
    (home / "config.toml").write_text("read_timeout = 1.0\n")
    daemon = start_daemon(home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)})
    try:
        with wire.connect(daemon.socket, timeout=10) as slow:
            slow.sendall(b'{"v": 1, "id": 1, "op": ')
            started = time.monotonic()
            assert 1 == daemon.client().hello().protocol
            assert None is wire.read_line(slow)
            assert time.monotonic() - started < 5 * 1.0
    finally:
        daemon.stop()


def test_connection_cap_closes_the_longest_idle(home: Path, key_file: Path) -> None:
    """At the cap, the longest-idle connection is closed and a new client is served."""
    (home / "config.toml").write_text("max_connections = 3\n")
    daemon = start_daemon(home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)})
    try:
        idle = [wire.connect(daemon.socket) for _ in range(3)]
        for i, sock in enumerate(idle):  # make them all known and ordered by activity
            sock.sendall(wire.request("hello", request_id=i))
            wire.read_line(sock)
        assert 1 == Client(daemon.socket).hello().protocol
        assert None is wire.read_line(idle[0]), "the oldest idle connection was closed"
        for sock in idle:
            sock.close()
    finally:
        daemon.stop()


def test_other_uid_is_forbidden(key_daemon: Daemon) -> None:
    """A peer with another UID is refused with forbidden, even with the modes loosened."""
    require_root("changes to UID nobody")
    os.chmod(key_daemon.home, 0o755)
    os.chmod(key_daemon.socket, 0o666)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, connect, report the answer
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            # The daemon answers before reading anything, then closes: just read.
            with wire.connect(key_daemon.socket) as sock:
                answer = wire.read_line(sock)
            os.write(write_end, json.dumps(answer).encode())
        except BaseException as exc:  # report, never run the parent's code in the child
            os.write(write_end, json.dumps({"child_error": repr(exc)}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert "forbidden" == answer["error"]["code"]


def test_locked_store_reports_exit_code_five(daemon: Daemon) -> None:
    """Before init, a set says which command creates the store."""
    with daemon.client() as client, pytest.raises(LockedError, match="helperctl init"):
        client.set("foo", "pw", username="u")


def test_helperd_home_must_be_exactly_0700(home: Path) -> None:
    """A HELPERD_HOME of 0755 stops the daemon at start: exit 1, naming `chmod 700 PATH`."""
    home.chmod(0o755)
    daemon = start_daemon(home, "--store", "file", wait=False)
    try:
        code = daemon.process.wait(60)
    finally:
        daemon.stop()
    assert 1 == code
    assert f"{home} has mode 0755; HELPERD_HOME must be 0700: run `chmod 700 {home}`" in (
        daemon.log.read_text()
    )
    assert not daemon.socket.exists()


def test_the_daemon_runs_with_umask_077(home: Path, key_file: Path) -> None:
    """Started with umask 022 (a common default), the daemon runs with 0077."""
    previous = os.umask(0o022)
    try:
        daemon = start_daemon(home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)})
    finally:
        os.umask(previous)
    try:
        status = Path(f"/proc/{daemon.process.pid}/status").read_text()
    finally:
        daemon.stop()
    assert "Umask:\t0077" in status.splitlines()
