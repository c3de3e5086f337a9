"""Processes the benchmarks start: compiled C helpers, servers, the load generator, timed commands.

Every process started here is stopped by its PID in a ``finally`` (SIGTERM, then SIGKILL),
even when a measurement fails; nothing is matched by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from helperd.testing import Daemon, start_daemon

__all__ = [
    "BENCH",
    "PINNED_CPU",
    "REPO",
    "Load",
    "compile_c",
    "exchange",
    "helperd_daemon",
    "new_key_file",
    "pinned",
    "run_load",
    "scratch",
    "served",
    "stop",
    "time_command",
]

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_INSTALL = {"PYTHONPATH": str(BENCH / "no_uvloop")}
"""The environment of a daemon as the default install runs it: bench/.venv has the ``fast``
extra (uvloop), which a daemon would use; the goals are judged without it."""
READY_TIMEOUT = 20.0
COMMAND_TIMEOUT = 300.0


@contextlib.contextmanager
def scratch(prefix: str = "hdb") -> Iterator[Path]:
    """A private temporary folder with a short path (Unix socket paths are ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def compile_c(source: Path, out: Path, *flags: str) -> Path:
    """Compile ``source`` with the machine's ``cc -O2`` into ``out``; return the binary.

    Raises:
        RuntimeError: no C compiler, or the compilation failed.
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) on PATH: install one (apt-get install gcc)")
    binary = out / source.stem
    done = subprocess.run(
        [cc, "-O2", "-o", str(binary), str(source), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"compiling {source.name} failed:\n{done.stderr[-2000:]}")
    return binary


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop ``process`` by its PID: SIGTERM, then SIGKILL when it does not exit in time."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@contextlib.contextmanager
def served(argv: Sequence[str], socket: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server that prints ``ready`` once it listens on ``socket``; stop it afterwards."""
    process = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
        line = process.stdout.readline() if ready else b""
        if line.strip() != b"ready" or not socket.exists():
            stop(process)
            errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"{argv[0]} did not start: {errors[-2000:]}")
        yield process
    finally:
        stop(process)


@contextlib.contextmanager
def helperd_daemon(
    home: Path,
    key_file: Path,
    *args: str,
    env: dict[str, str] | None = None,
    fast: bool = False,
) -> Iterator[Daemon]:
    """helperd on the encrypted file store opened by ``key_file``, in ``home``; stopped after.

    It runs as the default install does, on asyncio's event loop; with ``fast``, as the
    ``fast`` extra does (uvloop).
    """
    full = {
        "HELPERD_KEY_FILE": str(key_file),
        **({} if fast else DEFAULT_INSTALL),
        **(env or {}),
    }
    daemon = start_daemon(home, "--store", "file", *args, env=full)
    try:
        yield daemon
    finally:
        daemon.stop()


PINNED_CPU = 0
"""The CPU a measured server and its load client share (`pinned`, `run_load`'s ``cpu``):
on two virtual CPUs, the kernel otherwise puts them on one CPU or on two at random from run
to run, and the cross-CPU wake-up of the second placement (about 25 µs) moves a p50 by more
than the servers differ."""


@contextlib.contextmanager
def pinned(pid: int, cpu: int = PINNED_CPU) -> Iterator[None]:
    """Keep thread ``pid`` (a server's main thread: its event loop) on ``cpu``; let it go
    after, with every thread of its process, since a thread it started meanwhile took its
    affinity."""
    before = os.sched_getaffinity(pid)
    os.sched_setaffinity(pid, {cpu})
    try:
        yield
    finally:
        for task in Path(f"/proc/{pid}/task").glob("*"):  # ``pid``'s thread among them
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                os.sched_setaffinity(int(task.name), before)


def new_key_file(path: Path) -> Path:
    """A fresh 0600 key file of 32 random bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path


def exchange(socket_path: Path, line: bytes, timeout: float = 60.0) -> bytes:
    """Send one request line over a new connection and return the response line."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(line)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("the server closed the connection without answering")
            data += chunk
    return data


@dataclass(frozen=True)
class Load:
    """What one run of the load generator measured."""

    clients: int
    count: int
    seconds: float
    errors: int
    latencies_us: list[float]

    @property
    def rate(self) -> float:
        """Requests answered per second."""
        return self.count / self.seconds if self.seconds else 0.0


def run_load(
    load: Path,
    socket_path: Path,
    request: bytes,
    workdir: Path,
    *,
    clients: int = 1,
    fresh: bool = False,
    max_requests: int = 1000,
    seconds: float = 5.0,
    warmup: int = 20,
    cpu: int | None = None,
) -> Load:
    """Run the C load generator once against ``socket_path`` (on CPU ``cpu`` alone if given).

    Raises:
        RuntimeError: the generator failed, or some responses were not ``"ok": true``.
    """
    request_file = workdir / "request.line"
    request_file.write_bytes(request)
    argv = [str(load), str(socket_path), str(request_file), str(clients)]
    argv += ["fresh" if fresh else "kept", str(max_requests), f"{seconds:g}", str(warmup)]
    if cpu is not None:
        argv = ["taskset", "--cpu-list", str(cpu), *argv]
    done = subprocess.run(
        argv, capture_output=True, timeout=seconds * 3 + 120, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode(errors='replace')}")
    data = json.loads(done.stdout)
    if data["errors"]:
        raise RuntimeError(f"{data['errors']} of {data['count']} requests failed on {socket_path}")
    return Load(clients, data["count"], data["seconds"], data["errors"], data["latencies_us"])


def time_command(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    expect: bytes | None = None,
) -> float:
    """Run a command to completion and return its wall time in seconds.

    Raises:
        RuntimeError: it failed, or its stdout does not hold ``expect``.
    """
    started = time.perf_counter()
    done = subprocess.run(
        [str(a) for a in argv],
        env=None if env is None else dict(env),
        cwd=cwd,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or (expect is not None and expect not in done.stdout):
        raise RuntimeError(
            f"{' '.join(map(str, argv))} -> {done.returncode}\n"
            f"{done.stdout.decode(errors='replace')[-1500:]}"
            f"{done.stderr.decode(errors='replace')[-1500:]}"
        )
    return elapsed
