"""The ``get`` path profiled once: the daemon (every thread) under load, and the plugin's client.

Daemon side: `bench/profiled_daemon.py` runs helperd with a profiler in each thread while the C
load generator sends ``get`` requests over one kept connection; the event-loop thread and the
worker threads are read apart, their idle waits (epoll, the work queue) left out. Client side:
the plugin's warm ``keyring.get_password`` calls in the e2e keyring venv. cProfile's own cost
inflates every figure several-fold, so the shares matter, not the microseconds.
"""

from __future__ import annotations

import pstats
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

_Key = tuple[str, int, str]
_IDLE = {
    ("~", 0, "<method 'poll' of 'select.epoll' objects>"),
    ("~", 0, "<method 'get' of '_queue.SimpleQueue' objects>"),
    ("~", 0, "<method 'acquire' of '_thread.lock' objects>"),
}

# (label, thread, file suffix, function): the parts of a request, read as cumulative time.
# "both": the event-loop thread and the workers together (a get from an open file store is
# answered on the loop; opening the store, or a store whose reads block, takes a worker).
PARTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "whole request on the event loop (`Server._respond`)",
        "main",
        "helperd/daemon/server.py",
        "_respond",
    ),
    ("parse_request (JSON + pydantic)", "main", "helperd/core/protocol.py", "parse_request"),
    ("render_ok (model_dump + json.dumps)", "main", "helperd/core/protocol.py", "render_ok"),
    ("run_in_executor (hand-off to a worker)", "main", "asyncio/base_events.py", "run_in_executor"),
    ("asyncio.wait_for (a task + a timer each)", "main", "asyncio/tasks.py", "wait_for"),
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
    (
        "waking the loop (call_soon_threadsafe)",
        "workers",
        "asyncio/base_events.py",
        "call_soon_threadsafe",
    ),
)


def _find(stats: pstats.Stats, suffix: str, function: str) -> tuple[int, float, float]:
    """(calls, own seconds, cumulative seconds) summed over functions matching."""
    calls, own, cumulative = 0, 0.0, 0.0
    for (filename, _line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name == function and filename.endswith(suffix):
            calls, own, cumulative = calls + nc, own + tt, cumulative + ct
    return calls, own, cumulative


def _busy(stats: pstats.Stats) -> float:
    return sum(
        tt
        for key, (_cc, _nc, tt, _ct, _callers) in stats.stats.items()  # type: ignore[attr-defined]
        if key not in _IDLE
    )


def _top(stats: pstats.Stats, requests: int, count: int = 12) -> list[dict[str, Any]]:
    rows = []
    for key, (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if key in _IDLE:
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
    try:
        socket_path = home / "helperd.sock"
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"profiled helperd did not start: {home / 'daemon.log'}")
            time.sleep(0.02)
        for kind, count in requests.items():
            request = layout.service_request() if kind == "service" else layout.url_request()
            run = run_load(
                load, socket_path, request, workdir, max_requests=count, seconds=seconds, warmup=1
            )
            served += run.count + 1
    finally:
        stop(process, timeout=60)
    main = pstats.Stats(str(prefix) + ".main.prof")
    workers = pstats.Stats(str(prefix) + ".workers.prof")
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
    workdir: Path, load: Path, small: int, big: int, seconds: float
) -> dict[str, Any]:
    """The daemon's ``get`` path: many requests on a 10-record store, a few on a big one."""
    return {
        "small": _profiled_run(workdir, Layout(10), {"service": small}, seconds, load),
        "big": _profiled_run(workdir, Layout(big), {"service": 20, "url": 5}, seconds, load),
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
