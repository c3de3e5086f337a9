"""Item 5: helperd with 10, 1,000 and 100,000 repositories in its encrypted file store.

For each size: the store is built in one commit (`bench.store`), then a daemon on it is timed
from ``Popen`` to its first ``hello`` (start-up), to its first ``get`` (the key-file store
opens then: read, decrypt, parse every record), ``list``, and durable ``set`` (each one
rewrites and fsyncs the whole file); beside each ``set``, the same number of bytes written
by `helperd.stores.durable.write_atomic` alone (the disk's share). A passphrase store of the same
size is unlocked too (Argon2id + parse).

``get`` latency, by Poetry's service and by pip's URL, is measured with one daemon per size
running side by side, the sizes taking turns in rounds (as the servers of item 1 do), so that
a noisy neighbour does not land on one size alone; each daemon shares one CPU with the load
client while it is measured (`bench.process.pinned`), as in item 1.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helperd_client import Client, DaemonUnreachableError, HelperdError

from bench.process import (
    DEFAULT_INSTALL,
    PINNED_CPU,
    exchange,
    new_key_file,
    pinned,
    run_load,
    stop,
)
from bench.stats import ratio, summarize
from bench.store import PASSWORD, USERNAME, Layout, build_store
from helperd.stores.durable import write_atomic
from helperd.testing import daemon_env

__all__ = ["scale"]

PASSPHRASE = "bench passphrase for scale"  # noqa: S105 - protects a throwaway store
LIST_PAGE = b'{"v":1,"id":1,"op":"list","limit":2000}\n'


@contextlib.contextmanager
def _daemon(home: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start helperd in ``home``; yield it with the seconds it took to answer ``hello``."""
    log = (home / "daemon.log").open("ab")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "helperd", "--store", "file"],
        env=daemon_env(home, {**DEFAULT_INSTALL, **env}),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    log.close()
    try:
        socket_path = home / "helperd.sock"
        deadline = started + 60
        while True:
            if process.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"helperd did not start: {(home / 'daemon.log').read_text()}")
            with contextlib.suppress(DaemonUnreachableError, OSError):
                with Client(socket_path, timeout=1.0) as client:
                    client.hello()
                break
            time.sleep(0.002)
        yield process, time.perf_counter() - started
    finally:
        stop(process)


def _timed(call: Any) -> float:
    before = time.perf_counter()
    call()
    return time.perf_counter() - before


def _first_get(socket_path: Path, request: bytes) -> float:
    """Seconds until a ``get`` succeeds: a read that outruns the daemon's answer timeout (1.5 s)
    while the store opens is answered ``store_unavailable``, and asked again."""
    before = time.perf_counter()
    for _ in range(100):
        if b'"ok":true' in exchange(socket_path, request)[:64]:
            return time.perf_counter() - before
    raise RuntimeError("helperd never answered the first get")


def _one_size(size: int, workdir: Path, load: Path, budget: dict[str, Any]) -> dict[str, Any]:
    layout = Layout(size)
    home = workdir / f"n{size}"
    home.mkdir(mode=0o700)
    key = new_key_file(workdir / f"n{size}.key")
    store = home / "store.enc"
    build_s = _timed(lambda: build_store(store, layout, key_file=key))
    row: dict[str, Any] = {"size": size, "build_s": build_s, "file_bytes": store.stat().st_size}
    startups, opens = [], []
    for attempt in range(budget["starts"]):
        with _daemon(home, {"HELPERD_KEY_FILE": str(key)}) as (_process, startup):
            socket_path = home / "helperd.sock"
            startups.append(startup)
            opens.append(_first_get(socket_path, layout.service_request()))
            if attempt:
                continue
            lists = []
            listed: list[Any] = []
            error = None
            for _ in range(budget["lists"]):
                before = time.perf_counter()
                try:
                    # As helperctl list does: Client.list pages through the whole store.
                    with Client(socket_path, timeout=600.0) as lister:
                        listed = lister.list()
                except HelperdError as exc:
                    error = f"{exc.code}: {exc.message}"
                lists.append(time.perf_counter() - before)
            row["list_ok"] = error is None and len(listed) == size
            row["list_count"] = len(listed)
            row["list_bytes"] = len(exchange(socket_path, LIST_PAGE))
            row["list_error"] = error
            row["list_ms"] = summarize(lists).scaled(1e3).as_dict()
            sets, disk = [], []
            with Client(socket_path, timeout=600.0) as client:
                for index in range(budget["sets"]):
                    password = f"{PASSWORD}-new-{index}"
                    name = layout.name(layout.target)
                    sets.append(
                        _timed(lambda n=name, p=password: client.set(n, p, username=USERNAME))
                    )
                    size_now = store.stat().st_size
                    scratch = home / "disk-floor.bin"
                    data = os.urandom(size_now)
                    disk.append(_timed(lambda d=data, s=scratch: write_atomic(s, d)))
            row["set_ms"] = summarize(sets).scaled(1e3).as_dict()
            row["disk_ms"] = summarize(disk).scaled(1e3).as_dict()
    row["startup_ms"] = summarize(startups).scaled(1e3).as_dict()
    row["open_ms"] = summarize(opens).scaled(1e3).as_dict()
    row["unlock_ms"] = _unlock(size, workdir, budget["unlocks"])
    return row


def _gets(
    sizes: tuple[int, ...], workdir: Path, load: Path, budget: dict[str, Any]
) -> dict[int, dict[str, Any]]:
    """``get`` latency at every size (``get_service_us``, ``get_url_us``), from daemons that
    run side by side and take turns in each round; the stores were built by `_one_size`."""
    rounds = budget["get_rounds"]
    latencies: dict[tuple[int, str], list[float]] = {}
    with contextlib.ExitStack() as stack:
        sockets, pids = {}, {}
        for size in sizes:
            home = workdir / f"n{size}"
            key = workdir / f"n{size}.key"
            process, _ = stack.enter_context(_daemon(home, {"HELPERD_KEY_FILE": str(key)}))
            pids[size] = process.pid
            sockets[size] = home / "helperd.sock"
            _first_get(sockets[size], Layout(size).service_request())  # opens the store
        for turn in range(rounds):
            order = sizes[turn % len(sizes) :] + sizes[: turn % len(sizes)]
            for size in order:
                layout = Layout(size)
                for kind, request in (
                    ("service", layout.service_request()),
                    ("url", layout.url_request()),
                ):
                    with pinned(pids[size]):
                        run = run_load(
                            load,
                            sockets[size],
                            request,
                            workdir,
                            max_requests=budget["gets"] // rounds,
                            seconds=budget["get_seconds"] / rounds,
                            warmup=50,
                            cpu=PINNED_CPU,
                        )
                    latencies.setdefault((size, kind), []).extend(run.latencies_us)
    return {
        size: {
            f"get_{kind}_us": summarize(latencies[(size, kind)]).as_dict()
            for kind in ("service", "url")
        }
        for size in sizes
    }


def _unlock(size: int, workdir: Path, unlocks: int) -> dict[str, Any]:
    """Unlock a passphrase store of ``size`` records: Argon2id, decrypt, parse."""
    home = workdir / f"p{size}"
    home.mkdir(mode=0o700)
    build_store(home / "store.enc", Layout(size), passphrase=PASSPHRASE)
    times = []
    with _daemon(home, {}), Client(home / "helperd.sock", timeout=600.0) as client:
        for _ in range(unlocks):
            times.append(_timed(lambda: client.unlock(PASSPHRASE)))
            client.lock()
    return summarize(times).scaled(1e3).as_dict()


def scale(
    sizes: tuple[int, ...], workdir: Path, load: Path, budget: dict[str, Any]
) -> dict[str, Any]:
    """Every measurement at every size, and each size's ratio to the smallest."""
    rows = [_one_size(size, workdir, load, budget) for size in sizes]
    gets = _gets(sizes, workdir, load, budget)
    for row in rows:
        row.update(gets[row["size"]])
    smallest = rows[0]
    for row in rows:
        for key in ("get_service_us", "get_url_us"):
            row[f"{key}_ratio"] = ratio(row[key]["p50"], smallest[key]["p50"])
        row["set_vs_disk"] = ratio(row["set_ms"]["p50"], row["disk_ms"]["p50"])
    return {"sizes": list(sizes), "rows": rows}
