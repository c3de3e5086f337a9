"""The hot path: a ``get`` or ``hello`` answered without building a pydantic model.

Profiling the kept-connection ``get`` (docs/performance.md) showed most of helperd's own time
in pydantic: validating the request (`helperd.core.protocol.parse_request`), building the
`GetResult` and dumping it again (`render_ok`). Here a request line whose shape is the common
one (``v``, ``id``, ``op`` and a few optional strings, nothing else) is checked by hand, with
the very limits the models set; and the answer of a ``get`` the service served once is kept
as rendered JSON, keyed by the request's fields, for the same version of the store.
Anything else, an error included, goes the full way, so every error reads the same.

The kept bodies hold passwords: `HotCache` is tied to one records tuple (one version of one
open store) and the service drops it on lock. After a write, the new version's cache may serve
an earlier answer again, once the service has checked that the same request finds the very
same record, which the write did not touch (`HotCache` ``still``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeGuard

from helperd_client.errors import BadRequestError
from helperd_client.wire import PROTOCOL_VERSION, decode_line

from helperd.core.protocol import MAX_ID_CHARS, MAX_TEXT
from helperd.core.record import Record

__all__ = [
    "MAX_ENTRIES",
    "GetKey",
    "HotCache",
    "QuickRequest",
    "quick_request",
    "render_body",
    "render_cached",
]

GetKey = tuple[str | None, str | None, str | None, str | None]
"""A ``get``'s (name, url, service, username)."""

_GET_FIELDS = frozenset({"v", "id", "op", "name", "url", "service", "username"})
_HELLO_FIELDS = frozenset({"v", "id", "op"})
MAX_ENTRIES = 4096
"""Distinct ``get`` requests kept per store version; past it the cache starts again
(`HotCache`, and the daemon's answers of provider records)."""


class QuickRequest:
    """A ``get`` or ``hello`` line that passed the hand checks: the same as the model's."""

    __slots__ = ("key", "op", "request_id")

    def __init__(self, request_id: int | str, op: str, key: GetKey) -> None:
        self.request_id = request_id
        self.op = op
        self.key = key


def quick_request(line: bytes) -> QuickRequest | None:
    """A plain ``get`` or ``hello``, checked by hand; None for anything else (or anything odd).

    None never means the request is wrong, only that `parse_request` must judge it.
    """
    try:
        message = decode_line(line)
    except BadRequestError:
        return None
    request_id = message.get("id")
    version = message.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION or not _valid_id(request_id):
        return None
    op = message.get("op")
    if op == "get" and message.keys() <= _GET_FIELDS:
        get = message.get
        key = (get("name"), get("url"), get("service"), get("username"))
        if _text(key[0]) and _text(key[1]) and _text(key[2]) and _text(key[3]):
            return QuickRequest(request_id, op, key)
    elif op == "hello" and message.keys() == _HELLO_FIELDS:
        return QuickRequest(request_id, op, (None, None, None, None))
    return None


def _valid_id(value: object) -> TypeGuard[int | str]:
    """As `helperd.core.protocol`'s ``_Id``: a 64-bit integer (not a bool) or a short string."""
    if type(value) is int:
        return -(2**63) <= value < 2**63
    return type(value) is str and len(value) <= MAX_ID_CHARS


def _text(value: object) -> bool:
    return value is None or (type(value) is str and len(value) <= MAX_TEXT)


def render_body(result: dict[str, Any]) -> bytes:
    """A result's JSON, exactly as `helperd.core.protocol.render_ok` writes it in the line."""
    return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()


def render_cached(request_id: int | str, body: bytes) -> bytes:
    """The response line for ``body`` under ``request_id``: the bytes `render_ok` makes."""
    if type(request_id) is int:  # what clients send: no JSON encoder needed
        head = b"%d" % request_id
    else:
        head = json.dumps(request_id, ensure_ascii=False).encode()
    return b'{"v":%d,"id":%s,"ok":true,"result":%s}\n' % (PROTOCOL_VERSION, head, body)


class HotCache:
    """Rendered ``get`` answers for one version of the store's records.

    Args:
        records: the records tuple the answers were found in (`helperd.core.store.Store.records`
            hands out the same tuple until the store changes).
        earlier: the cache of the version just before, whose answers are served again once
            ``still`` says they hold in this one (a write of one record leaves every other
            answer as it was, and the next ``get`` need not take the full path for it).
        still: whether the answer found in a record, for a request, is the same in this
            version; called on the first request for each earlier answer.
    """

    __slots__ = ("_answers", "_earlier", "_still", "records")

    def __init__(
        self,
        records: Sequence[Record] | None,
        earlier: HotCache | None = None,
        still: Callable[[GetKey, Record, datetime], bool] | None = None,
    ) -> None:
        self.records = records
        self._answers: dict[GetKey, tuple[Record, bytes]] = {}
        # Only the answers themselves are kept, never the earlier cache's own earlier one.
        self._earlier = None if earlier is None or still is None else earlier._answers
        self._still = still

    def get(self, key: GetKey, now: datetime) -> bytes | None:
        """The kept answer for ``key``, unless its record has expired since."""
        found = self._answers.get(key)
        if found is None:
            found = self._carried(key, now)
            if found is None:
                return None
        record, body = found
        if record.expires_at is not None and record.expires_at <= now:
            return None
        return body

    def _carried(self, key: GetKey, now: datetime) -> tuple[Record, bytes] | None:
        """The earlier version's answer for ``key``, kept here when it still holds."""
        if self._earlier is None or self._still is None:
            return None
        found = self._earlier.get(key)
        if found is None or not self._still(key, found[0], now):
            return None
        self.keep(key, *found)
        return found

    @property
    def size(self) -> int:
        """How many answers are kept."""
        return len(self._answers)

    def carry_all(self, now: datetime) -> None:
        """Check every earlier answer now, keeping those that still hold, and forget the
        earlier cache."""
        if self._earlier is not None:
            for key in list(self._earlier):
                self._carried(key, now)
        self._earlier = None

    def keep(self, key: GetKey, record: Record, body: bytes) -> None:
        """Keep ``body``, the answer found in ``record``, for later requests with ``key``."""
        if len(self._answers) >= MAX_ENTRIES:
            self._answers.clear()
        self._answers[key] = (record, body)

    def clear(self) -> None:
        """Forget every kept answer (and so every password it held), earlier ones too."""
        self._answers.clear()
        self._earlier = None
