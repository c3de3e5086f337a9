"""The core: serves one validated request against a store. No sockets, no clock.

Time is a parameter (``now``), so expiry, idle auto-lock and the passphrase gate are
tested without a running event loop. The service is called from worker threads; its own
small state (last use) is guarded by a lock, the passphrase gate guards its own, and each
store guards its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from helperd_client.errors import (
    BadRequestError,
    HelperdError,
    LockedError,
    NotFoundError,
    StoreUnavailableError,
)
from helperd_client.wire import OPS

from helperd import __version__
from helperd.core import upstream_service
from helperd.core.bulk import paused_gc
from helperd.core.certs import CertKeeper
from helperd.core.gate import GuessGate
from helperd.core.hot import HotCache, render_body
from helperd.core.lookup import Catalog, Query, find, owns
from helperd.core.paging import page
from helperd.core.protocol import (
    Ack,
    CertPathRequest,
    DeleteRequest,
    GetRequest,
    GetResult,
    HelloRequest,
    HelloResult,
    InitRequest,
    ListRequest,
    ListResult,
    LockRequest,
    MigrateRequest,
    PasswdRequest,
    RecordInfo,
    RecordKeyInfo,
    Request,
    Result,
    SetRequest,
    StatusRequest,
    StatusResult,
    UnlockRequest,
    UpstreamRequest,
    result_json,
)
from helperd.core.record import (
    Kind,
    Record,
)
from helperd.core.service_hot import HotOps
from helperd.core.service_passphrase import Migrations, Opened, PassphraseOps
from helperd.core.service_writes import WriteOps
from helperd.core.store import ForeignKeyring, Store, StoreState
from helperd.core.upstream_cache import UpstreamCache
from helperd.core.upstream_record import UpstreamRecord
from helperd.core.upstream_view import Lookup, Upstream, lookup_of

__all__ = ["KeyFacts", "Migrations", "Opened", "Service"]

log = logging.getLogger(__name__)

# The requests after which the certificate files may have to change.
_CHANGES = (
    SetRequest,
    DeleteRequest,
    InitRequest,
    LockRequest,
    UnlockRequest,
    MigrateRequest,
)


_READS = (HelloRequest, StatusRequest, GetRequest, ListRequest)
"""Requests that never change the records (nor lock or unlock the store)."""


class _WouldBlock(Exception):
    """Answering needs a blocking call: `Service.answer_now` hands the request to a thread."""


class KeyFacts(Protocol):
    """What the stores' key handling tells ``status`` (the daemon hands it in)."""

    def kdf_runs(self) -> int:
        """Passphrase key derivations run since start."""
        ...  # pragma: no cover - protocol

    def memory_locked(self) -> bool:
        """Whether key memory is locked against swap."""
        ...  # pragma: no cover - protocol


class Service(HotOps, WriteOps, PassphraseOps):
    """Handles requests for one store.

    Args:
        store: where records live.
        store_reason: why this store was chosen, for ``status``.
        idle_lock: lock a passphrase store after this long without use (None: never).
        foreign: where to look for generic entries helperd does not hold (None: nowhere).
        migrations: how to open another store for ``migrate`` (None: not offered).
        gate: the daemon-wide gate on passphrase guesses (None: a fresh one, in memory).
        key_facts: what ``status`` says of key derivation and key memory (None: nothing
            derived, nothing locked).
        certs: keeps the client-certificate files in step with the store (None: no files).
        upstream: the upstream secret engine's cache (None: no ``[upstream]``); see
            `helperd.core.upstream_view`.
    """

    def __init__(
        self,
        store: Store,
        *,
        store_reason: str,
        idle_lock: timedelta | None = None,
        foreign: ForeignKeyring | None = None,
        migrations: Migrations | None = None,
        gate: GuessGate | None = None,
        key_facts: KeyFacts | None = None,
        certs: CertKeeper | None = None,
        upstream: Upstream | None = None,
    ) -> None:
        self.store = store
        self.store_reason = store_reason
        self.idle_lock = idle_lock
        self._foreign = foreign
        self._migrations = migrations
        self._mutex = threading.Lock()
        # Writes wait while a migration copies, so that none lands in the store being left.
        self._writes = threading.Lock()
        self.gate = GuessGate() if gate is None else gate
        self._key_facts = key_facts
        self.certs = certs
        self.event_loop = "asyncio"
        """The daemon's event loop, for ``status`` (the daemon sets it: uvloop when installed)."""
        self._last_use: datetime | None = None
        # The lookup index of the store's current records (see Store.records): rebuilt when
        # the store hands out another sequence, that is after a change or a lock and unlock.
        self._catalog = Catalog(())
        self.upstream = upstream
        # The lookup index of local and upstream records together (with an upstream only).
        self._lookup: Lookup | None = None
        # Rendered answers of gets served from the current records (helperd.core.hot):
        # replaced on every change and on lock, so no password outlives its store version.
        self._hot = HotCache(None)
        self._hello = render_body(result_json(HelloResult(version=__version__, ops=list(OPS))))

    def handle(self, request: Request, now: datetime, *, blocking: bool = True) -> Result:
        """Serve ``request`` at time ``now``; with ``blocking`` False, never reach the OS keyring.

        After a request that may change the records, the lookup catalog of the new records is
        built here, in the caller's worker thread, so that the event loop never builds one.

        Raises:
            HelperdError: the error to answer with.
        """
        try:
            return self._serve(request, now, blocking)
        finally:
            if not isinstance(request, _READS):
                self.written(now)
            # Certificate files follow every change of records or lock state (core/certs.py).
            if self.certs is not None and isinstance(request, _CHANGES):
                self.certs.update(self.store, now, self.special_records())

    def _serve(  # noqa: PLR0911, PLR0912 - one case per op
        self, request: Request, now: datetime, blocking: bool
    ) -> Result:
        self.tick(now)
        if not isinstance(request, HelloRequest | StatusRequest):
            with self._mutex:
                self._last_use = now
        match request:
            case HelloRequest():
                return HelloResult(version=__version__, ops=list(OPS))
            case StatusRequest():
                return self._status(now)
            case GetRequest():
                return self._get(request, now, blocking)
            case SetRequest() if request.upstream:
                return upstream_service.write(self.upstream, request, now)
            case SetRequest():
                with self._writes:
                    return self._set(request, now)
            case DeleteRequest():
                with self._writes:
                    return self._delete(request)
            case MigrateRequest():
                with self._writes:
                    return self._migrate(request, now)
            case ListRequest():
                if self.store.state is StoreState.LOCKED:  # the keyring index stays readable
                    raise LockedError("the store is locked: run `helperctl unlock`")
                after = request.after
                key = None if after is None else (after.name, after.username)
                records, more = page(self._listed(), request.limit, key)  # sorted by key
                found = [RecordInfo.of(r, now) for r in records]
                cursor = None if more is None else RecordKeyInfo(name=more[0], username=more[1])
                return ListResult(records=found, next=cursor)
            case UpstreamRequest():
                return upstream_service.answer(self.upstream, request, now)
            case InitRequest():
                self._require_passphrase(request.passphrase)
                self.store.create(request.passphrase)
                return self._succeeded()
            case LockRequest():
                self.store.lock()
                return Ack(locked=self.store.state is not StoreState.UNLOCKED)
            case UnlockRequest():
                if self.store.needs_passphrase and request.passphrase is None:
                    raise BadRequestError("unlock needs the store's passphrase")
                self._guarded(lambda: self.store.unlock(request.passphrase), self.store, now)
                return self._succeeded()
            case PasswdRequest():
                self._require_passphrase(request.new)
                self._guarded(
                    lambda: self.store.change_passphrase(request.old, request.new), self.store, now
                )
                return self._succeeded()
            case CertPathRequest():
                if self.certs is None:
                    raise BadRequestError("this daemon keeps no certificate files")
                return self.certs.answer(self.store, request.name, now)
        raise BadRequestError("unhandled request")  # pragma: no cover - the union is closed

    def answer_now(self, request: Request, now: datetime) -> Result | None:
        """Answer without blocking, or return None when that needs a worker thread.

        ``hello`` always qualifies, and so does a ``get`` from a store whose reads come from
        memory, unless it would fall back to the OS keyring. The server calls this on its
        event loop, sparing the common ``get`` a round trip through a thread. It takes no lock
        that anything holds across I/O or a KDF: the records are the store's snapshot, and a
        get is handed to a thread when the idle lock is due (locking takes the store's writer
        lock) or the catalog of the current records is not built yet (building is work).
        """
        if isinstance(request, HelloRequest):
            return HelloResult(version=__version__, ops=list(OPS))
        if not isinstance(request, GetRequest) or self.store.reads_block or self._lock_due(now):
            return None
        try:
            if not self._lookup_current():
                return None
            return self.handle(request, now, blocking=False)
        except _WouldBlock:
            return None

    def _lock_due(self, now: datetime) -> bool:
        """Whether the idle lock applies at ``now`` (a cheap check, no store call)."""
        if self.idle_lock is None or not self.store.lockable:
            return False
        with self._mutex:
            last_use = self._last_use
        return last_use is not None and now - last_use >= self.idle_lock

    def unanswered(self, seconds: float) -> StoreUnavailableError:
        """The error for a read still waiting after ``seconds``, naming what it waits on."""
        # The keyring store, or the fallback for entries helperd does not hold, has one.
        keyring = getattr(self.store, "keyring", None) or getattr(self._foreign, "keyring", None)
        name = getattr(keyring, "name", None)
        what = f"the {self.store.kind} store" if name is None else f"the OS keyring ({name})"
        return StoreUnavailableError(
            f"{what} did not answer within {seconds:g} s; it may be hung or waiting for a prompt"
        )

    def tick(self, now: datetime) -> bool:
        """Lock an idle passphrase store; return whether it was locked now."""
        if not self._lock_due(now):
            return False
        if self.store.state is not StoreState.UNLOCKED:
            return False
        self.store.lock()
        self._hot = HotCache(None)
        with self._mutex:
            self._last_use = None
        if self.certs is not None:
            self.certs.clear()
        log.info("store locked after %s without use", self.idle_lock)
        return True

    def _status(self, now: datetime) -> StatusResult:
        records: Sequence[Record] | None = None
        try:  # a key file that cannot be read, a damaged file: said, not a failed status
            state, problem = self.store.state, None
            records = self.store.records() if state is StoreState.UNLOCKED else None
        except (LockedError, StoreUnavailableError) as exc:
            state = StoreState.LOCKED
            problem = exc.message if isinstance(exc, StoreUnavailableError) else None
        names = None if records is None else {r.name for r in records if r.kind is not Kind.GENERIC}
        return StatusResult(
            version=__version__,
            pid=os.getpid(),
            store="keyring" if self.store.kind == "keyring" else "file",
            store_reason=self.store_reason,
            initialized=state is not StoreState.MISSING,
            locked=state is not StoreState.UNLOCKED,
            lockable=self.store.lockable,
            store_error=problem,
            repositories=None if names is None else len(names),
            records=None if records is None else len(records),
            idle_lock_seconds=None if self.idle_lock is None else self.idle_lock.total_seconds(),
            kdf_runs=0 if self._key_facts is None else self._key_facts.kdf_runs(),
            passphrase_retry_in=self.gate.retry_in(now),
            memory_locked=self._key_facts is not None and self._key_facts.memory_locked(),
            upstream=None if self.upstream is None else upstream_service.state(self.upstream, now),
            event_loop=self.event_loop,
        )

    def special_records(self) -> list[Record] | None:
        """The current version's certificate and provider records (None: catalog not built)."""
        catalog = self._catalog
        try:
            current = catalog.records is self.store.records()
        except HelperdError:
            return None
        return list(catalog.specials.values()) if current else None

    def _prime_catalog(self) -> None:
        """Build the catalog of the store's current records now, if it can be read."""
        with contextlib.suppress(HelperdError):
            self._current_catalog()
            if self.upstream is not None:
                self._lookup_catalog()

    def keep_upstream(self, put: Callable[[Store], None]) -> None:
        """Run ``put`` on the store while no other write runs (the upstream cache's copy,
        `helperd.upstream.keeper`), then index the records in the caller's thread."""
        with self._writes:
            put(self.store)
        self._prime_catalog()

    def prime(self) -> None:
        """Build the lookup index now, in the caller's thread (after an upstream refresh), so
        that the event loop finds it built."""
        self._prime_catalog()

    def _lookup_current(self) -> bool:
        """Whether the lookup index of the current records is built (a cheap check)."""
        if self.upstream is None:
            return self._catalog.records is self.store.records()
        built = self._lookup
        return built is not None and built.current(self.store.records(), self.upstream.cache)

    def _lookup_catalog(self) -> Catalog:
        """The index a get searches: the local records, then the upstream ones they do not
        shadow (`helperd.core.upstream_cache.merge`)."""
        return self._lookup_with_cache()[0]

    def _lookup_with_cache(self) -> tuple[Catalog, UpstreamCache | None]:
        """The lookup index and the one upstream cache snapshot it holds records of."""
        if self.upstream is None:
            return self._current_catalog(), None
        local, cache = self.store.records(), self.upstream.cache
        built = self._lookup
        if built is None or not built.current(local, cache):
            built = self._lookup = lookup_of(local, cache, built)
        return built.catalog, built.cache

    def _listed(self) -> Sequence[Record]:
        """What ``list`` shows: the local records, and the upstream ones when configured."""
        if self.upstream is None:
            return self.store.records()
        return self._lookup_catalog().records

    def _current_catalog(self) -> Catalog:
        """The lookup index of the store's records, built again only when they changed."""
        records = self.store.records()
        catalog = self._catalog
        if catalog.records is not records:
            with paused_gc():  # a first catalog of a big store makes many objects
                delta = self.store.records_delta(catalog.records, records)
                catalog = self._catalog = Catalog(records, previous=catalog, delta=delta)
        return catalog

    def _get(self, request: GetRequest, now: datetime, blocking: bool) -> GetResult:
        upstream = self.upstream
        catalog, cache = self._lookup_with_cache()  # one snapshot of the upstream for this get
        query = Query(
            name=request.name, url=request.url, service=request.service, username=request.username
        )
        try:
            record = find(catalog, query, now)
        except NotFoundError:
            found = self._foreign_get(request, catalog, now, blocking)
            if found is None:
                upstream_service.refuse_missing(upstream, cache, now)
                raise
            return found
        expires_at = record.expires_at
        if record.provider is not None:
            # The stored token, even an expired one: the daemon's ProviderDesk swaps in the
            # refresher's token, or refuses one past this expiry (helperd.daemon.providers).
            expires_at = record.provider.expires_at
        if isinstance(record, UpstreamRecord):
            password = upstream_service.password(upstream, cache, record, now)
        else:
            password = self.store.password(record)
        result = GetResult(
            name=record.name,
            username=record.username,
            password=password,
            kind=record.kind,
            urls=list(record.urls),
            expires_at=expires_at,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )
        self._keep_hot(request, catalog, record, result)
        return result

    def _foreign_get(
        self, request: GetRequest, catalog: Catalog, now: datetime, blocking: bool
    ) -> GetResult | None:
        """A generic entry from the OS keyring, for a service helperd does not own."""
        service = request.service
        if service is None or self._foreign is None or owns(catalog, service, now):
            return None
        if not blocking:
            raise _WouldBlock
        found = self._foreign.foreign_password(service, request.username)
        if found is None:
            return None
        username, password = found
        return GetResult(
            name=service,
            username=username,
            password=password,
            kind=Kind.GENERIC,
            urls=[],
            expires_at=None,
            created_at=None,
            updated_at=None,
        )
