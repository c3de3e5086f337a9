"""The daemon's upstream: one engine client, the current cache, and its copy in the local store.

`Keeper` is what the service reads (`helperd.core.upstream_view.Upstream`). Its ``refresh``,
``test`` and ``write`` block on the network: the daemon calls them from worker threads only
(the refresh task's own thread, or a server worker for the ``upstream`` op). A refresh makes a
new immutable `UpstreamCache` off the event loop and swaps it in one assignment; a get reads
whichever snapshot is current, so it never waits for a refresh.

The cache is kept across restarts as one generic record of the local store
(`helperd.core.upstream_view.CACHE_KEY`): encrypted by the store like every other record,
never in a plaintext file. It is read before the first refresh (a restart while the engine is
down still serves it) and written after each refresh, when the store is unlocked.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from helperd_client.errors import HelperdError
from pydantic import SecretStr

from helperd.core.config import UpstreamSettings
from helperd.core.record import Kind, Record
from helperd.core.store import Store, StoreState
from helperd.core.upstream_cache import Staleness, UpstreamCache
from helperd.core.upstream_view import CACHE_KEY, UpstreamWrite
from helperd.upstream.engine import DEFAULT_TIMEOUT, Engine, refresh
from helperd.upstream.errors import UpstreamError

__all__ = ["Keeper", "Persisted"]

_log = logging.getLogger(__name__)


class Persisted(Protocol):
    """Where the keeper keeps its cache: the service's store, under its write lock."""

    @property
    def store(self) -> Store:
        """The local store."""
        ...  # pragma: no cover - protocol

    def keep_upstream(self, put: Callable[[Store], None]) -> None:
        """Run ``put`` on the store while no other write runs, then index the records."""
        ...  # pragma: no cover - protocol


class Keeper:
    """The upstream of one daemon.

    Args:
        settings: the resolved ``[upstream]`` table.
        home: the service whose local store keeps the cache (set with `attach`).
        timeout: the bound on each HTTP call to the engine.
    """

    def __init__(self, settings: UpstreamSettings, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._settings = settings
        self._timeout = timeout
        self._staleness = Staleness.of(settings)
        self._cache = UpstreamCache()
        self._engine = Engine(settings, timeout=timeout)
        self._one = threading.Lock()  # one refresh or write at a time: the engine's rule
        self._home: Persisted | None = None
        self._loaded = False

    def attach(self, home: Persisted) -> None:
        """Keep the cache in ``home``'s store (the service, once it exists)."""
        self._home = home

    @property
    def staleness(self) -> Staleness:
        """The staleness rule of ``[upstream]``."""
        return self._staleness

    @property
    def cache(self) -> UpstreamCache:
        """The current snapshot (a plain attribute read: never waits)."""
        return self._cache

    def settings(self) -> dict[str, Any]:
        """The settings as ``upstream show`` prints them: paths, never what the files hold."""
        s = self._settings
        return {
            "address": s.address,
            "mount": s.mount,
            "prefix": s.prefix,
            "namespace": s.namespace,
            "auth": s.auth,
            "token_file": _path(s.token_file),
            "role_id_file": _path(s.role_id_file),
            "secret_id_file": _path(s.secret_id_file),
            "ca_file": _path(s.ca_file),
            "ttl_seconds": s.ttl.total_seconds(),
            "max_stale_seconds": s.max_stale.total_seconds(),
        }

    def refresh(self) -> UpstreamCache:
        """Read everything under the prefix now and swap the cache; never raises.

        Before the first refresh, the cache the local store keeps is loaded, so that a failed
        first refresh still serves what the last run read (within ``max_stale``).
        """
        with self._one:
            if not self._loaded:
                self.load_saved()
            fresh = refresh(self._engine, self._cache)
            self._cache = fresh  # the swap: readers see the old snapshot or the new one
            last = fresh.last
            if last is not None and not last.ok:
                _log.warning("upstream refresh failed: %s", last.message)
            else:
                _log.info(
                    "upstream refresh: %d secret(s) from %s",
                    len(fresh.secrets),
                    self._settings.address,
                )
            for message in () if last is None else (*last.skipped, *last.warnings):
                _log.warning("%s", message)
            self._save(fresh)
        return fresh

    def test(self) -> dict[str, Any]:
        """Log in and read everything with a client of its own; the cache is left alone."""
        engine = Engine(self._settings, timeout=self._timeout)
        try:
            fetched = engine.fetch()
        except UpstreamError as exc:
            return {"ok": False, "reason": exc.reason, "message": exc.message}
        finally:
            engine.close()
        return {
            "ok": True,
            "reason": None,
            "message": f"read {len(fetched.secrets)} secret(s) from {self._settings.address}",
            "secrets": len(fetched.secrets),
            "skipped": list(fetched.skipped),
            "warnings": list(fetched.warnings),
        }

    def write(self, request: UpstreamWrite) -> None:
        """Write one secret to the engine (``set --upstream``).

        Raises:
            UpstreamError: what the engine or the policy refused, what to fix.
        """
        with self._one:
            self._engine.write(request.name, request.fields)

    def close(self) -> None:
        """Close the engine's connections."""
        self._engine.close()

    def load_saved(self) -> None:
        """Serve the cache the local store keeps, when it is unlocked and holds one (the
        daemon calls it at start, before it serves; a locked store is read at the first
        refresh after it is unlocked)."""
        home = self._home
        if home is None or not _unlocked(home.store):
            return
        self._loaded = True
        try:
            record = next((r for r in home.store.records() if r.key == CACHE_KEY), None)
            if record is None:
                return
            saved = UpstreamCache.load(json.loads(home.store.password(record).get_secret_value()))
        except (HelperdError, ValueError) as exc:  # never the text: it may quote a secret
            _log.warning("the saved upstream cache is not used (%s)", type(exc).__name__)
            return
        if self._cache.refreshed_at is None:
            self._cache = saved
            _log.info(
                "upstream: serving %d saved secret(s) until the next refresh", len(saved.secrets)
            )

    def _save(self, cache: UpstreamCache) -> None:
        """Keep ``cache`` encrypted in the local store (skipped while it is locked)."""
        home = self._home
        if home is None or not _unlocked(home.store) or cache.refreshed_at is None:
            return
        text = SecretStr(json.dumps(cache.dump(), separators=(",", ":")))
        now = datetime.now(UTC)
        name, username = CACHE_KEY
        record = Record(
            name=name, username=username, kind=Kind.GENERIC, created_at=now, updated_at=now
        )
        try:
            home.keep_upstream(lambda store: store.put(record, text))
        except HelperdError as exc:
            _log.warning("the upstream cache could not be kept in the local store: %s", exc.message)


def _unlocked(store: Store) -> bool:
    try:
        return store.state is StoreState.UNLOCKED
    except HelperdError:
        return False


def _path(path: object) -> str | None:
    return None if path is None else str(path)
