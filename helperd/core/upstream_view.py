"""What the service sees of the upstream secret engine: the current cache, the staleness rule,
and the lookup set of local and upstream records.

The daemon hands the service an `Upstream` (its implementation, in ``helperd.upstream``, does
the network I/O in worker threads and swaps its cache in one assignment); the service only
reads the current cache, so a get never waits for a refresh. The cache is kept across
restarts as one hidden generic record of the local store (`CACHE_KEY`), encrypted like every
other record, never in a plaintext file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from helperd.core.lookup import Catalog
from helperd.core.record import Record
from helperd.core.upstream_cache import Staleness, UpstreamCache, merge

__all__ = ["CACHE_KEY", "Lookup", "Upstream", "UpstreamWrite", "lookup_of", "visible"]

CACHE_KEY = ("helperd-upstream-cache", "helperd")
"""(name, username) of the generic record that keeps the upstream cache in the local store."""


class Upstream(Protocol):
    """The upstream as the service uses it (the daemon's `helperd.upstream.keeper.Keeper`)."""

    @property
    def staleness(self) -> Staleness:
        """The staleness rule (address, ttl, max_stale)."""
        ...  # pragma: no cover - protocol

    @property
    def cache(self) -> UpstreamCache:
        """The current cache: one immutable snapshot, replaced whole by each refresh."""
        ...  # pragma: no cover - protocol

    def settings(self) -> dict[str, Any]:
        """The ``[upstream]`` settings as ``upstream show`` prints them; never a secret."""
        ...  # pragma: no cover - protocol

    def refresh(self) -> UpstreamCache:
        """Refresh now (blocking; one at a time) and return the new cache."""
        ...  # pragma: no cover - protocol

    def test(self) -> dict[str, Any]:
        """Log in and read everything with a fresh client, keeping the cache as it is."""
        ...  # pragma: no cover - protocol

    def write(self, request: UpstreamWrite) -> None:
        """Write one repository secret to the engine (``set --upstream``).

        Raises:
            StoreUnavailableError: the engine refused or did not answer; the message says
                what to fix (a policy without ``create``/``update``, for one).
        """
        ...  # pragma: no cover - protocol


@dataclass(frozen=True)
class UpstreamWrite:
    """One secret for ``set --upstream``: the fields of docs/fleet.md, password included.

    Attributes:
        name: the repository name (the secret's name under the prefix).
        fields: ``username``, ``password``, ``urls``, ``kind``, ``expires_at`` as text.
    """

    name: str
    fields: dict[str, str]

    def __repr__(self) -> str:
        return f"UpstreamWrite(name={self.name!r}, fields=[{', '.join(sorted(self.fields))}])"


@dataclass(frozen=True)
class Lookup:
    """The lookup index of one (local records, upstream cache) pair.

    Attributes:
        local: the local store's records it was built from (the very sequence).
        cache: the upstream cache it was built from.
        catalog: local records first, then the upstream records they do not shadow.
    """

    local: Sequence[Record]
    cache: UpstreamCache
    catalog: Catalog

    def current(self, local: Sequence[Record], cache: UpstreamCache) -> bool:
        """Whether this index is of ``local`` and ``cache`` (identity: no work)."""
        return self.local is local and self.cache is cache


def visible(local: Sequence[Record]) -> tuple[Record, ...]:
    """The local records a person sees: all but the one keeping the upstream cache."""
    return tuple(r for r in local if r.key != CACHE_KEY)


def lookup_of(local: Sequence[Record], cache: UpstreamCache, previous: Lookup | None) -> Lookup:
    """The lookup index of ``local`` and ``cache``; work, so never on the event loop.

    Every cached upstream record is indexed, also past ``max_stale``: the service refuses one
    that a lookup finds then (`Staleness.refusal`), rather than answering "no record".
    """
    merged = merge(visible(local), cache.records)
    return Lookup(
        local, cache, Catalog(merged, previous=None if previous is None else previous.catalog)
    )
