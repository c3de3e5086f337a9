"""Hardening: what helperd survives, measured (issue 6; docs/reliability.md has the figures).

The tests run CI-sized by default and full-sized with ``HELPERD_FULL=1``; `FULL` is the one
place that reads it. This module holds the small shared helpers (sizes, /proc readings,
percentiles, root and fd-limit policy, forking as another user); the fixtures and the figure
report live in conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import secrets
import select
import signal
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helperd_client import Client, DaemonUnreachableError

from helperd.testing import Daemon
from tests.support.tools import in_ci, require_root

__all__ = [
    "FULL",
    "NOBODY",
    "Figure",
    "Figures",
    "Spawn",
    "as_user",
    "cpu_seconds",
    "fd_count",
    "log_tail",
    "machine",
    "percentile",
    "raise_nofile",
    "require_root",
    "rss_kib",
    "sized",
    "stop_process",
    "timeout_for",
    "wait_ready",
    "write_key_file",
]

FULL = os.environ.get("HELPERD_FULL", "").strip().lower() in {"1", "true", "yes"}
"""Full-sized run (``HELPERD_FULL=1``): the sizes docs/reliability.md reports."""

NOBODY = 65534
"""The UID and GID of ``nobody`` on Debian."""

_Size = TypeVar("_Size", int, float)


def sized(ci: _Size, full: _Size) -> _Size:
    """The size of a loop (a count or seconds): ``ci`` by default, ``full`` when FULL."""
    return full if FULL else ci


def timeout_for(ci: float, full: float) -> float:
    """A pytest-timeout value in seconds, sized like `sized`."""
    return full if FULL else ci


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {name}")


def rss_kib(pid: int) -> int:
    """The resident set size of ``pid`` in KiB (``VmRSS`` of /proc/PID/status)."""
    return _status_field(pid, "VmRSS")


def fd_count(pid: int) -> int:
    """How many file descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used, in seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def raise_nofile(needed: int) -> None:
    """Raise this process's soft open-file limit to ``needed`` (at most the hard limit).

    Skips the test (fails it in CI) when the hard limit is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        message = f"needs {needed} open files, the hard limit is {hard} (raise it: ulimit -Hn)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def write_key_file(path: Path) -> Path:
    """Write a fresh 0600 key file (32 random bytes) at ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path


def as_user(
    action: Callable[[], Any], uid: int = NOBODY, gid: int | None = None, timeout: float = 20.0
) -> Any:
    """Run ``action`` in a forked child as ``uid`` and ``gid`` (default: ``uid``).

    Returns what ``action`` returned, through JSON. The child drops every supplementary
    group, sets its GID, then its UID, runs ``action`` and sends back the result or
    ``{"child_error": ...}``; it never returns into the test. The parent waits at most
    ``timeout`` seconds, then kills the child by its PID.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid if gid is None else gid)
            os.setuid(uid)
            payload = json.dumps({"result": action()})
        except BaseException as exc:  # report, never run the parent's code in the child
            payload = json.dumps({"child_error": f"{exc!r}\n{traceback.format_exc()}"})
        try:
            os.write(write_end, payload.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data = _read_all(read_end, time.monotonic() + timeout)
    finally:
        os.close(read_end)
        _reap(pid)
    answer = json.loads(data) if data else {"child_error": "the child sent nothing"}
    if "child_error" in answer:
        raise AssertionError(f"the child running as uid {uid} failed: {answer['child_error']}")
    return answer["result"]


def _read_all(fd: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the forked child did not finish in time")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65_536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # a no-op when it already exited, as it should have
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a subprocess this test started, by its PID: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def wait_ready(daemon: Daemon, timeout: float = 15.0) -> None:
    """Wait until ``daemon`` answers ``hello``; fail with its log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            pytest.fail(f"helperd exited with {daemon.process.returncode}: {log_tail(daemon)}")
        try:
            with Client(daemon.socket, timeout=1.0) as client:
                client.hello()
        except DaemonUnreachableError:
            time.sleep(0.02)
        else:
            return
    daemon.stop()
    pytest.fail(f"helperd did not answer within {timeout} s: {log_tail(daemon)}")


def log_tail(daemon: Daemon, size: int = 3000) -> str:
    """The end of the daemon's log, for failure messages."""
    try:
        return daemon.log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class Figure:
    """One measured value of one test."""

    test: str
    name: str
    value: float | int | str
    unit: str


class Figures:
    """Records a test's figures: ``figures("p99 latency", 1.2, "ms")``."""

    def __init__(self, store: list[Figure], path: Path, test: str) -> None:
        self._store = store
        self._path = path
        self._test = test

    def __call__(self, name: str, value: float | str, unit: str = "") -> None:
        """Record (and print) one figure."""
        if isinstance(value, float):
            value = round(value, 3)
        self._store.append(Figure(self._test, name, value, unit))
        print(f"figure: {name} = {value} {unit}".rstrip())
        document = {"machine": machine(), "full": FULL, "figures": [asdict(f) for f in self._store]}
        self._path.write_text(json.dumps(document, indent=1) + "\n")


def machine() -> dict[str, Any]:
    """The facts about this machine that docs/reliability.md states beside the figures."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


Spawn = Callable[..., Daemon]
"""Starts a key-file daemon in the test's home (the ``spawn`` fixture)."""
