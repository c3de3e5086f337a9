"""The upstream cache's rules: when a refresh is due, how long cached secrets are served, and
how upstream records merge with local ones.

Pure: ``now`` is a parameter everywhere, and nothing here does I/O. The rules (docs/fleet.md):

- Staleness: the cache is *fresh* for ``ttl`` after the last successful refresh; then a refresh
  is *due*, and the cached secrets are still served, also while the engine is unreachable,
  until ``max_stale`` after that refresh; after that they are refused with
  ``store_unavailable``, naming the engine's address. A failed refresh is retried after
  ``min(ttl, RETRY)``.
- Merge: local records come first; a local record with the same name and username shadows the
  upstream one; the lookup's basic-before-token rule applies to what is left.
- A refresh replaces the whole set, so a secret deleted upstream disappears at the next
  successful refresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from helperd_client.errors import StoreUnavailableError
from pydantic import SecretStr

from helperd.core.config import UpstreamSettings
from helperd.core.record import Record
from helperd.core.upstream_record import UpstreamRecord, UpstreamSecret

__all__ = ["RETRY", "Freshness", "Refresh", "Staleness", "UpstreamCache", "merge"]

RETRY = timedelta(seconds=60)
"""The longest wait before a failed refresh is tried again."""

_DUMP_VERSION = 1


class Freshness(StrEnum):
    """Where the cache stands at a given time."""

    NEVER = "never"
    """No refresh has succeeded yet: nothing to serve."""
    FRESH = "fresh"
    """Within ``ttl`` of the last successful refresh."""
    DUE = "due"
    """Past ``ttl``, within ``max_stale``: served while a refresh is due (or failing)."""
    EXPIRED = "expired"
    """Past ``max_stale``: refused until a refresh succeeds."""


@dataclass(frozen=True)
class Refresh:
    """The outcome of one refresh attempt.

    Attributes:
        at: when it ended.
        ok: whether it succeeded (the cache then holds exactly what it read).
        message: on failure, what went wrong and what to do (never a secret); else empty.
        reason: on failure, a short code (``engine_down``, ``tls``, ``denied``, ...).
        skipped: one message per secret that was not a valid repository (not served).
        warnings: what will need attention (a token that cannot be renewed).
    """

    at: datetime
    ok: bool
    message: str = ""
    reason: str | None = None
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpstreamCache:
    """What the last successful refresh read, and how the last attempt went. Immutable: a
    refresh makes a new cache, so readers always see one consistent snapshot.

    Attributes:
        secrets: the upstream secrets, sorted by (name, username).
        refreshed_at: when the last successful refresh ended; None before the first.
        last: the last attempt, successful or not; None before the first.
    """

    secrets: tuple[UpstreamSecret, ...] = ()
    refreshed_at: datetime | None = None
    last: Refresh | None = None
    _passwords: dict[UpstreamRecord, SecretStr] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A frozen dataclass sets its derived fields through object.__setattr__.
        object.__setattr__(self, "_passwords", {s.record: s.password for s in self.secrets})

    @property
    def records(self) -> tuple[UpstreamRecord, ...]:
        """The cached records, without passwords."""
        return tuple(s.record for s in self.secrets)

    def password(self, record: UpstreamRecord) -> SecretStr:
        """The cached password of ``record``.

        Raises:
            KeyError: ``record`` is not in this cache (a refresh replaced it).
        """
        return self._passwords[record]

    def succeeded(
        self,
        secrets: Iterable[UpstreamSecret],
        now: datetime,
        *,
        skipped: Sequence[str] = (),
        warnings: Sequence[str] = (),
    ) -> UpstreamCache:
        """The cache after a successful refresh that read ``secrets``: they replace every
        cached secret (one deleted upstream is gone)."""
        ordered = tuple(sorted(secrets, key=lambda s: s.record.key))
        result = Refresh(now, ok=True, skipped=tuple(skipped), warnings=tuple(warnings))
        return UpstreamCache(ordered, now, result)

    def failed(self, message: str, now: datetime, reason: str = "error") -> UpstreamCache:
        """The cache after a failed refresh: the secrets and their age are kept."""
        return replace(self, last=Refresh(now, ok=False, message=message, reason=reason))

    def dump(self) -> dict[str, Any]:
        """The cache as JSON-ready data, passwords included in plain text, so that a restart
        while the engine is down can still serve it.

        Only for encrypting at once: hand it to the local store's encryption, never to a
        file, a log or the wire.
        """
        last = self.last
        return {
            "version": _DUMP_VERSION,
            "refreshed_at": None if self.refreshed_at is None else _iso(self.refreshed_at),
            "last": None if last is None else asdict(last) | {"at": _iso(last.at)},
            "secrets": [
                {
                    "record": s.record.model_dump(mode="json"),
                    "password": s.password.get_secret_value(),
                }
                for s in self.secrets
            ],
        }

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> UpstreamCache:
        """The cache `dump` made.

        Raises:
            ValueError: ``data`` is not a dump of this version; the message holds no value.
        """
        try:
            if data["version"] != _DUMP_VERSION:
                raise ValueError
            secrets = [
                UpstreamSecret(
                    UpstreamRecord.model_validate(item["record"]), SecretStr(item["password"])
                )
                for item in data["secrets"]
            ]
            refreshed = data["refreshed_at"]
            last = data["last"]
            return cls(
                tuple(secrets),
                None if refreshed is None else datetime.fromisoformat(refreshed),
                None
                if last is None
                else Refresh(
                    **(last | {"at": datetime.fromisoformat(last["at"])})
                    | {"skipped": tuple(last["skipped"]), "warnings": tuple(last["warnings"])}
                ),
            )
        except (KeyError, TypeError, ValueError):  # ValidationError is a ValueError
            pass
        # Out of the except clause, so it keeps no context: pydantic's error quotes the data.
        raise ValueError("not a saved upstream cache of this version")


@dataclass(frozen=True)
class Staleness:
    """The staleness rule of one upstream.

    Attributes:
        address: the engine's address, named when cached secrets are refused.
        ttl: how long after a successful refresh the cache is fresh.
        max_stale: how long after a successful refresh cached secrets are served.
    """

    address: str
    ttl: timedelta = timedelta(seconds=300)
    max_stale: timedelta = timedelta(seconds=86_400)

    @classmethod
    def of(cls, settings: UpstreamSettings) -> Staleness:
        """The rule the ``[upstream]`` settings configure."""
        return cls(settings.address, settings.ttl, settings.max_stale)

    def age(self, cache: UpstreamCache, now: datetime) -> timedelta | None:
        """How old the cached secrets are at ``now``; None before the first success."""
        return None if cache.refreshed_at is None else now - cache.refreshed_at

    def freshness(self, cache: UpstreamCache, now: datetime) -> Freshness:
        """Where ``cache`` stands at ``now``."""
        age = self.age(cache, now)
        if age is None:
            return Freshness.NEVER
        if age < self.ttl:
            return Freshness.FRESH
        return Freshness.DUE if age < self.max_stale else Freshness.EXPIRED

    def next_refresh(self, cache: UpstreamCache) -> datetime | None:
        """When the next refresh is due; None: now (nothing was tried yet).

        After a success, ``ttl`` later; after a failure, ``min(ttl, RETRY)`` after it.
        """
        last = cache.last
        if last is None:
            return None
        return last.at + (self.ttl if last.ok else min(self.ttl, RETRY))

    def refresh_due(self, cache: UpstreamCache, now: datetime) -> bool:
        """Whether a refresh should start at ``now``."""
        due = self.next_refresh(cache)
        return due is None or due <= now

    def refusal(self, cache: UpstreamCache, now: datetime) -> StoreUnavailableError | None:
        """Why cached secrets cannot be served at ``now`` (never or past ``max_stale``);
        None when they can. The message names the engine's address and the last error."""
        state = self.freshness(cache, now)
        last = cache.last
        error = f": {last.message}" if last is not None and not last.ok else ""
        if state is Freshness.NEVER:
            tried = "has not answered yet" if last is None else "has not answered a refresh"
            return StoreUnavailableError(
                f"upstream secret engine {self.address} {tried}: no upstream record is"
                f" cached{error}"
            )
        if state is Freshness.EXPIRED:
            assert cache.refreshed_at is not None  # EXPIRED means there was a success
            return StoreUnavailableError(
                f"upstream secret engine {self.address} has not answered a refresh since"
                f" {_iso(cache.refreshed_at)}: its cached records are older than"
                f" max_stale_seconds ({self.max_stale.total_seconds():g} s) and are not"
                f" served{error}"
            )
        return None

    def serve(self, cache: UpstreamCache, now: datetime) -> tuple[UpstreamRecord, ...]:
        """The cached records that may be served at ``now``.

        Raises:
            StoreUnavailableError: nothing was ever read, or the cache is past ``max_stale``;
                the message names the engine's address.
        """
        refused = self.refusal(cache, now)
        if refused is not None:
            raise refused
        return cache.records

    def status(self, cache: UpstreamCache, now: datetime) -> dict[str, Any]:
        """The ``upstream`` object of ``status --json``: the last refresh, its result, the
        cache's age and state. Never a secret."""
        age = self.age(cache, now)
        last = cache.last
        return {
            "address": self.address,
            "state": self.freshness(cache, now).value,
            "records": len(cache.secrets),
            "last_refresh": None if last is None else _iso(last.at),
            "result": None if last is None else ("ok" if last.ok else last.reason),
            "message": None if last is None or last.ok else last.message,
            "skipped": [] if last is None else list(last.skipped),
            "warnings": [] if last is None else list(last.warnings),
            "refreshed_at": None if cache.refreshed_at is None else _iso(cache.refreshed_at),
            "cache_age_seconds": None if age is None else round(age.total_seconds(), 3),
        }


def merge(local: Iterable[Record], upstream: Iterable[UpstreamRecord]) -> tuple[Record, ...]:
    """Local and upstream records as one set for the lookup, sorted by (name, username).

    A local record with the same (name, username) shadows the upstream one, whatever either's
    kind; the lookup's basic-before-token rule then applies to what is left.
    """
    held = {r.key: r for r in local}
    for record in upstream:
        held.setdefault(record.key, record)
    return tuple(held[key] for key in sorted(held))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()
