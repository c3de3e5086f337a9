"""Item 5b: `get` beside a writer, at 10, 1,000 and 10,000 repositories.

For each size, a daemon on a key-file store of that size (`bench.store`) answers ``get``
by Poetry's service over one kept connection, while a second process loops ``set`` on its
own connection (each one appends to the store's journal and fsyncs it). The writer is stopped
(SIGSTOP) and let go (SIGCONT) in turns, so that quiet and busy windows alternate and the
machine's own noise falls on both alike; the report gives the busy p50 and p99 as ratios to
the quiet ones (goal: p50 at most 1.2x, p99 at most 3x).

The looping writer sets as fast as the daemon answers, so a faster `set` means more of them
beside each get. Six more rows keep that apart: the same writer paced at `PACED` sets a
second; a client looping ``hello`` (busy, writing nothing); the same looping writer served
by a second daemon on a store of its own, so that the measured daemon shares nothing with it
but the machine: what would be left were writes served by a process apart from reads; the
floor of a durable writer, a bare server that appends and fsyncs each line a client loops,
with no helperd in it: what the machine itself costs the gets; and the same bare server
handing each append and fsync to a thread of its own and waiting for it, as helperd's event
loop hands a `set` to a worker: what that hand-over alone costs them; and the bare server
fsyncing itself, then telling the measured daemon (a `hello`) before it answers: a writer
process apart that lets the daemon know of each write.
"""

from __future__ import annotations

import functools
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.process import helperd_daemon, new_key_file
from bench.stats import ratio, summarize
from bench.store import Layout, build_store
from helperd.testing import daemon_env

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
# The third argument is "itself", "thread" or "tell": with "thread", the server hands each line
# to a thread that appends and fsyncs it, and waits for that thread before it answers; with
# "tell", after each fsync it tells the measured daemon (a `hello` on a kept connection) and
# waits for its answer before it answers: a writer process apart that lets the daemon know.
BARE_SERVER = """
import os, queue, socket, sys, threading
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

def append(line):
    os.write(fd, line + b"\\n")
    os.fsync(fd)

if sys.argv[3] == "thread":
    lines, appended = queue.SimpleQueue(), queue.SimpleQueue()

    def worker():
        while True:
            append(lines.get())
            appended.put(True)

    threading.Thread(target=worker, daemon=True).start()

    def durable(line):
        lines.put(line)
        appended.get()
elif sys.argv[3] == "tell":
    daemon = socket.socket(socket.AF_UNIX)
    daemon.settimeout(60)
    daemon.connect(sys.argv[4])

    def durable(line):
        append(line)
        daemon.sendall(b'{"v":1,"id":1,"op":"hello"}\\n')
        answer = b""
        while not answer.endswith(b"\\n"):
            answer += daemon.recv(65_536)
else:
    durable = append

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
        durable(line)
        conn.sendall(b'{"ok":true}\\n')
"""
BARE = f"""
import select, socket, subprocess, sys
server = subprocess.Popen(
    [sys.executable, "-c", {BARE_SERVER!r}, *(sys.argv[2] + end for end in (".sock", ".journal"))]
    + sys.argv[3:]
    + sys.argv[1:2],
    stdout=subprocess.PIPE,
)
server.stdout.readline()
client = socket.socket(socket.AF_UNIX)
client.settimeout(60)
client.connect(sys.argv[2] + ".sock")
line = b'{{"v":1,"id":1,"op":"set","name":"bench-written","password":"pw-%d"}}\\n'
count = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    client.sendall(line % count)
    answer = b""
    while not answer.endswith(b"\\n"):
        answer += client.recv(65_536)
    count += 1
client.close()
server.wait(60)
print(count)
"""


def _window(sock: socket.socket, request: bytes, seconds: float, into: list[float]) -> None:
    """Time gets one after another for ``seconds``, a short pause between them."""
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
        time.sleep(0.001)


def _beside(
    sock: socket.socket,
    request: bytes,
    code: str,
    *,
    home: Path,
    daemon_socket: Path,
    rounds: int,
    window: float,
    extra: tuple[str, ...] = (),
) -> tuple[list[float], list[float], int]:
    """Gets alone and beside a process running ``code`` (given ``extra`` arguments after the
    socket), in alternating windows; and how many requests that process made."""
    quiet: list[float] = []
    busy: list[float] = []
    writer = subprocess.Popen(
        [sys.executable, "-c", code, str(daemon_socket), *extra],
        env=daemon_env(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)
        for _ in range(rounds):
            _window(sock, request, window, busy)
            writer.send_signal(signal.SIGSTOP)
            time.sleep(0.1)  # the request it had sent is done
            _window(sock, request, window, quiet)
            writer.send_signal(signal.SIGCONT)
    finally:
        writer.send_signal(signal.SIGCONT)
        out, _ = writer.communicate("", timeout=120)
    return quiet, busy, int(out or 0)


def _store(layout: Layout, workdir: Path, name: str) -> tuple[Path, Path]:
    """A home holding a key-file store of ``layout``'s size, and its key file."""
    home = workdir / name
    home.mkdir(mode=0o700)
    key = new_key_file(workdir / f"{name}.key")
    build_store(home / "store.enc", layout, key_file=key)
    return home, key


def _one_size(size: int, workdir: Path, rounds: int, window: float) -> dict[str, Any]:
    layout = Layout(size)
    home, key = _store(layout, workdir, f"w{size}")
    other_home, other_key = _store(layout, workdir, f"w{size}-other")
    request = layout.service_request()
    with (
        helperd_daemon(home, key) as daemon,
        helperd_daemon(other_home, other_key) as other,
        socket.socket(socket.AF_UNIX) as sock,
    ):
        sock.settimeout(60)
        sock.connect(str(daemon.socket))
        _window(sock, request, 0.3, [])  # the key-file store opens on the first get
        beside = functools.partial(
            _beside,
            sock,
            request,
            home=home,
            daemon_socket=daemon.socket,
            rounds=rounds,
            window=window,
        )
        quiet, busy, sets = beside(WRITER)
        calm, paced, paced_sets = beside(WRITER, extra=(str(1 / PACED),))
        alone, hellos, _ = beside(HELLO)
        apart_quiet, apart, apart_sets = beside(WRITER, home=other_home, daemon_socket=other.socket)
        still, bare, bare_sets = beside(BARE, extra=(str(workdir / f"bare-{size}"), "itself"))
        unhanded, handed, handed_sets = beside(
            BARE, extra=(str(workdir / f"handed-{size}"), "thread")
        )
        untold, told, told_sets = beside(BARE, extra=(str(workdir / f"told-{size}"), "tell"))
    quiet_s, busy_s = summarize(quiet), summarize(busy)
    calm_s, paced_s = summarize(calm), summarize(paced)
    alone_s, hello_s = summarize(alone), summarize(hellos)
    apart_quiet_s, apart_s = summarize(apart_quiet), summarize(apart)
    still_s, bare_s = summarize(still), summarize(bare)
    unhanded_s, handed_s = summarize(unhanded), summarize(handed)
    untold_s, told_s = summarize(untold), summarize(told)
    return {
        "size": size,
        "quiet_us": quiet_s.as_dict(),
        "busy_us": busy_s.as_dict(),
        "p50_ratio": ratio(busy_s.p50, quiet_s.p50),
        "p99_ratio": ratio(busy_s.p99, quiet_s.p99),
        "sets": sets,
        "paced_per_second": PACED,
        "paced_sets": paced_sets,
        "paced_p50_ratio": ratio(paced_s.p50, calm_s.p50),
        "paced_p99_ratio": ratio(paced_s.p99, calm_s.p99),
        "hello_p50_ratio": ratio(hello_s.p50, alone_s.p50),
        "hello_p99_ratio": ratio(hello_s.p99, alone_s.p99),
        "apart_sets": apart_sets,
        "apart_p50_ratio": ratio(apart_s.p50, apart_quiet_s.p50),
        "apart_p99_ratio": ratio(apart_s.p99, apart_quiet_s.p99),
        "bare_sets": bare_sets,
        "bare_p50_ratio": ratio(bare_s.p50, still_s.p50),
        "bare_p99_ratio": ratio(bare_s.p99, still_s.p99),
        "handed_sets": handed_sets,
        "handed_p50_ratio": ratio(handed_s.p50, unhanded_s.p50),
        "handed_p99_ratio": ratio(handed_s.p99, unhanded_s.p99),
        "told_sets": told_sets,
        "told_p50_ratio": ratio(told_s.p50, untold_s.p50),
        "told_p99_ratio": ratio(told_s.p99, untold_s.p99),
    }


def beside_writer(
    sizes: tuple[int, ...], workdir: Path, rounds: int, window: float
) -> dict[str, Any]:
    """Get latency beside a looping writer, per store size, as ratios to the quiet figures."""
    return {
        "rounds": rounds,
        "window_seconds": window,
        "rows": [_one_size(size, workdir, rounds, window) for size in sizes],
    }
