"""helperd's real core in-process, for unit tests of its clients (helperctl, import-poetry).

`CoreClient` is a real `helperd_client.Client` whose requests, instead of crossing a socket,
are parsed by the daemon's protocol models, served by a real `helperd.core.service.Service`
over a `MemoryStore`, and answered as the daemon answers them (the same response lines). So a
test of helperctl sees the daemon's own lookup rules, defaults and errors, never a stand-in's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helperd_client import Client
from helperd_client.errors import BadPassphraseError, HelperdError, LockedError
from helperd_client.wire import decode_line
from pydantic import SecretStr

from helperd.core.protocol import RequestError, parse_request, render_error, render_ok
from helperd.core.record import Record
from helperd.core.service import Service
from helperd.core.store import Store, StoreState

__all__ = ["CoreClient", "MemoryStore"]


class MemoryStore(Store):
    """A lockable store in memory whose passphrase is 'right'."""

    kind = "file"

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], tuple[Record, SecretStr]] = {}
        self._unlocked = True
        self._records: tuple[Record, ...] = ()

    @property
    def state(self) -> StoreState:
        return StoreState.UNLOCKED if self._unlocked else StoreState.LOCKED

    @property
    def lockable(self) -> bool:
        return True

    @property
    def needs_passphrase(self) -> bool:
        return True

    def _check(self) -> None:
        if not self._unlocked:
            raise LockedError("locked: run `helperctl unlock`")

    def records(self) -> tuple[Record, ...]:
        self._check()
        # The same tuple until the records change, as Store.records promises.
        records = tuple(self.data[key][0] for key in sorted(self.data))
        if records != self._records:
            self._records = records
        return self._records

    def password(self, record: Record) -> SecretStr:
        self._check()
        return self.data[record.key][1]

    def put(self, record: Record, password: SecretStr) -> None:
        self._check()
        self.data[record.key] = (record, password)

    def remove(self, keys: list[tuple[str, str]]) -> None:
        for key in keys:
            self.data.pop(key, None)

    def unlock(self, passphrase: SecretStr | None) -> None:
        if passphrase is None or passphrase.get_secret_value() != "right":
            raise BadPassphraseError("wrong passphrase")
        self._unlocked = True

    def lock(self) -> None:
        self._unlocked = False


class CoreClient(Client):
    """A `Client` served in-process by a real `Service` over a `MemoryStore`, at ``clock()``.

    Args:
        clock: the time the service is asked at (default: now).
    """

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(Path("/nonexistent/helperd.sock"), timeout=5.0)
        self.memory = MemoryStore()
        self.service = Service(self.memory, store_reason="in-memory test store")
        self.clock = clock or (lambda: datetime.now(UTC))

    def hold(self, record: Record, password: str) -> None:
        """Put ``record`` in the store as it is (an expired one too: ``set`` would refuse it)."""
        self.memory.data[record.key] = (record, SecretStr(password))

    def _send(self, line: bytes, deadline: float) -> dict[str, Any]:
        # What the daemon's server does with a line, minus the socket.
        try:
            request_id, request = parse_request(line)
        except RequestError as exc:
            return decode_line(render_error(exc.request_id, exc.error))
        try:
            return decode_line(render_ok(request_id, self.service.handle(request, self.clock())))
        except HelperdError as exc:
            return decode_line(render_error(request_id, exc))
