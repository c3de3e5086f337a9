"""What every helperctl command shares: the `Session` (click's context object) and the client.

The command modules take `Session` and `DaemonClient` from here, and `helperd.ctl.main`
registers them on the group, so no module imports the one that registers it.
Tests inject a client through `Session`: ``runner.invoke(cli, args, obj=Session(make_client=f))``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import click
from helperd_client import Client, Credential, Hello, RecordInfo, Status
from helperd_client.errors import LockedError, StoreUnavailableError

from helperd.ctl.cli_output import LOCKED, NO_STORE

__all__ = ["DaemonClient", "Session", "connect", "require_open"]


class DaemonClient(Protocol):
    """What helperctl needs of `helperd_client.Client` (tests pass a fake)."""

    @property
    def path(self) -> Path: ...
    def hello(self) -> Hello: ...
    def status(self) -> Status: ...
    def get(
        self,
        *,
        name: str | None = None,
        url: str | None = None,
        service: str | None = None,
        username: str | None = None,
    ) -> Credential: ...
    def set(
        self,
        name: str,
        password: str | None,
        *,
        username: str | None = None,
        kind: str = "basic",
        urls: builtins.list[str] | tuple[str, ...] | None = None,
        expires_at: datetime | None = None,
        provider: Mapping[str, Any] | None = None,
        upstream: bool = False,
    ) -> RecordInfo: ...
    def delete(self, name: str, username: str | None = None) -> int: ...
    def list(self) -> builtins.list[RecordInfo]: ...
    def init(self, passphrase: str | None) -> None: ...
    def lock(self) -> None: ...
    def unlock(self, passphrase: str | None) -> None: ...
    def passwd(self, old: str, new: str) -> None: ...
    def migrate(self, to: str, passphrase: str | None = None) -> tuple[int, str]: ...
    def request(self, op: str, **args: Any) -> dict[str, Any]: ...
    def close(self) -> None: ...
    def upstream(self, action: str) -> dict[str, Any]: ...


def connect(socket: Path | None, timeout: float | None) -> DaemonClient:
    """The real client: `Session.make_client` unless a test replaces it."""
    return Client(socket, timeout=timeout)


def require_open(client: DaemonClient) -> None:
    """Fail before a write, and before anyone types a secret for it, when the store cannot
    take one: it cannot be opened (exit 1, with the daemon's reason), there is none yet or it
    is locked (exit 5)."""
    state = client.status()
    if state.store_error is not None:
        raise StoreUnavailableError(f"the store cannot be opened: {state.store_error}")
    if not state.initialized:
        raise LockedError(NO_STORE)
    if state.locked:
        raise LockedError(LOCKED)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Session:
    """The click context object: how to reach the daemon, and the clock.

    Attributes:
        make_client: builds the client from ``--socket`` and ``--timeout``.
        clock: the current time, for relative ``--expires-at``.
    """

    make_client: Callable[[Path | None, float | None], DaemonClient] = connect
    clock: Callable[[], datetime] = _utcnow
    socket: Path | None = None
    timeout: float | None = None
    _client: DaemonClient | None = field(default=None, repr=False)

    def client(self) -> DaemonClient:
        """The client, made on first use and closed when the command ends."""
        if self._client is None:
            self._client = self.make_client(self.socket, self.timeout)
            click.get_current_context().find_root().call_on_close(self._client.close)
        return self._client
