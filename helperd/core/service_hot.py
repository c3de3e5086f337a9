"""The service's hot path: answers served again from their rendered bytes on the event loop.

`HotOps` is a part of `helperd.core.service.Service`, kept in a module of its own.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING

from helperd_client.errors import HelperdError

from helperd.core.hot import HotCache, QuickRequest, render_body
from helperd.core.lookup import Catalog
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
