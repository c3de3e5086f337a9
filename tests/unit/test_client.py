"""The client library against raw sockets: every call is bounded, errors are typed."""

from __future__ import annotations

import fcntl
import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helperd_client import (
    Client,
    Credential,
    DaemonUnreachableError,
    NotFoundError,
    ProtocolMismatchError,
)

from tests.support.tools import require


@pytest.fixture
def listener(home: Path) -> Iterator[socket.socket]:
    """A Unix socket that accepts connections but never answers (a hung daemon)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(home / "hung.sock"))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


def serve_once(sock: socket.socket, answer: dict[str, object]) -> threading.Thread:
    """Answer one request on ``sock`` with ``answer`` (its id copied from the request)."""

    def run() -> None:
        conn, _ = sock.accept()
        with conn:
            request = json.loads(conn.recv(65_536))
            conn.sendall(json.dumps({"id": request["id"], **answer}).encode() + b"\n")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_missing_socket_is_unreachable_at_once(home: Path) -> None:
    """No socket: DaemonUnreachableError right away, naming how to start the daemon."""
    started = time.monotonic()
    with pytest.raises(DaemonUnreachableError, match="start it with") as caught:
        Client(home / "none.sock", timeout=2).hello()
    assert time.monotonic() - started < 1
    assert 3 == caught.value.exit_code


def test_stale_socket_is_unreachable_at_once(home: Path) -> None:
    """A socket file nobody listens on: connection refused, reported as unreachable."""
    path = home / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    with pytest.raises(DaemonUnreachableError, match="not running"):
        Client(path, timeout=2).status()


def test_hung_daemon_times_out(home: Path, listener: socket.socket) -> None:
    """A daemon that accepts and never answers ends the call at the read timeout."""
    timeout = 0.3
    started = time.monotonic()
    with pytest.raises(DaemonUnreachableError, match="did not answer"):
        Client(home / "hung.sock", timeout=timeout).get(name="foo")
    assert time.monotonic() - started < 5 * timeout


def test_newer_daemon_is_named_plainly(home: Path, listener: socket.socket) -> None:
    """A response in another protocol version raises ProtocolMismatchError saying so."""
    thread = serve_once(listener, {"v": 2, "ok": True, "result": {}})
    with Client(home / "hung.sock") as client, pytest.raises(ProtocolMismatchError, match="v2"):
        client.hello()
    thread.join(5)


def test_wire_error_becomes_its_class(home: Path, listener: socket.socket) -> None:
    """An error response is raised as the class of its code, with the daemon's message."""
    error = {"code": "not_found", "message": "no record named 'x'"}
    thread = serve_once(listener, {"v": 1, "ok": False, "error": error})
    with (
        Client(home / "hung.sock") as client,
        pytest.raises(NotFoundError, match="no record named 'x'") as caught,
    ):
        client.get(name="x")
    assert 4 == caught.value.exit_code
    thread.join(5)


def test_credential_repr_hides_the_password() -> None:
    """A Credential's repr shows everything but the password."""
    cred = Credential("foo", "alice", "hunter2", "basic", (), None, None, None)
    assert "hunter2" not in repr(cred)
    assert "alice" in repr(cred)


# --- the kept connection -------------------------------------------------------------------


def _hello(request_id: object) -> bytes:
    result = {"daemon": "helperd", "protocol": 1, "version": "0", "ops": []}
    return json.dumps({"v": 1, "id": request_id, "ok": True, "result": result}).encode() + b"\n"


def serve_connections(sock: socket.socket, script: list[int]) -> tuple[threading.Thread, list[int]]:
    """Accept one connection per entry of ``script`` and answer that many hellos on it, then
    read one more request and close without answering (a daemon closing an idle connection
    just as a request arrives). Returns the thread and the requests read per connection."""
    seen: list[int] = []

    def run() -> None:
        for answers in script:
            conn, _ = sock.accept()
            with conn, conn.makefile("rb") as lines:
                count = 0
                for line in lines:
                    count += 1
                    if count > answers:
                        break  # read, and closed unanswered
                    conn.sendall(_hello(json.loads(line)["id"]))
                seen.append(count)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, seen


def test_a_kept_connection_closed_as_a_request_arrives_is_replaced(
    home: Path, listener: socket.socket
) -> None:
    """When the daemon closes a kept connection without answering, the request goes once more
    on a new connection, and the caller sees only the answer."""
    thread, seen = serve_connections(listener, [1, 1])
    with Client(home / "hung.sock", timeout=2) as client:
        assert 1 == client.hello().protocol
        assert 1 == client.hello().protocol  # the first connection drops this one unanswered
    thread.join(5)
    assert [2, 1] == seen


def test_a_fresh_connection_closed_unanswered_is_not_retried(
    home: Path, listener: socket.socket
) -> None:
    """On a connection just opened, a close without an answer is an error, not a retry: the
    daemon may have read the request."""
    thread, seen = serve_connections(listener, [0])
    with (
        Client(home / "hung.sock", timeout=2) as client,
        pytest.raises(DaemonUnreachableError, match="closed the connection without answering"),
    ):
        client.hello()
    thread.join(5)
    assert [1] == seen


def test_a_kept_connection_the_daemon_closed_is_not_used(
    home: Path, listener: socket.socket
) -> None:
    """A kept connection that the daemon closed while idle is noticed before sending."""
    thread, seen = serve_connections(listener, [1, 1])
    with Client(home / "hung.sock", timeout=2) as client:
        assert 1 == client.hello().protocol
        kept = client._sock
        assert kept is not None
        kept.shutdown(socket.SHUT_RD)  # as if the peer had closed: it polls readable
        assert 1 == client.hello().protocol
        assert client._sock is not kept
    thread.join(5)
    assert [1, 1] == seen


def test_a_kept_connection_on_a_high_descriptor_is_reused(
    home: Path, listener: socket.socket
) -> None:
    """A kept connection numbered above 1,023 (a process with many files open) is still
    reused: the check for a closed connection uses poll, not select, which fails there."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    require(
        hard == resource.RLIM_INFINITY or hard > 1100,
        f"the open-file hard limit is {hard}: descriptors above 1,023 need more",
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1101), hard))
    try:
        thread, seen = serve_connections(listener, [2])
        with Client(home / "hung.sock", timeout=2) as client:
            assert 1 == client.hello().protocol
            low = client._sock
            assert low is not None
            client._sock = socket.socket(fileno=fcntl.fcntl(low.fileno(), fcntl.F_DUPFD, 1100))
            low.close()
            assert 1 == client.hello().protocol
            assert client._sock is not None
            assert client._sock.fileno() >= 1100, "the same, high connection was reused"
        thread.join(5)
        assert [2] == seen
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_status_of_a_daemon_older_than_the_gate_fields(home: Path, listener: socket.socket) -> None:
    """A status answer without kdf_runs, passphrase_retry_in and memory_locked still parses."""
    old = {
        "version": "0.1.0",
        "protocol": 1,
        "pid": 42,
        "store": "file",
        "store_reason": "r",
        "initialized": True,
        "locked": True,
        "lockable": True,
        "repositories": None,
        "records": None,
        "idle_lock_seconds": 900.0,
    }
    thread = serve_once(listener, {"v": 1, "ok": True, "result": old})
    status = Client(home / "hung.sock", timeout=2).status()
    thread.join(5)
    assert (0, 0.0, False) == (status.kdf_runs, status.passphrase_retry_in, status.memory_locked)
