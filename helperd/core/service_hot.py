"""The service's hot path: answers served again from their rendered bytes on the event loop.

`HotOps` is a part of `helperd.core.service.Service`, kept in a module of its own.
"""

from __future__ import annotations

import threading
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


class HotOps:
    """`answer_hot` and the rendered ``get`` answers it serves (`helperd.core.service.Service`)."""

    store: Store
    upstream: Upstream | None
    _mutex: threading.Lock
    _last_use: datetime | None
    _hot: HotCache
    _catalog: Catalog
    _hello: bytes

    if TYPE_CHECKING:

        def _lock_due(self, now: datetime) -> bool: ...

    def answer_hot(self, request: QuickRequest, now: datetime) -> bytes | None:
        """The rendered answer of a plain ``hello``, or of a ``get`` served before from the
        same records; None when it must be served the full way (`answer_now`, `handle`).

        Called on the event loop; the same checks as `answer_now`, without building a model.
        """
        if request.op == "hello":
            return self._hello
        if self.store.reads_block or self._lock_due(now):
            return None
        hot = self._hot
        try:
            if hot.records is not self.store.records():
                return None
        except HelperdError:
            return None
        body = hot.get(request.key, now)
        if body is not None:
            with self._mutex:
                self._last_use = now
        return body

    def _carry_hot(self, earlier: HotCache) -> HotCache:
        """The kept answers for the store's version after a write: ``earlier``'s are served
        again for requests that find the very same record, which the write did not replace.

        Only when the store says what the write changed (`Store.records_delta`) and the
        catalog of the new version is built; otherwise none are (a lock drops them all).
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

        return HotCache(records, earlier, still)

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
