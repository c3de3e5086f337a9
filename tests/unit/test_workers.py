"""Worker threads woken and answered through pipes (helperd.daemon.workers)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from helperd.daemon.workers import Workers

T = TypeVar("T")

BOUND = 10.0
"""Seconds any one scenario may take: a lost answer fails here instead of hanging."""


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), BOUND)

    return asyncio.run(bounded())


def test_a_call_runs_in_a_named_worker_thread_and_returns() -> None:
    """The result comes back to the loop; the call ran in ``helperd-worker_0``, not on it."""

    def add(a: int, b: int) -> int:
        return a + b

    async def scenario() -> tuple[str, int]:
        workers = Workers(2)
        try:
            name = await workers.submit(lambda: threading.current_thread().name)
            return name, await workers.submit(add, 7, 2)
        finally:
            workers.close()

    assert ("helperd-worker_0", 9) == run(scenario)


def test_what_a_call_raises_reaches_the_caller() -> None:
    """The caller gets the very exception; StopIteration, which a future cannot hold, comes
    as a RuntimeError caused by it; and the thread serves the next call."""

    def fail() -> None:
        raise KeyError("gone")

    def stop() -> None:
        raise StopIteration

    async def scenario() -> list[BaseException | int]:
        workers = Workers(1)
        seen: list[BaseException | int] = []
        for call in (fail, stop):
            try:
                await workers.submit(call)
            except (KeyError, RuntimeError) as exc:
                seen.append(exc)
        seen.append(await workers.submit(int, "5"))
        workers.close()
        return seen

    raised_key, raised_stop, after = run(scenario)
    assert isinstance(raised_key, KeyError)
    assert "'gone'" == str(raised_key)
    assert isinstance(raised_stop, RuntimeError)
    assert isinstance(raised_stop.__cause__, StopIteration)
    assert 5 == after


def test_no_more_threads_than_the_count_and_every_call_is_answered() -> None:
    """Six calls that block on a gate, for two threads: two run at once, the others wait
    their turn, and every caller gets its own answer."""
    gate = threading.Event()
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def held(number: int) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running)
        gate.wait(BOUND)
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return number * 10

    async def scenario() -> list[int]:
        workers = Workers(2)
        futures = [workers.submit(held, n) for n in range(6)]
        await asyncio.sleep(0.2)
        gate.set()
        try:
            return list(await asyncio.gather(*futures))
        finally:
            workers.close()

    assert [0, 10, 20, 30, 40, 50] == run(scenario)
    assert 2 == running[1]


def test_an_idle_thread_is_used_again() -> None:
    """Calls one after another all run in the first thread: none is started per call."""

    async def scenario() -> set[str]:
        workers = Workers(4)
        names = {await workers.submit(lambda: threading.current_thread().name) for _ in range(20)}
        workers.close()
        return names

    assert {"helperd-worker_0"} == run(scenario)


def test_a_cancelled_caller_does_not_lose_the_next_answer() -> None:
    """A caller that gave up (a bounded read past its time) drops its outcome; the thread and
    the answers of later calls are unaffected."""
    gate = threading.Event()

    async def scenario() -> str:
        workers = Workers(1)
        abandoned = workers.submit(gate.wait, BOUND)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(abandoned, 0.05)
        later = workers.submit(str, "next")
        gate.set()
        try:
            return await later
        finally:
            workers.close()

    assert "next" == run(scenario)


def test_close_cancels_waiting_calls_refuses_new_ones_and_ends_idle_threads() -> None:
    """After close: a call still waiting for a thread is cancelled, a new one is refused, and
    the idle threads end; a call that never returns does not hold anything up."""
    hung = threading.Event()  # never set: a call stuck like a frozen OS keyring
    before = set(threading.enumerate())

    async def scenario() -> tuple[asyncio.Future[bool], list[threading.Thread]]:
        workers = Workers(2)
        await workers.submit(int)  # thread 0, idle again
        stuck = workers.submit(hung.wait)  # thread 0 again, forever
        await workers.submit(int)  # thread 1, idle again
        waiting = workers.submit(hung.wait)  # thread 1
        queued = workers.submit(int)  # no thread free: waits
        await asyncio.sleep(0.05)
        workers.close()
        with pytest.raises(RuntimeError, match="closed"):
            workers.submit(int)
        assert queued.cancelled()
        assert not stuck.done()
        assert not waiting.done()
        return stuck, [t for t in threading.enumerate() if t not in before]

    _, threads = run(scenario)
    assert 2 == len(threads)
    assert all(thread.daemon for thread in threads)
    hung.set()  # let this test's threads end
    for thread in threads:
        thread.join(BOUND)
    assert not any(thread.is_alive() for thread in threads)


def test_one_event_loop_per_pool() -> None:
    """A pool answers through one loop's reader: another loop is refused, not left waiting.
    (The first loop is gone, so the pool cannot be closed: its one idle thread stays.)"""
    workers = Workers(1)

    async def first() -> int:
        return await workers.submit(int, "1")

    async def second() -> int:
        return await workers.submit(int, "2")

    assert 1 == run(first)
    with pytest.raises(RuntimeError, match="another event loop"):
        run(second)
