"""The client's results: what the daemon answered, as plain frozen dataclasses.

Stdlib only, like the rest of the client; `helperd_client.client` re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Credential", "Hello", "RecordInfo", "Status"]


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Credential:
    """A credential as ``get`` returns it. Its ``repr`` never shows the password."""

    name: str
    username: str
    password: str = field(repr=False)
    kind: str
    urls: tuple[str, ...]
    expires_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Credential:
        """Build from a ``get`` result."""
        return cls(
            name=data["name"],
            username=data["username"],
            password=data["password"],
            kind=data["kind"],
            urls=tuple(data["urls"]),
            expires_at=_time(data["expires_at"]),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
        )


@dataclass(frozen=True)
class RecordInfo:
    """A record's public facts, as ``list`` and ``set`` return them."""

    name: str
    username: str
    kind: str
    urls: tuple[str, ...]
    expires_at: datetime | None
    expired: bool
    created_at: datetime
    updated_at: datetime
    provider: str | None = None
    """A provider record's preset (``expires_at`` is then its current token's)."""
    provider_error: str | None = None
    """A provider record's last failed run, scrubbed; None when the last run worked."""
    source: str = "local"
    """``local``, or ``upstream`` for a record read from the upstream secret engine."""

    @property
    def url(self) -> str | None:
        """The first URL, or None."""
        return self.urls[0] if self.urls else None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RecordInfo:
        """Build from one element of a ``list`` result."""
        return cls(
            name=data["name"],
            username=data["username"],
            kind=data["kind"],
            urls=tuple(data["urls"]),
            expires_at=_time(data["expires_at"]),
            expired=data["expired"],
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            provider=data.get("provider"),
            provider_error=data.get("provider_error"),
            source=data.get("source", "local"),
        )


@dataclass(frozen=True)
class Status:
    """The daemon's state, as ``status`` returns it."""

    version: str
    protocol: int
    pid: int
    store: str
    store_reason: str
    initialized: bool
    locked: bool
    lockable: bool
    repositories: int | None
    records: int | None
    idle_lock_seconds: float | None
    # Defaults: a daemon older than these fields still answers status.
    kdf_runs: int = 0
    passphrase_retry_in: float = 0.0
    memory_locked: bool = False
    providers: int | None = None
    providers_failing: list[str] = field(default_factory=list)
    upstream: dict[str, Any] | None = None
    """The upstream secret engine's last refresh, result and cache age (None: none)."""
    event_loop: str = "asyncio"
    store_error: str | None = None
    """Why the store cannot be opened now, with what fixes it (None: nothing stands in the way)."""


@dataclass(frozen=True)
class Hello:
    """Who answered: the daemon's name, protocol and version, and the ops it serves."""

    daemon: str
    protocol: int
    version: str
    ops: tuple[str, ...]
