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
loop hands a `set` to a worker: what that hand-over alone costs them.

Then the stand-ins for a writer process apart, which fsyncs each write itself and tells the
daemon of it before it answers: the bare server fsyncing itself, then telling the measured
daemon (a `hello`); the same telling the second daemon instead, so that the measured one hears
nothing; the bare server handing to its thread, then telling the measured daemon; and the bare
server telling the measured daemon with a `get` of a record that does not exist, which costs
the daemon about what applying a write to its snapshot would (its CPU per request is measured);
and the bare server serving helperd's own `set` in its one thread, on a store of its own, before
it tells the daemon with that `get`: a writer process apart, its work and the daemon's share in it.

For the looping writer and the stand-ins that tell the measured daemon, the daemon's CPU time
(user and system, from /proc) is read over the busy and the quiet windows; the difference,
divided by the writer's requests, is what each of them costs the daemon.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
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

MISSING_GET = '{"v":1,"id":1,"op":"get","name":"bench-missing"}'
"""What the last stand-in tells the measured daemon: a `get` it answers ``not_found`` the full
way (parsed, looked up, rendered, logged), about what applying a write to its snapshot costs."""

# Loops `hello` the same way: another busy client, which writes nothing.
HELLO = WRITER.replace('client.set("bench-written", f"pw-{count}", username="w")', "client.hello()")

# The floor of a durable writer: no helperd at all. A bare server (a blocking loop on a Unix
# socket) appends each line it gets to a file, fsyncs it and answers; this client, started
# like the others, starts it (its paths from the second argument) and loops `set`-sized lines.
# The third argument is how the server makes a line durable: "itself"; "thread", handing each
# line to a thread that appends and fsyncs it and waiting for that thread; "tell", fsyncing
# itself and then telling a daemon (the one whose socket is this client's first argument) with a
# request on a kept connection (a `hello`, or this client's fourth argument), waiting for its
# answer before it answers its client; "thread+tell", both; or "helperd+tell", helperd's own `set`
# on a store of its own (this client's fifth and sixth arguments: its file and key file), served
# in the server's one thread, then telling the daemon.
BARE_SERVER = """
import os, queue, socket, sys, threading
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
mode = sys.argv[3]

def append(line):
    os.write(fd, line + b"\\n")
    os.fsync(fd)

durable = append
if mode.startswith("helperd"):
    # A writer process apart: helperd's own `set` (parsed, served by a Service on a file store
    # of its own, its journal appended and fsynced, the answer rendered) in this one thread.
    from datetime import UTC, datetime
    from pathlib import Path
    from helperd.core.protocol import parse_request, render_ok
    from helperd.core.service import Service
    from helperd.stores.file_store import FileStore

    store = FileStore(Path(sys.argv[6]), key_file=Path(sys.argv[7]))
    service = Service(store, store_reason="bench")

    def durable(line):
        request_id, request = parse_request(line)
        render_ok(request_id, service.handle(request, datetime.now(UTC)))

elif mode.startswith("thread"):
    lines, appended = queue.SimpleQueue(), queue.SimpleQueue()

    def worker():
        while True:
            append(lines.get())
            appended.put(True)

    threading.Thread(target=worker, daemon=True).start()

    def durable(line):
        lines.put(line)
        appended.get()

if mode.endswith("tell"):
    daemon = socket.socket(socket.AF_UNIX)
    daemon.settimeout(60)
    daemon.connect(sys.argv[4])
    tell = (sys.argv[5] if len(sys.argv) > 5 else '{"v":1,"id":1,"op":"hello"}').encode() + b"\\n"
    fsynced = durable

    def durable(line):
        fsynced(line)
        daemon.sendall(tell)
        answer = b""
        while not answer.endswith(b"\\n"):
            answer += daemon.recv(65_536)

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
    + sys.argv[3:4]
    + sys.argv[1:2]
    + sys.argv[4:],
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


def _cpu_seconds(pid: int) -> float:
    """The user and system CPU time process ``pid`` has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class _Beside:
    """Gets alone and beside a process, that process's requests, and the measured daemon's CPU
    time over the windows with it and without."""

    quiet: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    requests: int = 0
    quiet_cpu: float = 0.0
    busy_cpu: float = 0.0

    def as_row(self, kind: str) -> dict[str, Any]:
        """This neighbour's fields of a size's row, named ``{kind}_...``."""
        quiet, busy = summarize(self.quiet), summarize(self.busy)
        cpu = max(0.0, self.busy_cpu - self.quiet_cpu) / max(self.requests, 1)
        return {
            f"{kind}_sets": self.requests,
            f"{kind}_p50_ratio": ratio(busy.p50, quiet.p50),
            f"{kind}_p99_ratio": ratio(busy.p99, quiet.p99),
            f"{kind}_cpu_us": cpu * 1e6,
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
    the measured daemon (PID ``measured``) used in each kind of window."""
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
        for _ in range(rounds):
            before = _cpu_seconds(measured)
            _window(sock, request, window, found.busy)
            found.busy_cpu += _cpu_seconds(measured) - before
            writer.send_signal(signal.SIGSTOP)
            time.sleep(0.1)  # the request it had sent is done
            before = _cpu_seconds(measured)
            _window(sock, request, window, found.quiet)
            found.quiet_cpu += _cpu_seconds(measured) - before
            writer.send_signal(signal.SIGCONT)
    finally:
        writer.send_signal(signal.SIGCONT)
        out, _ = writer.communicate("", timeout=120)
    found.requests = int(out or 0)
    return found


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
    writer_home, writer_key = _store(layout, workdir, f"w{size}-writer")
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
            measured=daemon.process.pid,
            rounds=rounds,
            window=window,
        )

        def bare(kind: str, mode: str, *tell: str, **where: Any) -> _Beside:
            return beside(BARE, extra=(str(workdir / f"{kind}-{size}"), mode, *tell), **where)

        writer = beside(WRITER)
        neighbours = {
            "paced": beside(WRITER, extra=(str(1 / PACED),)),
            "hello": beside(HELLO),
            "apart": beside(WRITER, home=other_home, daemon_socket=other.socket),
            "bare": bare("bare", "itself"),
            "handed": bare("handed", "thread"),
            "told": bare("told", "tell"),
            "told_elsewhere": bare("elsewhere", "tell", daemon_socket=other.socket),
            "handed_told": bare("handed-told", "thread+tell"),
            "told_get": bare("told-get", "tell", MISSING_GET),
            "written_apart": bare(
                "written",
                "helperd+tell",
                MISSING_GET,
                str(writer_home / "store.enc"),
                str(writer_key),
            ),
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
        "paced_per_second": PACED,
    }
    for kind, found in neighbours.items():
        row.update(found.as_row(kind))
    return row


def beside_writer(
    sizes: tuple[int, ...], workdir: Path, rounds: int, window: float
) -> dict[str, Any]:
    """Get latency beside a looping writer, per store size, as ratios to the quiet figures."""
    return {
        "rounds": rounds,
        "window_seconds": window,
        "rows": [_one_size(size, workdir, rounds, window) for size in sizes],
    }
