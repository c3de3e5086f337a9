"""Items 1 and 4: helperd's ``get`` beside the echo floor, one client at a time and under load.

Four servers answer the same request line with the same response bytes: the C echo server
(the physical limit), the Python asyncio floor (canned response), the floor that also parses
and renders JSON (the issue's 1.3x aim), and helperd itself. One C load generator drives
them all, and the servers take turns round by round, so that a noisy neighbour hits each of
them alike rather than one of them in full.

Latency runs with the client and the server on one CPU (`bench.process.pinned` says why);
throughput runs unpinned.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.process import (
    BENCH,
    PINNED_CPU,
    exchange,
    helperd_daemon,
    new_key_file,
    pinned,
    run_load,
    served,
)
from bench.stats import ratio, summarize
from bench.store import Layout, build_store

__all__ = ["SERVERS", "Servers", "latency", "running_servers", "throughput"]

FAST = importlib.util.find_spec("uvloop") is not None
"""Whether the ``fast`` extra (uvloop) is installed: its daemon then runs beside the default one."""

SERVERS = ("c_echo", "floor", "floor_json", "helperd") + (("helperd_uvloop",) if FAST else ())
"""Every server, in the order the tables list them."""

LABELS = {
    "c_echo": "C echo server (physical limit)",
    "floor": "Python asyncio floor (canned response)",
    "floor_json": "floor + JSON parse and render",
    "helperd": "helperd `get`",
    "helperd_uvloop": "helperd `get`, `fast` extra (uvloop)",
}


@dataclass(frozen=True)
class Servers:
    """Where each server listens, the request they all answer, and the tools to drive them."""

    sockets: dict[str, Path]
    request: bytes
    response: bytes
    load: Path
    workdir: Path
    pids: dict[str, int]


@contextlib.contextmanager
def running_servers(workdir: Path, binaries: dict[str, Path], records: int) -> Iterator[Servers]:
    """helperd on a ``records``-repository key-file store, and the three echo servers.

    The echo servers answer with helperd's own response to the benchmark's request,
    captured here first, so that every server writes the same bytes.
    """
    home = workdir / "helperd"
    home.mkdir(mode=0o700)
    key = new_key_file(home / "helperd.key")
    layout = Layout(records)
    build_store(home / "store.enc", layout, key_file=key)
    request = layout.service_request()
    fast_home = workdir / "helperd-fast"
    fast_home.mkdir(mode=0o700)
    fast_key = new_key_file(fast_home / "helperd.key")
    build_store(fast_home / "store.enc", layout, key_file=fast_key)
    with (
        helperd_daemon(home, key) as daemon,
        contextlib.ExitStack() as extra,
    ):
        response = exchange(daemon.socket, request)
        if b'"ok":true' not in response:
            raise RuntimeError(f"helperd did not answer the benchmark request: {response[:200]!r}")
        canned = workdir / "response.line"
        canned.write_bytes(response)
        sockets = {name: workdir / f"{name}.sock" for name in SERVERS}
        sockets["helperd"] = daemon.socket
        pids = {"helperd": daemon.process.pid}
        if FAST:
            fast = extra.enter_context(helperd_daemon(fast_home, fast_key, fast=True))
            exchange(fast.socket, request)  # opens its store
            sockets["helperd_uvloop"] = fast.socket
            pids["helperd_uvloop"] = fast.process.pid
        floor = [sys.executable, str(BENCH / "floor.py")]
        with (
            served(
                [str(binaries["echo"]), str(sockets["c_echo"]), str(canned)], sockets["c_echo"]
            ) as c_echo,
            served([*floor, str(sockets["floor"]), str(canned)], sockets["floor"]) as plain,
            served(
                [*floor, str(sockets["floor_json"]), str(canned), "--json"], sockets["floor_json"]
            ) as parsing,
        ):
            pids.update(c_echo=c_echo.pid, floor=plain.pid, floor_json=parsing.pid)
            yield Servers(sockets, request, response, binaries["load"], workdir, pids)


def latency(servers: Servers, rounds: int, kept: int, fresh: int) -> dict[str, Any]:
    """p50 and p99 of one client's requests, kept and fresh connections, per server."""
    samples: dict[tuple[str, str], list[float]] = {}
    per_round: dict[tuple[str, str], list[float]] = {}
    for turn in range(rounds):
        order = SERVERS[turn % len(SERVERS) :] + SERVERS[: turn % len(SERVERS)]
        for name in order:
            for mode, count in (("kept", kept), ("fresh", fresh)):
                with pinned(servers.pids[name]):
                    run = run_load(
                        servers.load,
                        servers.sockets[name],
                        servers.request,
                        servers.workdir,
                        fresh=mode == "fresh",
                        max_requests=count,
                        seconds=30.0,
                        warmup=50,
                        cpu=PINNED_CPU,
                    )
                samples.setdefault((name, mode), []).extend(run.latencies_us)
                per_round.setdefault((name, mode), []).append(summarize(run.latencies_us).p50)
    table: dict[str, Any] = {"rounds": rounds, "rows": []}
    for mode in ("kept", "fresh"):
        floor = summarize(samples[("floor", mode)])
        for name in SERVERS:
            summary = summarize(samples[(name, mode)])
            round_ratios = [
                ratio(a, b)
                for a, b in zip(per_round[(name, mode)], per_round[("floor", mode)], strict=True)
            ]
            table["rows"].append(
                {
                    "server": name,
                    "label": LABELS[name],
                    "mode": mode,
                    "us": summary.as_dict(),
                    "p50_ratio": ratio(summary.p50, floor.p50),
                    "p99_ratio": ratio(summary.p99, floor.p99),
                    "round_ratio_low": min(round_ratios),
                    "round_ratio_high": max(round_ratios),
                }
            )
    return table


def throughput(
    servers: Servers, clients: tuple[int, ...], seconds: float, rounds: int
) -> dict[str, Any]:
    """Requests per second and p99 at each client count, per server; medians over rounds."""
    rates: dict[tuple[str, int], list[float]] = {}
    p99s: dict[tuple[str, int], list[float]] = {}
    p50s: dict[tuple[str, int], list[float]] = {}
    for turn in range(rounds):
        for count in clients:
            order = SERVERS[turn % len(SERVERS) :] + SERVERS[: turn % len(SERVERS)]
            for name in order:
                run = run_load(
                    servers.load,
                    servers.sockets[name],
                    servers.request,
                    servers.workdir,
                    clients=count,
                    max_requests=1_000_000,
                    seconds=seconds,
                    warmup=20,
                )
                summary = summarize(run.latencies_us)
                rates.setdefault((name, count), []).append(run.rate)
                p99s.setdefault((name, count), []).append(summary.p99)
                p50s.setdefault((name, count), []).append(summary.p50)
    rows = []
    for name in SERVERS:
        for count in clients:
            rows.append(
                {
                    "server": name,
                    "label": LABELS[name],
                    "clients": count,
                    "rate": summarize(rates[(name, count)]).as_dict(),
                    "p50_us": summarize(p50s[(name, count)]).p50,
                    "p99_us": summarize(p99s[(name, count)]).as_dict(),
                }
            )
    return {"rounds": rounds, "seconds": seconds, "clients": list(clients), "rows": rows}
