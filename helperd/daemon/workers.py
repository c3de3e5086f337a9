"""Worker threads for the event loop: blocking calls run there, woken and answered by pipes.

`Workers.submit` is what `loop.run_in_executor` with a `ThreadPoolExecutor` would be, at half
the event loop's cost. On the bench machine (two virtual CPUs) a call through the executor
took the loop 68-78 µs of CPU (116-142 µs wall) and one through `Workers` 33-38 µs (66-78 µs):
concurrent.futures chains a second future to the asyncio one, and each hand-over goes through
its condition variables and ``call_soon_threadsafe``. Every ``set`` pays this on the event
loop, which is where the gets beside a looping writer waited before the writer process took
sets off the loop: their p50 beside it went from 1.85x to 1.44x of the quiet figure (six A/B
pairs of section 5b of docs/performance.md as it measured on 2026-12-03).

Here an idle thread sleeps in a ``read`` of its own pipe, and the loop wakes exactly that
thread with one byte; a thread that finishes puts the outcome in a queue and writes one byte
to a pipe the loop watches (`asyncio.AbstractEventLoop.add_reader`), where the loop sets the
caller's future. Threads start on demand, up to the count, and are daemon threads: a call
that never returns (a hung OS keyring) cannot keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar, TypeVarTuple

__all__ = ["Workers"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Outcome = tuple["asyncio.Future[Any]", bool, Any]
"""The caller's future, whether the call returned, and what it returned or raised."""


class _Thread:
    """One worker: its wake pipe, and the job handed to it while it sleeps."""

    __slots__ = ("job", "wake_read", "wake_write")

    def __init__(self) -> None:
        self.wake_read, self.wake_write = os.pipe()
        self.job: _Job | None = None

    def close(self) -> None:
        os.close(self.wake_read)
        os.close(self.wake_write)


class Workers:
    """Up to ``count`` threads running blocking calls for one event loop.

    Args:
        count: the most threads at once; calls beyond wait in order for a free one.
        name: the threads' names are ``{name}_0``, ``{name}_1``... (as a ThreadPoolExecutor's).
    """

    def __init__(self, count: int, name: str = "helperd-worker") -> None:
        if count < 1:
            raise ValueError("a pool needs at least one thread")
        self._count = count
        self._name = name
        self._lock = threading.Lock()  # guards everything below but _done, for moments only
        self._idle: list[_Thread] = []
        self._waiting: collections.deque[_Job] = collections.deque()
        self._started = 0
        self._closed = False
        self._done: collections.deque[_Outcome] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done_read = self._done_write = -1

    def submit(self, call: Callable[[*Ts], T], *args: *Ts) -> asyncio.Future[T]:
        """Run ``call(*args)`` in a worker thread (on the event loop, as `run_in_executor`):
        the future gets its result, or what it raised.

        Cancelling the future does not stop the call (a thread cannot be interrupted): its
        outcome is dropped.

        Raises:
            RuntimeError: the pool is closed, or was first used by another event loop.
        """
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("the worker threads are closed")
        if self._loop is not loop:
            self._bind(loop)
        future: asyncio.Future[T] = loop.create_future()
        job: _Job = (future, call, args)
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
                worker.job = job
                os.write(worker.wake_write, b"\0")
            elif self._started < self._count:
                self._start(job)
            else:
                self._waiting.append(job)
        return future

    def close(self) -> None:
        """Refuse new calls, cancel those still waiting for a thread, let idle threads end.

        Calls running go on in their threads; their outcome is dropped. Call on the loop.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiting, self._waiting = list(self._waiting), collections.deque()
            idle, self._idle = self._idle, []
            if self._loop is not None:
                self._loop.remove_reader(self._done_read)
                os.close(self._done_read)
                os.close(self._done_write)
        for future, _, _ in waiting:
            future.cancel()
        for worker in idle:
            os.write(worker.wake_write, b"\0")  # with no job: the thread ends

    def _start(self, job: _Job) -> None:
        """Start one more thread, for ``job`` (self._lock held). Raises OSError when no pipe
        can be made (too many open files): the caller's call fails, nothing is left behind."""
        worker = _Thread()
        name = f"{self._name}_{self._started}"
        try:
            threading.Thread(target=self._serve, args=(worker, job), name=name, daemon=True).start()
        except BaseException:
            worker.close()
            raise
        self._started += 1

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None:
            raise RuntimeError("these worker threads serve another event loop")
        self._done_read, self._done_write = os.pipe()
        os.set_blocking(self._done_read, False)
        os.set_blocking(self._done_write, False)
        loop.add_reader(self._done_read, self._deliver)
        self._loop = loop

    def _deliver(self) -> None:
        """On the loop: hand each finished call's outcome to its caller."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._done_read, 4096)
        while self._done:
            future, returned, value = self._done.popleft()
            if future.cancelled():
                continue
            if returned:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _serve(self, me: _Thread, job: _Job | None) -> None:
        """A worker thread: run jobs until closed, sleeping on its own pipe in between."""
        try:
            while job is not None:
                future, call, args = job
                try:
                    outcome: _Outcome = (future, True, call(*args))
                except StopIteration as exc:  # an asyncio future cannot hold one
                    error = RuntimeError("a worker call raised StopIteration")
                    error.__cause__ = exc
                    outcome = (future, False, error)
                except BaseException as exc:  # handed to the caller, as an executor does
                    outcome = (future, False, exc)
                with self._lock:
                    if self._closed:
                        return
                    self._done.append(outcome)
                    with contextlib.suppress(BlockingIOError):  # full: the loop is woken anyway
                        os.write(self._done_write, b"\0")
                    if self._waiting:
                        job = self._waiting.popleft()
                        continue
                    self._idle.append(me)
                os.read(me.wake_read, 1)
                job, me.job = me.job, None
        finally:
            me.close()
