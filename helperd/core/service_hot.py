"""The service's hot path: answers served again from their rendered bytes on the event loop.

`HotOps` is a part of `helperd.core.service.Service`, kept in a module of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from helperd_client.errors import HelperdError

from helperd.core.hot import GetKey, HotCache, QuickRequest, render_body
from helperd.core.lookup import Catalog, Query, find
from helperd.core.protocol import GetRequest, GetResult, result_json
from helperd.core.record import Record
from helperd.core.store import Store
from helperd.core.upstream_view import Upstream

__all__ = ["HotOps"]

_CHECKED_AT_ONCE = 64
"""Kept answers up to which a write checks them all before it is acknowledged."""


class HotOps:
    """`answer_hot` and the rendered ``get`` answers it serves (`helperd.core.service.Service`);
    `hot_version` and `hot_usable` for the daemon's answers of provider records; `written`,
    which carries them over a write."""

    store: Store
    upstream: Upstream | None
    _mutex: threading.Lock
    _last_use: datetime | None
    _hot: HotCache
    _catalog: Catalog
    _hello: bytes

    if TYPE_CHECKING:

        def _lock_due(self, now: datetime) -> bool: ...

        def _prime_catalog(self) -> None: ...

    def written(self, now: datetime) -> None:
        """After a write: index the store's new records and carry the kept answers over.

        `handle` calls it in the worker thread that served a write; the daemon calls it on its
        event loop after applying a write its writer process served (`helperd.daemon.writer`),
        where a write of a few records costs an indexing of those records only.
        """
        earlier, self._hot = self._hot, HotCache(None)
        self._prime_catalog()
        self._hot = self._carry_hot(earlier, now)

    def answer_hot(self, request: QuickRequest, now: datetime) -> bytes | None:
        """The rendered answer of a plain ``hello``, or of a ``get`` served before from the
        same records; None when it must be served the full way (`answer_now`, `handle`).

        Called on the event loop; the same checks as `answer_now`, without building a model.
        """
        if request.op == "hello":
            return self._hello
        hot = self._hot
        if not self.hot_usable(hot.records, now):
            return None
        return hot.get(request.key, now)

    def hot_version(self) -> Sequence[Record] | None:
        """The store's records now, under which a get's rendered answer may be kept; None
        when none may (reads block, the store is locked or unreadable, an upstream is set).

        A caller keeping an answer takes this before the lookup: the answer then comes from
        this version or a newer one, and `hot_usable` turns down any version but the current.
        """
        if self.store.reads_block or self.upstream is not None:
            return None
        try:
            return self.store.records()
        except HelperdError:
            return None

    def hot_usable(self, records: Sequence[Record] | None, now: datetime) -> bool:
        """Whether answers kept under ``records`` may be served at ``now``: they are still the
        store's records, the store is open and its idle lock not due. True counts as a use
        of the store (for the idle lock), as the full path's get does.

        Called on the event loop: no lock that anything holds across I/O.
        """
        if records is None or self.store.reads_block or self._lock_due(now):
            return False
        try:
            if records is not self.store.records():
                return False
        except HelperdError:
            return False
        with self._mutex:
            self._last_use = now
        return True

    def _carry_hot(self, earlier: HotCache, now: datetime) -> HotCache:
        """The kept answers for the store's version after a write: ``earlier``'s are served
        again for requests that find the very same record, which the write did not replace.

        Only when the store says what the write changed (`Store.records_delta`) and the
        catalog of the new version is built; otherwise none are (a lock drops them all).
        A few answers are checked here, in the writer's thread, so the next gets find them
        ready; more are checked on their first request.
        """
        try:
            records = self.store.records()
        except HelperdError:
            return HotCache(None)
        catalog = self._catalog
        delta = None
        if not (self.store.reads_block or self.upstream is not None or earlier.records is None):
            delta = self.store.records_delta(earlier.records, records)
        if delta is None or catalog.records is not records:
            return HotCache(None)
        replaced = delta[0]

        def still(key: GetKey, record: Record, now: datetime) -> bool:
            if any(gone is record for gone in replaced):
                return False
            name, url, service, username = key
            query = Query(name=name, url=url, service=service, username=username)
            try:
                return find(catalog, query, now) is record
            except HelperdError:
                return False

        carried = HotCache(records, earlier, still)
        if earlier.size <= _CHECKED_AT_ONCE:
            carried.carry_all(now)
        return carried

    def _keep_hot(
        self, request: GetRequest, catalog: Catalog, record: Record, result: GetResult
    ) -> None:
        """Keep a get's rendered answer for the next identical request (see `answer_hot`)."""
        if self.store.reads_block:  # never served from the event loop: nothing to keep
            return
        if record.provider is not None or self.upstream is not None:
            # A provider's token comes from the daemon's refresher, and upstream answers change
            # with each refresh: neither follows the store's version, so neither is kept.
            return
        hot = self._hot
        if hot.records is not catalog.records:
            hot = self._hot = HotCache(catalog.records)
        key = (request.name, request.url, request.service, request.username)
        hot.keep(key, record, render_body(result_json(result)))
        if self.store.reads_block:  # locked meanwhile (in another thread): keep nothing
            hot.clear()
