"""The daemon's upstream refresh task: the first refresh at start, then one each time the
staleness rule says one is due (``ttl`` after a success, sooner after a failure).

Each refresh runs in a thread of its own, never on the event loop: a get keeps being answered
from the current snapshot while it runs, and the new snapshot is indexed in that thread
before the event loop sees it. The thread is a daemon thread, so a refresh stuck on a slow
engine (each HTTP call is bounded anyway) never holds up the daemon's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from helperd.core.config import Settings
from helperd.core.service import Service
from helperd.upstream.keeper import Keeper

__all__ = ["attach_upstream", "keep_fresh"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_RETRY_AFTER_BUG = 60.0
"""Seconds before the task tries again after an error no refresh should raise."""

_LEAST_WAIT = 0.2
"""Seconds: the shortest sleep between two looks at the rule (a clock step is no busy loop)."""


def attach_upstream(settings: Settings, service: Service) -> Keeper | None:
    """Give ``service`` the ``[upstream]`` of ``settings``; None when there is none."""
    if settings.upstream is None:
        return None
    keeper = Keeper(settings.upstream)
    keeper.attach(service)
    keeper.load_saved()  # before serving: a restart while the engine is down serves it at once
    service.upstream = keeper
    service.prime()
    log.info("upstream secret engine %s: first refresh under way", settings.upstream.address)
    return keeper


async def keep_fresh(keeper: Keeper, service: Service) -> None:
    """Refresh now, then whenever one is due, until cancelled."""
    while True:
        now = datetime.now(UTC)
        if keeper.staleness.refresh_due(keeper.cache, now):
            try:
                await in_thread(lambda: _refresh(keeper, service))
            except Exception:  # the task must outlive a bug: log it, and try again later
                log.exception("upstream refresh task: unexpected error")
                await asyncio.sleep(_RETRY_AFTER_BUG)
            continue
        due = keeper.staleness.next_refresh(keeper.cache)
        wait = _LEAST_WAIT if due is None else (due - now).total_seconds()
        await asyncio.sleep(max(_LEAST_WAIT, wait))


def _refresh(keeper: Keeper, service: Service) -> None:
    keeper.refresh()
    service.prime()  # index the new snapshot here, not on the event loop


async def in_thread(work: Callable[[], _T]) -> _T:
    """Run ``work`` in a new daemon thread and wait for it without blocking the event loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as exc:  # handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed during a shutdown
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="helperd-upstream", daemon=True).start()
    return await done
