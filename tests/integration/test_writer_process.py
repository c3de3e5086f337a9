"""The writer process of a key-file store (helperd/daemon/writer.py): a real daemon, its real
child, real connections handed between them, and the ways either of them can end."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helperd_client.errors import HelperdError

from helperd.daemon.writer_link import RETRY_AFTER
from helperd.stores.file_journal import JOURNAL_HEAD
from helperd.testing import Daemon, child_processes, start_daemon

WAIT = 10.0
"""A generous bound for what takes well under a second (a process starting or ending)."""


def _writer_pid(daemon: Daemon, *, other_than: int | None = None) -> int:
    """The daemon's writer process, once it runs (the first set starts it)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for pid in child_processes(daemon.process.pid):
            if pid != other_than and b"helperd.daemon.writer" in _cmdline(pid):
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no writer process within {WAIT} s: {daemon.log.read_text()[-2000:]}")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie counts: it is not the test's to reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + WAIT
    while not _gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs after {WAIT} s"
        time.sleep(0.02)


def _started(daemon: Daemon) -> int:
    """Start the daemon's writer process with a first set; its PID once it serves."""
    with daemon.client() as client:
        client.set("first", "pw-first")
    pid = _writer_pid(daemon)
    deadline = time.monotonic() + WAIT
    while "writes the store" not in daemon.log.read_text():
        assert time.monotonic() < deadline, daemon.log.read_text()[-2000:]
        time.sleep(0.02)
    return pid


def _exchange(path: Path, lines: list[dict[str, object]]) -> list[dict[str, object]]:
    """Send ``lines`` at once on one connection and read one answer per line."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(WAIT)
        sock.connect(str(path))
        sock.sendall(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        data = b""
        while data.count(b"\n") < len(lines):
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {data!r}"
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


@pytest.fixture
def writing_daemon(key_daemon: Daemon) -> Iterator[tuple[Daemon, int]]:
    """A key-file daemon whose writer process runs, and that process's PID; the process ends
    with its daemon."""
    writer = _started(key_daemon)
    yield key_daemon, writer
    key_daemon.stop()
    _wait_gone(writer)


def test_a_set_is_served_by_the_writer_and_a_get_never_waits_for_it(
    writing_daemon: tuple[Daemon, int],
) -> None:
    daemon, writer = writing_daemon
    os.kill(writer, signal.SIGSTOP)
    try:
        with daemon.client(timeout=1.0) as setter, pytest.raises(HelperdError):
            setter.set("stalled", "pw-stalled")  # handed to the stopped writer: no answer
        started = time.monotonic()
        with daemon.client() as reader:
            assert reader.get(name="first").password == "pw-first"
            assert reader.status().pid == daemon.process.pid
        assert time.monotonic() - started < WAIT
    finally:
        os.kill(writer, signal.SIGCONT)
    deadline = time.monotonic() + WAIT
    with daemon.client() as reader:  # the stalled set is served once the writer runs again
        while True:
            try:
                assert reader.get(name="stalled").password == "pw-stalled"
                break
            except HelperdError:
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_every_set_is_seen_at_once_by_a_get_on_another_connection(
    writing_daemon: tuple[Daemon, int],
) -> None:
    daemon, _ = writing_daemon
    with daemon.client() as setter, daemon.client() as reader:
        for count in range(50):
            setter.set("seen", f"pw-{count}", username="u")
            assert reader.get(name="seen").password == f"pw-{count}"


def test_a_handed_connection_is_handed_back_for_any_other_request(
    writing_daemon: tuple[Daemon, int],
) -> None:
    daemon, _ = writing_daemon
    lines: list[dict[str, object]] = [
        {"v": 1, "id": 1, "op": "set", "name": "piped", "password": "pw-1"},
        {"v": 1, "id": 2, "op": "get", "name": "piped"},
        {"v": 1, "id": 3, "op": "set", "name": "piped", "password": "pw-2"},
        {"v": 1, "id": 4, "op": "set", "name": "bad name!", "password": "x"},
        {"v": 1, "id": 5, "op": "list"},
        {"v": 1, "id": 6, "op": "delete", "name": "piped"},
        {"v": 1, "id": 7, "op": "set", "name": "piped", "password": "pw-3"},
        {"v": 1, "id": 8, "op": "status"},
    ]
    answers = _exchange(daemon.socket, lines)
    assert [a["id"] for a in answers] == list(range(1, 9))
    assert [a["ok"] for a in answers] == [True, True, True, False, True, True, True, True]
    assert answers[1]["result"]["password"] == "pw-1"  # type: ignore[index]
    assert answers[3]["error"]["code"] == "bad_request"  # type: ignore[index]
    assert answers[7]["result"]["pid"] == daemon.process.pid  # type: ignore[index]
    with daemon.client() as reader:
        assert reader.get(name="piped").password == "pw-3"


def test_a_killed_writer_loses_no_answered_set_and_another_takes_over(
    writing_daemon: tuple[Daemon, int],
) -> None:
    daemon, writer = writing_daemon
    answered: dict[str, str] = {}
    stop = threading.Event()

    def loop() -> None:
        count = 0
        while not stop.is_set():
            name = f"k{count % 7}"
            try:
                with daemon.client() as client:
                    client.set(name, f"pw-{count}")
                answered[name] = f"pw-{count}"
            except HelperdError:
                pass  # the set the kill cut short: its outcome is unknown, and not counted
            count += 1

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        time.sleep(0.5)
        os.kill(writer, signal.SIGKILL)
        time.sleep(0.5 + RETRY_AFTER)
    finally:
        stop.set()
        thread.join(WAIT)
    assert answered
    _wait_gone(writer)
    with daemon.client() as reader:
        for name, password in answered.items():
            assert reader.get(name=name).password == password
        reader.set("after", "pw-after")
    successor = _writer_pid(daemon, other_than=writer)
    assert "writer process stopped serving" in daemon.log.read_text()
    with daemon.client() as client:
        client.set("later", "pw-later")
    assert daemon.stop() == 0
    _wait_gone(successor)
    again = start_daemon(daemon.home, "--store", "file", env=daemon.env)
    try:
        with again.client() as reader:
            for name, password in {**answered, "later": "pw-later"}.items():
                assert reader.get(name=name).password == password
    finally:
        again.stop()


def test_a_killed_daemon_takes_its_writer_with_it(writing_daemon: tuple[Daemon, int]) -> None:
    daemon, writer = writing_daemon
    with daemon.client() as client:
        client.set("kept", "pw-kept")
    daemon.stop(signal.SIGKILL)
    _wait_gone(writer)
    again = start_daemon(daemon.home, "--store", "file", env=daemon.env)
    try:
        with again.client() as reader:
            assert reader.get(name="kept").password == "pw-kept"
    finally:
        again.stop()


def test_a_stopped_daemon_leaves_the_whole_store_in_its_file(
    writing_daemon: tuple[Daemon, int],
) -> None:
    daemon, writer = writing_daemon
    with daemon.client() as client:
        for count in range(5):
            client.set(f"r{count}", f"pw-{count}")
    journal = daemon.home / "store.enc.journal"
    assert journal.stat().st_size > JOURNAL_HEAD  # the sets went to the journal
    assert daemon.stop() == 0
    _wait_gone(writer)
    assert journal.stat().st_size == JOURNAL_HEAD  # folded into the file by the writer


def test_a_passphrase_store_has_no_writer_process(daemon: Daemon) -> None:
    with daemon.client() as client:
        client.init("a passphrase")
        client.set("one", "pw-one")
        client.set("two", "pw-two")
    time.sleep(0.5)
    assert not [p for p in child_processes(daemon.process.pid) if b"writer" in _cmdline(p)]
