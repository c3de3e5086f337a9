"""Warm gets of provider records answered from memory (`ProviderDesk.answer_hot`): the daemon's
server in-process, a real service over an in-memory store, a fake provider and a clock the test
moves. A get served the full way is counted by its `parse_request` call; a hot one makes none.
(The real daemon and a real provider command: tests/integration/test_providers.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helperd_client.wire import decode_line
from pydantic import SecretStr

from helperd.core.protocol import DeleteRequest
from helperd.core.provider import ProviderSpec, command
from helperd.core.provider_output import Minted, ProviderError
from helperd.core.record import Record
from helperd.core.service import Service
from helperd.daemon import server as server_module
from helperd.daemon.providers import ProviderDesk
from helperd.daemon.server import Server
from tests.unit.test_service import InMemory

SPEC = command(["/bin/true"], username="aws")
KEY = ("corp", "aws")
GET = b'{"v":1,"id":7,"op":"get","name":"corp"}\n'
SET = {"v": 1, "id": 1, "op": "set", "name": "corp", "provider": SPEC.model_dump(mode="json")}
LIFETIME = timedelta(hours=1)
SERVE_FOR = LIFETIME - timedelta(minutes=10) - timedelta(minutes=2)
"""How long the rule serves a token as is: its life less the default minimum and lead."""


class Daemon:
    """The server's answers to lines, with the time and the provider under the test's hand."""

    def __init__(self, service: Service) -> None:
        self.now = datetime.now(UTC)
        self.service = service
        self.server = Server(service, workers=1)
        self.desk = ProviderDesk(
            service, self.server._workers, run=self._run, clock=lambda: self.now
        )
        self.server.providers = self.desk
        self.runs = 0
        self.fail = False
        self.parsed = 0

    async def _run(self, spec: ProviderSpec) -> Minted:
        self.runs += 1
        if self.fail:
            raise ProviderError("mint exited with status 3")
        return Minted(SecretStr(f"tok-{self.runs}-" + "x" * 24), self.now + LIFETIME, self.now)

    def token(self, run: int) -> str:
        """The token the provider's ``run``-th run printed."""
        return f"tok-{run}-" + "x" * 24

    async def line(self, message: dict[str, Any]) -> dict[str, Any]:
        """The answer to ``message``, decoded."""
        return decode_line(await self.server._answer(json.dumps(message).encode() + b"\n"))

    async def get(self) -> tuple[bytes, bool]:
        """The answer line to ``get corp``, and whether it was served hot."""
        before = self.parsed
        answer = await self.server._answer(GET)
        return answer, before == self.parsed

    async def password(self) -> tuple[str, bool]:
        """The password ``get corp`` answers (or the error code), and whether served hot."""
        answer, hot = await self.get()
        message = decode_line(answer)
        return (message["result"]["password"] if message["ok"] else message["error"]["code"]), hot


Scenario = Callable[[Daemon], Awaitable[Any]]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run a scenario against a daemon with a provider record ``corp`` set (token 1)."""

    def go(
        scenario: Scenario,
        idle_lock: timedelta | None = timedelta(minutes=15),
        store: InMemory | None = None,
    ) -> Any:
        service = Service(store or InMemory(), store_reason="test", idle_lock=idle_lock)

        async def main() -> Any:
            daemon = Daemon(service)
            monkeypatch.setattr(server_module, "_now", lambda: daemon.now)
            parse = server_module.parse_request

            def counted(line: bytes) -> Any:
                daemon.parsed += 1
                return parse(line)

            monkeypatch.setattr(server_module, "parse_request", counted)
            done = await daemon.line(SET)
            assert done["ok"], done
            try:
                return await scenario(daemon)
            finally:
                await daemon.desk.aclose()
                daemon.server._workers.close()

        return asyncio.run(main())

    return go


def test_a_warm_get_is_served_hot_with_the_full_paths_bytes(run: Callable[..., Any]) -> None:
    """The first get of a provider record goes the full way; the next ones are served from
    memory, byte for byte the same answer, with the same token and no provider run."""

    async def scenario(daemon: Daemon) -> None:
        first, first_hot = await daemon.get()
        second, second_hot = await daemon.get()
        assert (False, True) == (first_hot, second_hot)
        assert first == second
        assert daemon.token(1) == decode_line(second)["result"]["password"]
        assert 1 == daemon.runs
        assert daemon.token(1) not in repr(daemon.desk._warm) + repr(daemon.desk)

    run(scenario)


def test_a_token_the_refresher_minted_is_served_next(run: Callable[..., Any]) -> None:
    """Below the minimum a get runs the provider and gets the new token, and the next gets are
    served hot with it; a new token the refresher holds before the store has it (same store
    version) is served at once, never the old one from memory."""

    async def scenario(daemon: Daemon) -> None:
        assert (daemon.token(1), False) == await daemon.password()
        assert (daemon.token(1), True) == await daemon.password()
        daemon.now += LIFETIME - timedelta(minutes=9)  # below the 10 minutes' minimum
        assert (daemon.token(2), False) == await daemon.password()
        assert 2 == daemon.runs
        assert (daemon.token(2), False) == await daemon.password()  # stored since: a new version
        assert (daemon.token(2), True) == await daemon.password()
        newer = Minted(SecretStr("tok-newer-" + "y" * 24), daemon.now + LIFETIME, daemon.now)
        daemon.desk.refresher.add(KEY, "corp", SPEC, newer)
        assert ("tok-newer-" + "y" * 24, False) == await daemon.password()

    run(scenario, idle_lock=None)  # 50 minutes without a use: no idle lock in the way


def test_past_the_serve_window_the_hot_answer_is_not_used(run: Callable[..., Any]) -> None:
    """Up to the rule's serve window a warm get is hot; from its end on it goes the full way
    (which starts the run ahead); with the provider failing, a token past its expiry is never
    served, from memory or otherwise."""

    async def scenario(daemon: Daemon) -> None:
        start = daemon.now
        await daemon.get()
        daemon.now = start + SERVE_FOR - timedelta(microseconds=1)
        assert (daemon.token(1), True) == await daemon.password()
        daemon.fail = True
        daemon.now = start + SERVE_FOR
        assert (daemon.token(1), False) == await daemon.password()  # served, a run ahead
        await asyncio.sleep(0)  # the run ahead fails
        assert 2 == daemon.runs
        daemon.now = start + LIFETIME
        assert ("store_unavailable", False) == await daemon.password()

    run(scenario, idle_lock=None)


@pytest.mark.parametrize(
    ("change", "answer"),
    [
        ({"op": "set", "name": "corp", "username": "aws", "password": "plain"}, "plain"),
        ({"op": "delete", "name": "corp"}, "not_found"),
        ({"op": "lock"}, "locked"),
    ],
)
def test_after_a_write_or_a_lock_the_warm_answer_is_gone(
    run: Callable[..., Any], change: dict[str, str], answer: str
) -> None:
    """After a set, a delete or a lock through the daemon, the old token is neither served nor
    kept in memory."""

    async def scenario(daemon: Daemon) -> None:
        await daemon.get()
        assert (daemon.token(1), True) == await daemon.password()
        assert (await daemon.line({"v": 1, "id": 2, **change}))["ok"]
        assert {} == daemon.desk._warm.answers
        assert (answer, False) == await daemon.password()

    run(scenario)


@pytest.mark.parametrize("change", ["delete", "idle lock"])
def test_a_store_change_the_desk_has_not_seen_yet_is_never_hidden(
    run: Callable[..., Any], change: str
) -> None:
    """A warm answer is served only from the store version it was found in, with the store
    open: a record deleted behind the desk's back, or the idle lock's time come, sends the
    get the full way before the desk has reloaded anything."""

    async def scenario(daemon: Daemon) -> None:
        await daemon.get()
        if change == "delete":
            daemon.service.handle(DeleteRequest(v=1, id=2, op="delete", name="corp"), daemon.now)
            expected = "not_found"
        else:
            daemon.now += timedelta(minutes=15)  # the default idle lock
            expected = "locked"
        assert (expected, False) == await daemon.password()

    run(scenario)


class Racing(InMemory):
    """A store whose records change once while a get reads a password (a write that lands
    between the get's lookup and its answer)."""

    during_read: Callable[[], None] | None = None

    def password(self, record: Record) -> SecretStr:
        found = super().password(record)
        if self.during_read is not None:
            change, self.during_read = self.during_read, None
            change()
        return found


def test_an_answer_found_before_a_change_is_not_kept_for_the_new_version(
    run: Callable[..., Any],
) -> None:
    """The store version a get's answer is kept under is taken before its lookup: when the
    record is deleted while the get is served, that answer is neither kept nor served again."""
    store = Racing()

    async def scenario(daemon: Daemon) -> None:
        store.during_read = lambda: store.remove([KEY])
        assert (daemon.token(1), False) == await daemon.password()  # found before the delete
        assert {} == daemon.desk._warm.answers
        assert ("not_found", False) == await daemon.password()

    run(scenario, store=store)


def test_refresh_ahead_counts_reads_served_hot(run: Callable[..., Any]) -> None:
    """A record read lately only through the hot path is still refreshed ahead in the
    background once its token nears the minimum."""

    async def scenario(daemon: Daemon) -> None:
        start = daemon.now
        await daemon.get()  # the last read the full way
        daemon.now = start + SERVE_FOR - timedelta(minutes=5)
        assert (daemon.token(1), True) == await daemon.password()
        daemon.now = start + SERVE_FOR + timedelta(seconds=1)  # 11 minutes after the full read
        assert 1 == daemon.desk.refresher.start_ahead()

    run(scenario, idle_lock=None)
