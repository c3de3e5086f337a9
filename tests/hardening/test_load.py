"""Load: 32 concurrent clients for a bounded time, and a long soak with flat memory.

Each client thread has its own `helperd_client.Client` (one kept-alive connection) and its
own record, which only it writes, so every ``get`` has exactly one right answer: the value of
its last acknowledged ``set``. A shared record, written once, is read by all.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helperd_client import Client

from tests.hardening import Figures, Spawn, percentile, rss_kib, sized, timeout_for

pytestmark = pytest.mark.timeout(timeout_for(120, 3600))

SHARED = ("load-shared", "read by everyone")


@dataclass
class Tally:
    """What one client thread saw."""

    gets: list[float] = field(default_factory=list)
    sets: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Requests answered, right or wrong."""
        return len(self.gets) + len(self.sets)


def client_loop(path: Path, index: int, seed: int, keep_going: Callable[[Tally], bool]) -> Tally:
    """Mixed gets and sets on one connection until ``keep_going`` says stop."""
    rng = random.Random(seed)
    tally = Tally()
    name = f"load-{index}"
    expected: str | None = None
    sequence = 0
    with Client(path, timeout=10.0) as client:
        while keep_going(tally):
            started = time.monotonic()
            try:
                if expected is None or rng.random() < 0.1:
                    sequence += 1
                    value = f"{index}:{sequence}:{rng.getrandbits(64):x}"
                    client.set(name, value, username="u")
                    tally.sets.append(time.monotonic() - started)
                    expected = value
                    continue
                target, right = (name, expected) if rng.random() < 0.8 else SHARED
                got = client.get(name=target).password
                tally.gets.append(time.monotonic() - started)
                if got != right:
                    tally.wrong.append(f"{target}: expected {right!r}, got {got!r}")
            except Exception as exc:  # every failure is counted, none stops the run
                tally.errors.append(repr(exc))
                if len(tally.errors) > 100:
                    return tally
    return tally


def run_clients(
    path: Path, count: int, keep_going: Callable[[Tally], bool], seed: int
) -> tuple[list[Tally], float]:
    """Run ``count`` client threads; return their tallies and the wall time."""
    tallies: list[Tally] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        tally = client_loop(path, index, seed + index, keep_going)
        with lock:
            tallies.append(tally)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_for(120, 3600))
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    return tallies, time.monotonic() - started


def test_32_concurrent_clients(spawn: Spawn, figures: Figures) -> None:
    """32 clients for a bounded time: no error, no wrong answer; throughput and p99 reported."""
    duration = sized(5.0, 60.0)
    daemon = spawn()
    with daemon.client() as client:
        client.set(*SHARED, username="u")
    deadline = time.monotonic() + duration
    seed = random.randrange(1 << 32)
    tallies, elapsed = run_clients(daemon.socket, 32, lambda _: time.monotonic() < deadline, seed)
    gets = [latency for t in tallies for latency in t.gets]
    sets = [latency for t in tallies for latency in t.sets]
    errors = [e for t in tallies for e in t.errors]
    wrong = [w for t in tallies for w in t.wrong]
    total = len(gets) + len(sets)
    figures("clients", 32)
    figures("requests (gets/sets)", f"{total} ({len(gets)}/{len(sets)})")
    figures("throughput", total / elapsed, "req/s")
    figures("get p50", percentile(gets, 50) * 1000, "ms")
    figures("get p99", percentile(gets, 99) * 1000, "ms")
    figures("set p50", percentile(sets, 50) * 1000, "ms")
    figures("set p99", percentile(sets, 99) * 1000, "ms")
    figures("errors / wrong answers", f"{len(errors)}/{len(wrong)}")
    assert [] == errors[:5]
    assert [] == wrong[:5]
    assert 32 == len(tallies)
    assert all(t.requests > 0 for t in tallies), "a client was starved"
    with daemon.client() as client:
        assert 33 == len(client.list())


def test_soak_keeps_memory_flat(spawn: Spawn, figures: Figures) -> None:
    """CI: 20,000, full: 1,000,000 requests, pipelined on 2 connections; RSS stays flat.

    Each connection sends batches of 32 requests (gets of its own record and of a shared
    one, sets, lists, a get that finds nothing) and checks every answer, in order. RSS is
    sampled throughout; from 20% of the run to its end it may grow by less than 8 MiB.
    """
    total = sized(20_000, 1_000_000)
    connections, batch = 2, 32
    daemon = spawn()
    pid = daemon.process.pid
    with daemon.client() as client:
        client.set(*SHARED, username="u")
    rounds = total // (connections * batch) + 1
    samples: list[tuple[float, int]] = []
    results: list[SoakResult] = []
    lock = threading.Lock()

    def work(index: int, seed: int) -> None:
        result = soak_connection(daemon.socket, index, rounds, batch, seed)
        with lock:
            results.append(result)

    seed = random.randrange(1 << 32)
    threads = [
        threading.Thread(target=work, args=(i, seed + i), daemon=True) for i in range(connections)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        samples.append((time.monotonic() - started, rss_kib(pid)))
        for thread in threads:
            thread.join(0.25)
        assert time.monotonic() - started < timeout_for(100, 3000), "the soak did not finish"
    elapsed = time.monotonic() - started
    samples.append((elapsed, rss_kib(pid)))
    answered = sum(r.answered for r in results)
    problems = [p for r in results for p in r.problems]
    warm = next(rss for at, rss in samples if at >= elapsed / 5)
    end = samples[-1][1]
    figures("soak requests", answered)
    figures("soak throughput", answered / elapsed, "req/s")
    figures(
        "soak batch p99 (32 requests)",
        percentile([x for r in results for x in r.batches], 99) * 1000,
        "ms",
    )
    figures(
        "RSS at start / after 20% / end / peak",
        f"{samples[0][1]}/{warm}/{end}/{max(rss for _, rss in samples)} KiB",
    )
    figures("RSS growth after warm-up", (end - warm) / 1024, "MiB")
    assert [] == problems[:5]
    assert answered >= total
    assert end - warm < 8 * 1024, "RSS grew by 8 MiB or more after warm-up"
    assert daemon.process.poll() is None


@dataclass
class SoakResult:
    """What one soak connection saw."""

    answered: int = 0
    batches: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def soak_connection(path: Path, index: int, rounds: int, batch: int, seed: int) -> SoakResult:
    """Send ``rounds`` batches of requests on one connection; check every answer in order."""
    rng = random.Random(seed)
    result = SoakResult()
    name, value = f"soak-{index}", f"soak-{index}-0"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        with sock.makefile("rb") as reader:
            sock.sendall(request(0, "set", name=name, username="u", password=value))
            json.loads(reader.readline())
            for number in range(rounds):
                first = number * batch + 1
                lines, expected, value = draw_batch(rng, first, batch, name, value)
                started = time.monotonic()
                sock.sendall(b"".join(lines))
                for request_id, want in enumerate(expected, start=first):
                    problem = check_answer(json.loads(reader.readline()), request_id, want)
                    result.answered += 1
                    if problem is not None:
                        result.problems.append(problem)
                result.batches.append(time.monotonic() - started)
                if len(result.problems) > 20:
                    break
    return result


def draw_batch(
    rng: random.Random, first: int, size: int, name: str, value: str
) -> tuple[list[bytes], list[str | None], str]:
    """A batch of requests, what each must answer (None: any success), and the last value."""
    lines: list[bytes] = []
    expected: list[str | None] = []
    for request_id in range(first, first + size):
        draw = rng.random()
        if draw < 0.05:
            value = f"{name}-{request_id}"
            lines.append(request(request_id, "set", name=name, username="u", password=value))
            expected.append(None)
        elif draw < 0.08:
            lines.append(request(request_id, "list"))
            expected.append(None)
        elif draw < 0.10:
            lines.append(request(request_id, "get", name="soak-missing"))
            expected.append("not_found")
        elif draw < 0.50:
            lines.append(request(request_id, "get", name=SHARED[0]))
            expected.append(SHARED[1])
        else:
            lines.append(request(request_id, "get", name=name))
            expected.append(value)
    return lines, expected, value


def check_answer(answer: dict[str, Any], request_id: int, want: str | None) -> str | None:
    """What is wrong with ``answer`` (None when it is right)."""
    if answer["id"] != request_id:
        return f"answer {answer['id']} where {request_id} was due"
    if want == "not_found":
        if answer["ok"] or answer["error"]["code"] != "not_found":
            return f"expected not_found, got {answer}"
        return None
    if not answer["ok"]:
        return f"request {request_id} failed: {answer['error']}"
    if want is not None and answer["result"]["password"] != want:
        return f"wrong password for request {request_id}"
    return None


def request(request_id: int, op: str, **args: str) -> bytes:
    """One request line."""
    return json.dumps({"v": 1, "id": request_id, "op": op, **args}).encode() + b"\n"
