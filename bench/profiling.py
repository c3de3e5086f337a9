"""The ``get`` path profiled once: the daemon (every thread) under load, and the plugin's client.

Daemon side: `bench/profiled_daemon.py` runs helperd with a profiler in each thread while the C
load generator sends ``get`` requests over one kept connection; the event-loop thread and the
worker threads are read apart, their idle waits (epoll, the work queue) left out. Client side:
the plugin's warm ``keyring.get_password`` calls in the e2e keyring venv. cProfile's own cost
inflates every figure several-fold, so the shares matter, not the microseconds.
"""

from __future__ import annotations

import pstats
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.process import BENCH, DEFAULT_INSTALL, new_key_file, run_load, stop
from bench.store import USERNAME, Layout, build_store
from helperd.core.protocol import parse_request, render_ok
from helperd.core.service import Service
from helperd.stores.file_store import FileStore
from helperd.testing import daemon_env

__all__ = ["profile_client", "profile_daemon"]

WARMUP = 200
"""Requests of each kind answered before the profiles start afresh."""

_Key = tuple[str, int, str]
_IDLE = {
    ("~", 0, "<method 'poll' of 'select.epoll' objects>"),
    ("~", 0, "<method 'get' of '_queue.SimpleQueue' objects>"),
    ("~", 0, "<method 'acquire' of '_thread.lock' objects>"),
}
# A worker thread with nothing to do sleeps in a read of its wake pipe (`Workers._serve`): that
# read is idle; a read elsewhere (a store file's) is work.
_READ: _Key = ("~", 0, "<built-in method posix.read>")
_SLEEPER = ("helperd/daemon/workers.py", "_serve")

# (label, thread, file suffix, function): the parts of a request, read as cumulative time.
# "both": the event-loop thread and the workers together (a get from an open file store is
# answered on the loop; a write, or a store whose reads block, takes a worker).
PARTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "whole request on the event loop (`Server._respond`)",
        "main",
        "helperd/daemon/server.py",
        "_respond",
    ),
    (
        "quick_request (a plain `get` checked by hand)",
        "main",
        "helperd/core/hot.py",
        "quick_request",
    ),
    (
        "Service.answer_hot (the kept answer's bytes)",
        "main",
        "helperd/core/service_hot.py",
        "answer_hot",
    ),
    ("render_cached (the id put in front)", "main", "helperd/core/hot.py", "render_cached"),
    ("parse_request (JSON + pydantic)", "main", "helperd/core/protocol.py", "parse_request"),
    ("render_ok (model_dump + json.dumps)", "main", "helperd/core/protocol.py", "render_ok"),
    ("Workers.submit (hand-off to a worker)", "main", "helperd/daemon/workers.py", "submit"),
    ("socket recv", "main", "~", "<method 'recv' of '_socket.socket' objects>"),
    ("socket send", "main", "~", "<method 'send' of '_socket.socket' objects>"),
    ("Service.handle", "both", "helperd/core/service.py", "handle"),
    ("FileStore.records (one tuple per store version)", "both", "file_store.py", "records"),
    (
        "Service._current_catalog (the lookup index, rebuilt after a change)",
        "both",
        "helperd/core/service.py",
        "_current_catalog",
    ),
    ("lookup.find", "both", "helperd/core/lookup.py", "find"),
    ("GetResult model validation", "both", "pydantic/main.py", "__init__"),
)


def load_stats(path: Path) -> pstats.Stats:
    """A profile written by `bench/profiled_daemon.py`; empty when it wrote none (no call)."""
    return pstats.Stats(str(path)) if path.exists() else pstats.Stats()


def _start_afresh(process: subprocess.Popen[bytes], cleared: Path) -> None:
    """Have the profiled daemon clear its profiles (SIGUSR1), and wait until it has."""
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while not cleared.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the profiled helperd did not start its profiles afresh")
        time.sleep(0.01)


def _find(stats: pstats.Stats, suffix: str, function: str) -> tuple[int, float, float]:
    """(calls, own seconds, cumulative seconds) summed over functions matching."""
    calls, own, cumulative = 0, 0.0, 0.0
    for (filename, _line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name == function and filename.endswith(suffix):
            calls, own, cumulative = calls + nc, own + tt, cumulative + ct
    return calls, own, cumulative


def _idle(key: _Key, callers: dict[_Key, tuple[Any, ...]]) -> tuple[int, float]:
    """(calls, seconds) of the function ``key`` that were a thread waiting for work."""
    if key in _IDLE:
        return 0, float("inf")
    if key != _READ:
        return 0, 0.0
    calls, seconds = 0, 0.0
    for (filename, _line, name), (_cc, nc, tt, _ct) in callers.items():
        if filename.endswith(_SLEEPER[0]) and name == _SLEEPER[1]:
            calls, seconds = calls + nc, seconds + tt
    return calls, seconds


def _busy(stats: pstats.Stats) -> float:
    return sum(
        max(0.0, tt - _idle(key, callers)[1])
        for key, (_cc, _nc, tt, _ct, callers) in stats.stats.items()  # type: ignore[attr-defined]
    )


def _top(stats: pstats.Stats, requests: int, count: int = 12) -> list[dict[str, Any]]:
    rows = []
    for key, (_cc, all_calls, all_own, all_cumulative, callers) in stats.stats.items():  # type: ignore[attr-defined]
        idle_calls, idle = _idle(key, callers)
        nc, tt, ct = all_calls - idle_calls, all_own - idle, all_cumulative - idle
        if nc <= 0 or tt <= 0:
            continue
        filename, line, name = key
        short = filename.replace(str(BENCH.parent) + "/", "")
        short = short.split("site-packages/")[-1].split("lib/python3.11/")[-1]
        rows.append(
            {
                "function": f"{short}:{line}({name})" if line else name,
                "calls_per_request": nc / requests,
                "own_us": tt / requests * 1e6,
                "cumulative_us": ct / requests * 1e6,
            }
        )
    rows.sort(key=lambda r: -r["own_us"])
    return rows[:count]


def _profiled_run(
    workdir: Path, layout: Layout, requests: Mapping[str, int], seconds: float, load: Path
) -> dict[str, Any]:
    home = workdir / f"profile-{layout.size}"
    home.mkdir(mode=0o700)
    key = new_key_file(workdir / f"profile-{layout.size}.key")
    build_store(home / "store.enc", layout, key_file=key)
    prefix = workdir / f"profile-{layout.size}"
    log = (home / "daemon.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "profiled_daemon.py"), str(prefix), "--store", "file"],
        env=daemon_env(home, {**DEFAULT_INSTALL, "HELPERD_KEY_FILE": str(key)}),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    log.close()
    served = 0
    lines = {
        kind: layout.service_request() if kind == "service" else layout.url_request()
        for kind in requests
    }
    try:
        socket_path = home / "helperd.sock"
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"profiled helperd did not start: {home / 'daemon.log'}")
            time.sleep(0.02)
        # The store's opening and the first answers are left out: a steady `get` is profiled.
        for line in lines.values():
            run_load(load, socket_path, line, workdir, max_requests=WARMUP, seconds=seconds)
        _start_afresh(process, Path(f"{prefix}.cleared"))
        for kind, count in requests.items():
            line = lines[kind]
            run = run_load(
                load, socket_path, line, workdir, max_requests=count, seconds=seconds, warmup=1
            )
            served += run.count + 1
    finally:
        stop(process, timeout=60)
    main = load_stats(Path(f"{prefix}.main.prof"))
    workers = load_stats(Path(f"{prefix}.workers.prof"))
    threads = {"main": main, "workers": workers}
    parts = []
    for label, thread, suffix, function in PARTS:
        found = [
            _find(stats, suffix, function)
            for name, stats in threads.items()
            if thread in (name, "both")
        ]
        calls, cumulative = sum(f[0] for f in found), sum(f[2] for f in found)
        if calls:
            parts.append(
                {
                    "part": label,
                    "thread": thread,
                    "calls_per_request": calls / served,
                    "cumulative_us": cumulative / served * 1e6,
                }
            )
    loops, _, _ = _find(main, "asyncio/base_events.py", "_run_once")
    return {
        "size": layout.size,
        "requests": served,
        "warmup": WARMUP,
        "busy_us": {name: _busy(stats) / served * 1e6 for name, stats in threads.items()},
        "loop_iterations_per_request": loops / served,
        "parts": parts,
        "top": {name: _top(stats, served) for name, stats in threads.items()},
    }


def in_process(workdir: Path, calls: int) -> dict[str, float]:
    """Microseconds per call of the three steps of a ``get`` that are not I/O, run in this
    process without a profiler on a 10-repository store: parsing the request line,
    `Service.answer_now` (lookup, password, result) and rendering the response line."""
    layout = Layout(10)
    key = new_key_file(workdir / "in-process.key")
    build_store(workdir / "in-process.enc", layout, key_file=key)
    store = FileStore(workdir / "in-process.enc", key_file=key)
    try:
        service = Service(store, store_reason="bench")
        line = layout.service_request()
        request_id, request = parse_request(line)
        now = datetime.now(UTC)
        service.handle(request, now)  # opens the store
        result = service.answer_now(request, now)
        if result is None:
            raise RuntimeError("a get from an open file store was not answered on the loop")
        steps = {
            "parse_us": lambda: parse_request(line),
            "answer_us": lambda: service.answer_now(request, now),
            "render_us": lambda: render_ok(request_id, result),
        }
        timings = {}
        for name, step in steps.items():
            before = time.perf_counter()
            for _ in range(calls):
                step()
            timings[name] = (time.perf_counter() - before) / calls * 1e6
        return timings
    finally:
        store.close()


def profile_daemon(
    workdir: Path, load: Path, requests: int, big: int, seconds: float
) -> dict[str, Any]:
    """The daemon's steady ``get`` path, ``requests`` of them on a 10-record store and as many
    on a ``big`` one (half by service, half by URL there), each store opened and warm first."""
    half = requests // 2
    return {
        "small": _profiled_run(workdir, Layout(10), {"service": requests}, seconds, load),
        "big": _profiled_run(workdir, Layout(big), {"service": half, "url": half}, seconds, load),
    }


_CLIENT_CODE = """
import cProfile, sys, keyring
from keyring import get_password
service, username, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
assert get_password(service, username)
profile = cProfile.Profile()
profile.enable()
for _ in range(count):
    get_password(service, username)
profile.disable()
profile.dump_stats(out)
"""


def profile_client(python: Path, helperd_home: Path, workdir: Path, calls: int) -> dict[str, Any]:
    """The plugin's warm ``keyring.get_password``, as Poetry calls it, profiled in-process."""
    out = workdir / "client.prof"
    layout = Layout(10)
    service = f"poetry-repository-{layout.name(layout.target)}"
    subprocess.run(
        [str(python), "-c", _CLIENT_CODE, service, USERNAME, str(calls), str(out)],
        env=daemon_env(helperd_home),
        check=True,
        capture_output=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    stats = pstats.Stats(str(out))
    parts = []
    for label, suffix, function in (
        ("HelperdKeyring._lookup", "keyring_backend.py", "_lookup"),
        ("Client() construction (socket path)", "helperd_client/client.py", "__init__"),
        ("connect", "~", "<method 'connect' of '_socket.socket' objects>"),
        ("Client.request", "helperd_client/client.py", "request"),
        ("waiting for the answer (recv)", "~", "<method 'recv' of '_socket.socket' objects>"),
        ("Credential.from_wire (3 datetimes)", "helperd_client/client.py", "from_wire"),
        ("encode_line + decode_line (json)", "helperd_client/wire.py", "encode_line"),
        ("socket close", "helperd_client/client.py", "close"),
    ):
        found, _own, cumulative = _find(stats, suffix, function)
        if found:
            parts.append({"part": label, "cumulative_us": cumulative / calls * 1e6})
    return {"calls": calls, "parts": parts, "top": _top(stats, calls)}
