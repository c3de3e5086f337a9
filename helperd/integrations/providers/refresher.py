"""Keeping provider tokens fresh on the daemon's event loop.

`Refresher` holds, per provider record, the spec, the token last minted and the pure rule's
state (`helperd.core.refresh.Refresh`), and does what the rule decides: serves the cached token,
starts one run per record at a time (single flight), lets gets wait for it at most the
rule's bound, and starts runs ahead in the background (`Refresher.run_ahead`). A failed run
is logged with its scrubbed message and reported by `Refresher.health`; the token never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from helperd_client.errors import NotFoundError, StoreUnavailableError

from helperd.core.provider import ProviderSpec
from helperd.core.provider_output import Minted, ProviderError
from helperd.core.refresh import Action, Health, Refresh, RefreshPolicy
from helperd.integrations.providers.runner import run_provider

__all__ = ["AHEAD_INTERVAL", "Refresher", "RunProvider"]

log = logging.getLogger("helperd.provider")

RunProvider = Callable[[ProviderSpec], Awaitable[Minted]]
"""Runs a provider once: `helperd.integrations.providers.runner.run_provider` by default."""

OnMinted = Callable[[Hashable, ProviderSpec, Minted], Awaitable[None]]

AHEAD_INTERVAL = 5.0
"""Seconds between two looks for records to refresh ahead (`Refresher.run_ahead`)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class _Entry:
    key: Hashable
    name: str
    spec: ProviderSpec
    state: Refresh
    token: Minted | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Refresher:
    """The provider records the daemon keeps fresh, each under its key (say (name, username)).

    Not thread-safe: use it from the event loop only.
    """

    def __init__(
        self,
        *,
        run: RunProvider = run_provider,
        clock: Callable[[], datetime] = _utc_now,
        policy: RefreshPolicy | None = None,
        on_minted: OnMinted | None = None,
    ) -> None:
        """Keep nothing yet.

        Args:
            run: runs a provider once (a fake in tests).
            clock: the time now (aware); a parameter so that tests need no frozen clock.
            policy: the rule's bounds; None is the defaults users get.
            on_minted: awaited after each successful run, to store the new token (the store
                keeps it encrypted or in the OS keyring); a failure there is logged, and the
                token is served from memory all the same.
        """
        self._run = run
        self._clock = clock
        self._policy = policy or RefreshPolicy()
        self._on_minted = on_minted
        self._entries: dict[Hashable, _Entry] = {}

    def add(self, key: Hashable, name: str, spec: ProviderSpec, token: Minted | None) -> None:
        """Keep the record ``key`` fresh, starting from ``token`` (the stored one, or None).

        Adding a key again replaces it: a run of its old spec is stopped.
        """
        self.remove(key)
        state = Refresh(name, _min_lifetime(spec), self._policy)
        if token is not None:
            state.seed(token.expires_at, token.minted_at)
        self._entries[key] = _Entry(key, name, spec, state, token)

    def remove(self, key: Hashable) -> None:
        """Forget the record ``key`` and stop its run, if any."""
        entry = self._entries.pop(key, None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()

    async def mint(self, spec: ProviderSpec) -> Minted:
        """Run ``spec`` once, outside any record (``set`` checks a provider this way).

        Raises:
            ProviderError: the run failed; nothing is kept.
        """
        return await self._run(spec)

    async def get(self, key: Hashable) -> Minted:
        """The token to hand out for ``key`` now: cached, or minted, waiting at most the bound.

        Raises:
            NotFoundError: ``key`` is not a provider record kept here.
            StoreUnavailableError: no valid token: a run is still going on after the wait
                ("provider for NAME still running"), or the last one failed.
        """
        entry = self._entries.get(key)
        if entry is None:
            raise NotFoundError("no record kept by a provider under that name")
        now = self._clock()
        token = self.cached(key, now)
        if token is not None:
            return token
        decision = entry.state.decide(now)
        if decision.start_run:
            self._start(entry)
        if decision.action is Action.WAIT_FOR_RUN:
            assert entry.task is not None  # the rule waits only on a run that exists
            await asyncio.wait({entry.task}, timeout=decision.wait)  # never cancels the run
            decision = entry.state.decide(self._clock(), waited=True)
            if decision.start_run:  # a retry the rule starts in the background
                self._start(entry)
        if decision.error is not None:
            raise decision.error
        return self._served(entry)

    def cached(self, key: Hashable, now: datetime) -> Minted | None:
        """The cached token of ``key`` when the rule serves it as is at ``now``, else None.

        What `get` answers without `Refresh.decide`'s arithmetic: no run due or going on, no
        failure, ``now`` before `Refresh.serve_until` (which lies before the token's expiry, so
        an expired token is never returned). Counts as a read, so that a record read only this
        way is still refreshed ahead. Never waits: the daemon's hot path calls it on the loop.
        """
        entry = self._entries.get(key)
        if entry is None or entry.token is None:
            return None
        until = entry.state.serve_until()
        if until is None or now >= until:
            return None
        entry.state.read(now)
        return entry.token

    def start_ahead(self) -> int:
        """Start the runs ahead that are due now (records read lately, tokens near their
        minimum); return how many started."""
        now, started = self._clock(), 0
        for entry in list(self._entries.values()):
            if entry.state.claim_ahead(now):
                self._start(entry)
                started += 1
        return started

    async def run_ahead(self, interval: float = AHEAD_INTERVAL) -> None:
        """Look for runs ahead every ``interval`` seconds, until cancelled (a daemon task)."""
        while True:
            self.start_ahead()
            await asyncio.sleep(interval)

    def health(self, key: Hashable) -> Health:
        """The record's state for ``status``, ``list`` and ``doctor``.

        Raises:
            NotFoundError: ``key`` is not a provider record kept here.
        """
        entry = self._entries.get(key)
        if entry is None:
            raise NotFoundError("no record kept by a provider under that name")
        return entry.state.health(self._clock())

    async def aclose(self) -> None:
        """Stop every run (their process groups are killed) and wait for them to end."""
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _served(self, entry: _Entry) -> Minted:
        token = entry.token
        # The rule said serve; never hand out an expired token even if the two disagree.
        if token is None or token.expires_at <= self._clock():
            raise StoreUnavailableError(f"provider for {entry.name} has no valid token")
        return token

    def _start(self, entry: _Entry) -> None:
        entry.task = asyncio.get_running_loop().create_task(self._refresh(entry))

    async def _refresh(self, entry: _Entry) -> None:
        # The state is updated here, before the task is done, so a waiter that wakes on the
        # task's end already sees the new token or the failure.
        try:
            minted = await self._run(entry.spec)
        except ProviderError as exc:
            entry.state.failed(self._clock(), exc.message)
            log.warning("provider for %s failed: %s", entry.name, exc.message)
            return
        except asyncio.CancelledError:
            entry.state.failed(self._clock(), "the run was stopped")
            raise
        except Exception as exc:  # a bug: keep the loop alive; the text may hold anything
            entry.state.failed(self._clock(), f"internal error ({type(exc).__name__})")
            log.error("provider for %s: internal error %s", entry.name, type(exc).__name__)
            return
        entry.token = minted
        entry.state.succeeded(minted.expires_at, minted.minted_at)
        if self._on_minted is not None:
            try:
                await self._on_minted(entry.key, entry.spec, minted)
            except Exception as exc:
                log.warning("could not store the token of %s: %s", entry.name, type(exc).__name__)


def _min_lifetime(spec: ProviderSpec) -> timedelta:
    return timedelta(seconds=spec.min_lifetime)
