"""Item 5b: `get` beside a writer, at 10, 1,000 and 10,000 repositories.

For each size, a daemon on a key-file store of that size (`bench.store`) answers ``get``
by Poetry's service over one kept connection, back to back, while a second process loops
``set`` on its own connection (each one appends to the store's journal and fsyncs it). The
writer is stopped (SIGSTOP) and let go (SIGCONT) in turns, so that quiet and busy windows
alternate, many short ones, and the machine's drift falls on both alike; the report gives the
busy p50 and p99 as ratios to the quiet ones (goal: p50 at most 1.2x, p99 at most 3x). The
daemon's writer process serves those sets (`helperd.daemon.writer`), started by a first set
before anything is measured.

The getter and the measured daemon's event loop share one CPU while they are measured, as in
item 1 (`bench.process.pinned`), and the getter asks again as soon as it has an answer; the
writer and everything else are left to the kernel (the other CPU, here). Left to the kernel,
this machine's two virtual CPUs put the getter and the loop on one CPU or two at random, and
a getter that pauses between gets measures how fast an idle virtual CPU wakes: both moved
the ratios by more than anything helperd does with a set (docs/performance.md gives the
figures).

The looping writer sets as fast as helperd answers, so a faster `set` means more of them
beside each get. Four more rows keep that apart: the same writer paced at `PACED` sets a
second; a client looping ``hello`` (busy, writing nothing); the same looping writer served by a
second daemon on a store of its own, so that the measured daemon shares nothing with it but the
machine; and the floor of a durable writer, a bare server that appends and fsyncs each line a
client loops, with no helperd in it: what the machine itself costs the gets.

For the looping writer, the CPU time (the scheduler's count of every thread's, from /proc) of
the measured daemon and of its writer process is read over the busy and the quiet windows.
The writer process's difference, divided by the sets, is what each set costs it; the
daemon's, less the gets of the busy windows at their quiet cost, is what each set costs the daemon.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.process import DEFAULT_INSTALL, helperd_daemon, new_key_file, pinned
from bench.stats import ratio, summarize
from bench.store import Layout, build_store
from helperd.testing import child_processes, daemon_env

__all__ = ["beside_writer"]

# Loops `set` on its own connection until stdin closes, then prints how many it made; with a
# second argument, starts one set every that many seconds at most (never catching up after a
# SIGSTOP).
WRITER = """
import select, sys, time
from helperd_client import Client
client = Client(sys.argv[1], timeout=60)
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
count = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    started = time.monotonic()
    client.set("bench-written", f"pw-{count}", username="w")
    count += 1
    if interval:
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
print(count)
"""

PACED = 200
"""Sets a second of the paced writer: more than any packaging tool makes, and about what a
looping writer managed at 10,000 records when each `set` wrote the whole file."""

# Loops `hello` the same way: another busy client, which writes nothing.
HELLO = WRITER.replace('client.set("bench-written", f"pw-{count}", username="w")', "client.hello()")

# The floor of a durable writer: no helperd at all. A bare server (a blocking loop on a Unix
# socket) appends each line it gets to a file, fsyncs it and answers; this client, started
# like the others, starts it (its paths from the second argument) and loops `set`-sized lines.
BARE_SERVER = """
import os, socket, sys
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen()
print("up", flush=True)
conn, _ = listener.accept()
pending = b""
while data := conn.recv(65_536):
    pending += data
    while b"\\n" in pending:
        line, pending = pending.split(b"\\n", 1)
        os.write(fd, line + b"\\n")
        os.fsync(fd)
        conn.sendall(b'{"ok":true}\\n')
"""
BARE = f"""
import select, socket, subprocess, sys
server = subprocess.Popen(
    [sys.executable, "-c", {BARE_SERVER!r}, *(sys.argv[2] + end for end in (".sock", ".journal"))],
    stdout=subprocess.PIPE,
)
count = 0
try:
    server.stdout.readline()
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(60)
    client.connect(sys.argv[2] + ".sock")
    line = b'{{"v":1,"id":1,"op":"set","name":"bench-written","password":"pw-%d"}}\\n'
    while not select.select([sys.stdin], [], [], 0)[0]:
        client.sendall(line % count)
        answer = b""
        while not answer.endswith(b"\\n"):
            answer += client.recv(65_536)
        count += 1
    client.close()
    server.wait(60)
finally:
    if server.poll() is None:  # this client failed, or the server did not stop: stop it
        server.kill()
        server.wait()
print(count)
"""


SETTLE = 0.02
"""Seconds between stopping the writer and the quiet window: the set it had sent is done."""


def _window(sock: socket.socket, request: bytes, seconds: float, into: list[float]) -> None:
    """Time gets back to back for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        sock.sendall(request)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(65_536)
            if not chunk:
                raise RuntimeError("helperd closed the connection")
            answer += chunk
        into.append((time.perf_counter() - started) * 1e6)
        if b'"ok":true' not in answer:
            raise RuntimeError("a get failed beside the writer")


def _cpu_seconds(pid: int) -> float:
    """The CPU time every thread of process ``pid`` has run so far, in nanoseconds counted by
    the scheduler (/proc/PID/task/TID/schedstat; /proc/PID/stat counts 10 ms ticks, too coarse
    for a window); 0 for one that has ended."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except OSError:  # the thread ended meanwhile
            continue
    return total / 1e9


def _children_cpu(pid: int) -> float:
    """The CPU time the running children of process ``pid`` (its writer process) have used so
    far; a child of any of its threads counts (the writer is started from a worker thread)."""
    return sum(_cpu_seconds(child) for child in child_processes(pid))


def _cpu_pair(pid: int) -> tuple[float, float]:
    """The CPU time process ``pid`` and its children have used so far."""
    return _cpu_seconds(pid), _children_cpu(pid)


@dataclass
class _Beside:
    """Gets alone and beside a process, that process's requests, and the measured daemon's CPU
    time over the windows with it and without."""

    quiet: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    requests: int = 0
    quiet_cpu: float = 0.0
    busy_cpu: float = 0.0
    quiet_child_cpu: float = 0.0
    busy_child_cpu: float = 0.0

    def as_row(self, kind: str) -> dict[str, Any]:
        """This neighbour's fields of a size's row, named ``{kind}_...``."""
        quiet, busy = summarize(self.quiet), summarize(self.busy)
        per = max(self.requests, 1)
        # Not clamped at 0: a neighbour that never reaches the measured daemon (the second
        # helperd, the bare server) reads about 0 either side, which is this figure's noise.
        gets_cost = self.quiet_cpu / max(len(self.quiet), 1) * len(self.busy)
        cpu = (self.busy_cpu - gets_cost) / per
        child_cpu = (self.busy_child_cpu - self.quiet_child_cpu) / per
        return {
            f"{kind}_sets": self.requests,
            f"{kind}_p50_ratio": ratio(busy.p50, quiet.p50),
            f"{kind}_p99_ratio": ratio(busy.p99, quiet.p99),
            f"{kind}_cpu_us": cpu * 1e6,
            f"{kind}_writer_cpu_us": child_cpu * 1e6,
        }


def _beside(
    sock: socket.socket,
    request: bytes,
    code: str,
    *,
    home: Path,
    daemon_socket: Path,
    measured: int,
    rounds: int,
    window: float,
    extra: tuple[str, ...] = (),
) -> _Beside:
    """Gets alone and beside a process running ``code`` (given ``extra`` arguments after the
    socket), in alternating windows; how many requests that process made, and the CPU time
    the measured daemon (PID ``measured``) and its writer process used in each kind of
    window. This thread and the daemon's event loop share `bench.process.PINNED_CPU` while
    the windows run; the process, started before, is not pinned."""
    found = _Beside()
    writer = subprocess.Popen(
        [sys.executable, "-c", code, str(daemon_socket), *extra],
        env=daemon_env(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)
        with pinned(threading.get_native_id()), pinned(measured):
            _alternate(
                found,
                writer,
                sock=sock,
                request=request,
                measured=measured,
                rounds=rounds,
                window=window,
            )
    finally:
        writer.send_signal(signal.SIGCONT)
        out, _ = writer.communicate("", timeout=120)
    found.requests = int(out or 0)
    return found


def _alternate(
    found: _Beside,
    writer: subprocess.Popen[str],
    *,
    sock: socket.socket,
    request: bytes,
    measured: int,
    rounds: int,
    window: float,
) -> None:
    """``rounds`` of a window beside ``writer`` and one with it stopped, into ``found``."""
    for _ in range(rounds):
        own, children = _cpu_pair(measured)
        _window(sock, request, window, found.busy)
        now_own, now_children = _cpu_pair(measured)
        found.busy_cpu += now_own - own
        found.busy_child_cpu += max(0.0, now_children - children)  # a writer just started
        writer.send_signal(signal.SIGSTOP)
        time.sleep(SETTLE)
        own, children = _cpu_pair(measured)
        _window(sock, request, window, found.quiet)
        now_own, now_children = _cpu_pair(measured)
        found.quiet_cpu += now_own - own
        found.quiet_child_cpu += max(0.0, now_children - children)
        writer.send_signal(signal.SIGCONT)


def _start_writer_process(daemon_socket: Path, pid: int, *, required: bool = True) -> bool:
    """Start the daemon's writer process with a first set, and wait until it runs, so that
    every window measures it running; tell whether it does. A daemon of another checkout
    (``required`` false) may have none: it is given 5 s."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(60)
        sock.connect(str(daemon_socket))
        sock.sendall(b'{"v":1,"id":1,"op":"set","name":"bench-first","password":"pw"}\n')
        answer = b""
        while not answer.endswith(b"\n"):
            answer += sock.recv(65_536)
    deadline = time.monotonic() + (30 if required else 5)
    while not child_processes(pid):
        if time.monotonic() > deadline:
            if required:
                raise RuntimeError("the daemon's writer process did not start")
            return False
        time.sleep(0.05)
    time.sleep(1.0)  # it opens and indexes the store
    return True


def _store(layout: Layout, workdir: Path, name: str) -> tuple[Path, Path]:
    """A home holding a key-file store of ``layout``'s size, and its key file."""
    home = workdir / name
    home.mkdir(mode=0o700)
    key = new_key_file(workdir / f"{name}.key")
    build_store(home / "store.enc", layout, key_file=key)
    return home, key


def _one_size(
    size: int, workdir: Path, rounds: int, window: float, daemon_source: Path | None
) -> dict[str, Any]:
    layout = Layout(size)
    env = None
    if daemon_source is not None:
        # Its helperd first, then the default install's path (no uvloop); and not the current
        # folder, which `python -m` would put before them (this checkout's helperd, say).
        paths = (str(daemon_source.resolve()), DEFAULT_INSTALL["PYTHONPATH"])
        env = {"PYTHONPATH": os.pathsep.join(paths), "PYTHONSAFEPATH": "1"}
    home, key = _store(layout, workdir, f"w{size}")
    other_home, other_key = _store(layout, workdir, f"w{size}-other")
    request = layout.service_request()
    with (
        helperd_daemon(home, key, env=env) as daemon,
        helperd_daemon(other_home, other_key, env=env) as other,
        socket.socket(socket.AF_UNIX) as sock,
    ):
        sock.settimeout(60)
        sock.connect(str(daemon.socket))
        _window(sock, request, 0.3, [])  # the key-file store opens on the first get
        has_writer = _start_writer_process(
            daemon.socket, daemon.process.pid, required=daemon_source is None
        )
        beside = functools.partial(
            _beside,
            sock,
            request,
            home=home,
            daemon_socket=daemon.socket,
            measured=daemon.process.pid,
            rounds=rounds,
            window=window,
        )
        writer = beside(WRITER)
        neighbours = {
            "paced": beside(WRITER, extra=(str(1 / PACED),)),
            "hello": beside(HELLO),
            "apart": beside(WRITER, home=other_home, daemon_socket=other.socket),
            "bare": beside(BARE, extra=(str(workdir / f"bare-{size}"),)),
        }
    quiet, busy = summarize(writer.quiet), summarize(writer.busy)
    row: dict[str, Any] = {
        "size": size,
        "quiet_us": quiet.as_dict(),
        "busy_us": busy.as_dict(),
        "p50_ratio": ratio(busy.p50, quiet.p50),
        "p99_ratio": ratio(busy.p99, quiet.p99),
        "sets": writer.requests,
        "cpu_us": writer.as_row("writer")["writer_cpu_us"],
        "writer_process_cpu_us": writer.as_row("writer")["writer_writer_cpu_us"],
        "paced_per_second": PACED,
        "writer_process": has_writer,
    }
    for kind, found in neighbours.items():
        row.update(found.as_row(kind))
    return row


def beside_writer(
    sizes: tuple[int, ...],
    workdir: Path,
    rounds: int,
    window: float,
    *,
    daemon_source: Path | None = None,
) -> dict[str, Any]:
    """Get latency beside a looping writer, per store size, as ratios to the quiet figures;
    with ``daemon_source``, of the daemons of that checkout (its ``helperd`` package first on
    their PYTHONPATH)."""
    return {
        "rounds": rounds,
        "window_seconds": window,
        "rows": [_one_size(size, workdir, rounds, window, daemon_source) for size in sizes],
    }
