"""The daemon's provider desk with a fake provider and a fake service: where a new token is
stored from, what a get of a provider record not loaded yet may serve, and the loading race.
(The real daemon, store and commands: tests/integration/test_providers.py.)"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helperd_client.errors import StoreUnavailableError
from pydantic import SecretStr

from helperd.core.protocol import GetRequest, GetResult
from helperd.core.provider import ProviderSpec, command
from helperd.core.provider_output import Minted
from helperd.core.provider_record import ProviderFacts
from helperd.core.record import Kind
from helperd.daemon.providers import ProviderDesk
from helperd.daemon.workers import Workers

SPEC = command(["/bin/true"], username="aws")
KEY = ("corp", "aws")
GET = GetRequest(v=1, id=1, op="get", name="corp")


class FakeService:
    """Records where and what `store_minted` was called with."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, Minted]] = []

    def store_minted(self, key: tuple[str, str], spec: ProviderSpec, minted: Minted) -> bool:
        assert (KEY, SPEC) == (key, spec)
        self.stored.append((threading.current_thread().name, minted))
        return True


def minted(at: datetime, lifetime: timedelta = timedelta(hours=1)) -> Minted:
    """A token minted at ``at``."""
    return Minted(SecretStr(f"tok-{at.timestamp()}"), at + lifetime, at)


def result(expires_at: datetime | None) -> GetResult:
    """What the service answers for corp, the stored token in it."""
    now = datetime.now(UTC)
    return GetResult(
        name="corp",
        username="aws",
        password=SecretStr("stored-token"),
        kind=Kind.TOKEN,
        urls=[],
        expires_at=expires_at,
        created_at=now,
        updated_at=now,
    )


def desk_with(service: Any, run: Any) -> tuple[ProviderDesk, Workers]:
    """A desk over ``service`` whose provider runs are ``run``."""
    workers = Workers(1)
    return ProviderDesk(service, workers, run=run), workers


def test_a_minted_token_is_stored_from_a_worker_thread() -> None:
    """A run's new token is stored through the service in a worker thread, never on the event
    loop, and becomes the facts the desk keeps (a reload then reads it as is)."""
    service = FakeService()
    fresh = minted(datetime.now(UTC))

    async def run(spec: ProviderSpec) -> Minted:
        return fresh

    async def scenario() -> Minted:
        desk, workers = desk_with(service, run)
        old = minted(datetime.now(UTC) - timedelta(hours=2))  # expired: a get runs the provider
        desk.refresher.add(KEY, "corp", SPEC, old)
        desk._kept[KEY] = ProviderFacts.of(SPEC, old)
        answered = await desk.after(GET, result(old.expires_at))
        assert isinstance(answered, GetResult)
        assert ProviderFacts.of(SPEC, fresh) == desk._kept[KEY]
        workers.close()
        return Minted(answered.password, answered.expires_at, fresh.minted_at)  # type: ignore[arg-type]

    answered = asyncio.run(scenario())

    assert fresh == answered
    assert [("helperd-worker_0", fresh)] == service.stored


@pytest.mark.parametrize("past", [True, False])
def test_a_record_not_loaded_yet_never_gets_an_expired_token(past: bool) -> None:
    """Before the desk has loaded a provider record (just started or unlocked), its get is
    answered with the stored token while valid, and refused once that has expired."""
    now = datetime.now(UTC)
    expires = now - timedelta(seconds=1) if past else now + timedelta(minutes=5)

    async def scenario() -> object:
        desk, workers = desk_with(FakeService(), None)
        try:
            return await desk.after(GET, result(expires))
        finally:
            workers.close()

    if past:
        with pytest.raises(StoreUnavailableError) as refused:
            asyncio.run(scenario())
        assert "provider for corp has no valid token" == refused.value.message
    else:
        assert result(expires).password == asyncio.run(scenario()).password  # type: ignore[attr-defined]
