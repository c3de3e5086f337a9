"""Protocol v1's results: the pydantic model of every answer the daemon sends.

`helperd.core.protocol` re-exports every name here, next to the requests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from helperd_client.wire import PROTOCOL_VERSION
from pydantic import Field, SecretStr, SerializationInfo, field_serializer

from helperd.core.model_base import _Model, _reveal
from helperd.core.record import Kind, Record
from helperd.core.upstream_record import source_of

__all__ = [
    "Ack",
    "CertPathResult",
    "DeleteResult",
    "GetResult",
    "HelloResult",
    "ListResult",
    "MigrateResult",
    "RecordInfo",
    "RecordKeyInfo",
    "Result",
    "SetResult",
    "StatusResult",
    "UpstreamResult",
    "UpstreamSettingsInfo",
    "UpstreamState",
    "UpstreamTest",
]


class HelloResult(_Model):
    """Who answers: the daemon's protocol, version and the ops it serves."""

    daemon: Literal["helperd"] = "helperd"
    protocol: int = PROTOCOL_VERSION
    version: str
    ops: list[str]


class UpstreamState(_Model):
    """The upstream secret engine's cache: its state, the last refresh and its result.

    Times are ISO 8601 text; ``result`` is ``ok`` or a reason (``engine_down``, ``tls``,
    ``denied``, ``approle``, ``token``, ``not_renewable``, ``kv_version``, ``secret_file``);
    ``message`` says what failed and what to do; never a secret.
    """

    address: str
    state: Literal["never", "fresh", "due", "expired"]
    records: int
    last_refresh: str | None
    result: str | None
    message: str | None
    skipped: list[str]
    warnings: list[str]
    refreshed_at: str | None
    cache_age_seconds: float | None


class UpstreamSettingsInfo(_Model):
    """The ``[upstream]`` settings: file paths, never what the files hold."""

    address: str
    mount: str
    prefix: str
    namespace: str | None
    auth: Literal["token", "approle"]
    token_file: str | None
    role_id_file: str | None
    secret_id_file: str | None
    ca_file: str | None
    ttl_seconds: float
    max_stale_seconds: float


class UpstreamTest(_Model):
    """How a test of the upstream went: ``secrets`` read, or the failure's reason and message."""

    ok: bool
    reason: str | None
    message: str
    secrets: int | None = None
    skipped: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class StatusResult(_Model):
    """The daemon's state. ``repositories`` and ``records`` are null while locked."""

    version: str
    protocol: int = PROTOCOL_VERSION
    pid: int
    store: Literal["file", "keyring"]
    store_reason: str
    initialized: bool
    locked: bool
    lockable: bool
    repositories: int | None
    records: int | None
    idle_lock_seconds: float | None
    kdf_runs: int = 0
    """Argon2id runs on a passphrase since the daemon started."""
    passphrase_retry_in: float = 0.0
    """Seconds until a passphrase is checked again (0 when the gate is open)."""
    memory_locked: bool = False
    """Whether the key's memory is locked against swap (mlock)."""
    event_loop: str = "asyncio"
    """The daemon's event loop: ``asyncio``, or ``uvloop`` when the ``fast`` extra is installed."""
    providers: int | None = None
    """Provider records the daemon keeps fresh (null while locked)."""
    providers_failing: list[str] = Field(default_factory=list)
    """Names of the provider records whose last run failed."""
    upstream: UpstreamState | None = None
    """The upstream secret engine's last refresh, its result and the cache's age; null when
    no ``[upstream]`` is configured (docs/fleet.md)."""
    store_error: str | None = None
    """Why the store cannot be opened now (a key file it cannot read, a damaged store file),
    with what fixes it; null when nothing stands in the way."""


class RecordInfo(_Model):
    """A record's public facts: never its password."""

    name: str
    username: str
    kind: Kind
    urls: list[str]
    url: str | None
    expires_at: datetime | None
    expired: bool
    created_at: datetime
    updated_at: datetime
    provider: str | None = None
    """A provider record's preset (``codeartifact``, ``gar``, ``azure`` or ``command``);
    its ``expires_at`` is then its current token's."""
    provider_error: str | None = None
    """A provider record's last failed run, scrubbed (null when the last run worked)."""
    source: Literal["local", "upstream"] = "local"
    """Where the record comes from: the local store, or the upstream secret engine."""

    @classmethod
    def of(cls, record: Record, now: datetime) -> RecordInfo:
        """Describe ``record`` as seen at ``now``."""
        facts = record.provider
        return cls(
            name=record.name,
            username=record.username,
            kind=record.kind,
            urls=list(record.urls),
            url=record.urls[0] if record.urls else None,
            expires_at=record.expires_at if facts is None else facts.expires_at,
            expired=record.expired(now),
            created_at=record.created_at,
            updated_at=record.updated_at,
            provider=None if facts is None else facts.spec.preset,
            source=source_of(record),
        )


class GetResult(_Model):
    """A credential: the record's facts and its password.

    The times are null for an entry read from the OS keyring that helperd does not hold.
    """

    name: str
    username: str
    password: SecretStr
    kind: Kind
    urls: list[str]
    expires_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @field_serializer("password", when_used="json")
    def _password(self, value: SecretStr, info: SerializationInfo) -> str:
        return _reveal(value, info)


class SetResult(_Model):
    """The stored record's facts, and whether it replaced an earlier one."""

    record: RecordInfo
    replaced: bool


class DeleteResult(_Model):
    """How many records were deleted."""

    deleted: int


class RecordKeyInfo(_Model):
    """A record's key: where a page of ``list`` starts after, and its ``next``."""

    name: Annotated[str, Field(max_length=4096)]  # protocol.Text
    username: Annotated[str, Field(max_length=4096)]


class ListResult(_Model):
    """The records asked for, sorted by name and username; ``next`` is the key to ask after
    for the next page (null when there is none)."""

    records: list[RecordInfo]
    next: RecordKeyInfo | None = None


class Ack(_Model):
    """The answer to ``init``, ``lock``, ``unlock`` and ``passwd``: the lock state after it."""

    locked: bool


class MigrateResult(_Model):
    """How many records moved, and the store that now holds them."""

    moved: int
    store: Literal["file", "keyring"]
    store_reason: str


class CertPathResult(_Model):
    """Where the certificate file of ``name`` is, and whether it is there now.

    ``present`` is false only when the daemon writes no file (``reason`` says why: no tmpfs
    and ``cert_files_on_disk`` not set, or the folder is not safe); the path stays the same.
    """

    name: str
    path: str
    present: bool
    reason: str | None = None


class UpstreamResult(_Model):
    """The upstream secret engine: its settings, its state, and a test's outcome.

    ``configured`` is false (and the rest null) when config.toml has no ``[upstream]``.
    ``test`` is set by the ``test`` action: ``ok``, ``message``, ``reason``, ``secrets``,
    ``skipped`` and ``warnings``.
    """

    configured: bool
    settings: UpstreamSettingsInfo | None = None
    status: UpstreamState | None = None
    test: UpstreamTest | None = None


Result = (
    HelloResult
    | StatusResult
    | GetResult
    | SetResult
    | DeleteResult
    | ListResult
    | Ack
    | MigrateResult
    | CertPathResult
    | UpstreamResult
)
