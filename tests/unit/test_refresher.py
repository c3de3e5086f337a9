"""Keeping provider tokens fresh on an event loop: single flight, the threshold, failures,
expiry, runs ahead. Real runs of the fake provider; the clock is a parameter (real time
shifted by the test), never frozen around the loop."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helperd_client.errors import NotFoundError, StoreUnavailableError
from pydantic import SecretStr

from helperd.core.provider_output import Minted
from helperd.core.refresh import Action
from helperd.integrations.providers.refresher import Refresher
from tests.unit.test_provider_runner import fake, runs

KEY = ("ca", "aws")
OLD = "old-" + "0ld" * 8


class Clock:
    """The real time plus a shift the test moves."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


def old_token(lives: float, minted_ago: float = 0.0) -> Minted:
    """A token minted ``minted_ago`` seconds ago that expires ``lives`` seconds from now."""
    now = datetime.now(UTC)
    return Minted(
        SecretStr(OLD), now + timedelta(seconds=lives), now - timedelta(seconds=minted_ago)
    )


def test_single_flight_under_50_waiters(tmp_path: Path) -> None:
    """50 concurrent gets of a record with no token start one run, and all get its token."""

    async def scenario() -> list[str]:
        refresher = Refresher()
        refresher.add(KEY, "ca", fake(tmp_path, "sleep", "0.3"), None)
        got = await asyncio.gather(*(refresher.get(KEY) for _ in range(50)))
        await refresher.aclose()
        return [m.token.get_secret_value() for m in got]

    tokens = asyncio.run(scenario())
    assert 1 == runs(tmp_path)
    assert ["tok-1-" + "s3cr3t" * 5] * 50 == tokens


def test_refresh_at_the_threshold(tmp_path: Path) -> None:
    """Above the minimum life the cached token is served with no run; at the minimum one run
    mints a new token, which the get waits for and gets."""
    clock = Clock()

    async def scenario() -> tuple[str, int, str]:
        refresher = Refresher(clock=clock)
        spec = fake(tmp_path, "ok").replace(min_lifetime=600)
        refresher.add(KEY, "ca", spec, old_token(lives=3600, minted_ago=0))
        clock.shift = timedelta(seconds=3600 - 600 - 120 - 5)  # before the window ahead
        first = (await refresher.get(KEY)).token.get_secret_value()
        before = runs(tmp_path)
        clock.shift = timedelta(seconds=3600 - 600)
        second = (await refresher.get(KEY)).token.get_secret_value()
        await refresher.aclose()
        return first, before, second

    first, before, second = asyncio.run(scenario())
    assert (OLD, 0) == (first, before)
    assert ("tok-1-" + "s3cr3t" * 5, 1) == (second, runs(tmp_path))


def test_failure_keeps_the_last_good_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed run keeps the old token served while valid, is reported by health and the
    log (scrubbed), and once the token has expired the get is refused, never served it."""
    clock = Clock()
    caplog.set_level(logging.WARNING, logger="helperd.provider")

    async def scenario() -> tuple[str, str, str]:
        refresher = Refresher(clock=clock)
        refresher.add(KEY, "ca", fake(tmp_path, "fail"), old_token(lives=300, minted_ago=3300))
        served = (await refresher.get(KEY)).token.get_secret_value()  # due: runs, fails
        health = refresher.health(KEY)
        clock.shift = timedelta(seconds=300)
        with pytest.raises(StoreUnavailableError) as refused:
            await refresher.get(KEY)
        await refresher.aclose()
        return served, health.last_error or "", refused.value.message

    served, error, refused = asyncio.run(scenario())
    assert OLD == served
    assert 2 == runs(tmp_path)  # the backoff was over at expiry: the get retried once
    assert error.startswith("mint exited with status 3: denied: key [redacted]")
    assert refused.startswith("provider for ca failed: mint exited with status 3")
    for text in (error, refused, caplog.text):
        assert "s3cr3t" not in text
    assert "provider for ca failed" in caplog.text


def test_expired_never_served_while_running(tmp_path: Path) -> None:
    """With only an expired token and a slow run, the get waits its bound, then is refused
    with "still running"; the run goes on and the next get gets its token."""

    async def scenario() -> tuple[str, float, str]:
        refresher = Refresher()
        refresher.add(KEY, "ca", fake(tmp_path, "sleep", "2.5"), old_token(lives=-1, minted_ago=60))
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as refused:
            await refresher.get(KEY)
        waited = time.monotonic() - started
        while refresher.health(KEY).running:
            await asyncio.sleep(0.05)
        token = (await refresher.get(KEY)).token.get_secret_value()
        await refresher.aclose()
        return refused.value.message, waited, token

    message, waited, token = asyncio.run(scenario())
    assert "provider for ca still running" == message
    assert waited < 5 * 1.0  # no hang: the get's bound is 1 s
    assert ("tok-1-" + "s3cr3t" * 5, 1) == (token, runs(tmp_path))


def test_ahead_in_the_background(tmp_path: Path) -> None:
    """Shortly before the minimum, a get is served the cached token at once and one run
    starts behind it; its token is served next, with no second run."""
    clock = Clock()

    async def scenario() -> tuple[Action, str, str]:
        refresher = Refresher(clock=clock)
        refresher.add(KEY, "ca", fake(tmp_path, "sleep", "0.5"), old_token(lives=3600))
        clock.shift = timedelta(seconds=3600 - 600 - 60)
        first = (await refresher.get(KEY)).token.get_secret_value()
        running = refresher.health(KEY).running
        while refresher.health(KEY).running:
            await asyncio.sleep(0.05)
        second = (await refresher.get(KEY)).token.get_secret_value()
        await refresher.aclose()
        return Action.SERVE if running else Action.REFUSE_RUNNING, first, second

    running, first, second = asyncio.run(scenario())
    assert (Action.SERVE, OLD) == (running, first)
    assert ("tok-1-" + "s3cr3t" * 5, 1) == (second, runs(tmp_path))


def test_start_ahead_only_for_recent_reads(tmp_path: Path) -> None:
    """The background look starts a run for a record read lately and near its minimum,
    once per token, and none for a record nobody read."""
    clock = Clock()

    async def scenario() -> tuple[int, int, int]:
        refresher = Refresher(clock=clock)
        refresher.add(KEY, "ca", fake(tmp_path, "fail"), old_token(lives=3600))
        refresher.add(("idle", "u"), "idle", fake(tmp_path, "fail"), old_token(lives=3600))
        clock.shift = timedelta(seconds=3600 - 600 - 60 - 300)
        await refresher.get(KEY)  # read 5 min before the look
        clock.shift = timedelta(seconds=3600 - 600 - 60)
        started = refresher.start_ahead()
        while refresher.health(KEY).running:
            await asyncio.sleep(0.05)
        clock.shift += timedelta(seconds=30)  # past the backoff: still once per token
        again = refresher.start_ahead()
        await refresher.aclose()
        return started, again, runs(tmp_path)

    assert (1, 0, 1) == asyncio.run(scenario())


def test_unknown_key() -> None:
    """A key not kept here is not found."""
    with pytest.raises(NotFoundError, match=r"^no record"):
        asyncio.run(Refresher().get(("nope", "u")))


def test_on_minted_stores_each_new_token(tmp_path: Path) -> None:
    """Each successful run hands its token to on_minted (the daemon stores it)."""
    stored: list[tuple[object, str]] = []

    async def keep(key: object, _spec: object, minted: Minted) -> None:
        stored.append((key, minted.token.get_secret_value()))

    async def scenario() -> None:
        refresher = Refresher(on_minted=keep)
        refresher.add(KEY, "ca", fake(tmp_path, "ok"), None)
        await refresher.get(KEY)
        await refresher.aclose()

    asyncio.run(scenario())
    assert [(KEY, "tok-1-" + "s3cr3t" * 5)] == stored


@pytest.mark.parametrize(("lives", "min_lifetime"), [(3600, 600), (8, 0), (1, 600)])
def test_cached_serves_only_before_the_rules_window_and_counts_a_read(
    tmp_path: Path, lives: int, min_lifetime: int
) -> None:
    """The sync fast path (the daemon's hot path) hands out the very cached token only before
    serve_until, which lies before the expiry even with no minimum; a read through it alone
    makes the background look start a run ahead. Nothing for a key not kept here."""
    clock = Clock()

    async def scenario() -> tuple[bool, bool, bool, bool, bool, int]:
        refresher = Refresher(clock=clock)
        token = old_token(lives=lives, minted_ago=0)
        refresher.add(KEY, "ca", fake(tmp_path, "ok").replace(min_lifetime=min_lifetime), token)
        until = refresher._entries[KEY].state.serve_until()
        assert until is not None
        before = until - timedelta(microseconds=1)
        inside = refresher.cached(KEY, before) is token
        at_window = refresher.cached(KEY, until) is None
        at_expiry = refresher.cached(KEY, token.expires_at) is None
        unknown = refresher.cached(("nope", "u"), before) is None
        clock.shift = until - datetime.now(UTC) + timedelta(microseconds=1)
        started = refresher.start_ahead()  # read only through cached, just before
        await refresher.aclose()
        return until < token.expires_at, inside, at_window, at_expiry, unknown, started

    assert (True, True, True, True, True, 1) == asyncio.run(scenario())
