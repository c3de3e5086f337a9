"""Pages of ``list``: a store of any size listed in bounded answers.

Records are sorted by key (name, username); a page is the records after a key, at most
``limit`` of them, and ``next`` is the key to ask after for the following page (None at the
end). Without ``limit`` or ``after`` (the form every client used before pages), the whole
list is answered as long as it stays a sensible size, and refused with ``too_large`` past
it, rather than cut short where an older client would not notice.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from helperd_client.errors import TooLargeError

from helperd.core.record import Record, RecordKey

__all__ = ["MAX_PAGE", "MAX_UNPAGED", "page"]

MAX_PAGE = 5_000
"""Largest ``limit`` a ``list`` may ask for (about 2 MB of answer)."""

MAX_UNPAGED = 20_000
"""Most records a ``list`` without ``limit`` answers (about 8 MB, within a client's 16 MB)."""


def page(
    records: Sequence[Record], limit: int | None, after: RecordKey | None
) -> tuple[Sequence[Record], RecordKey | None]:
    """The records after ``after`` (all when None), at most ``limit``, and the next page's key.

    Args:
        records: every record, sorted by key (`helperd.core.store.Store.records`).
        limit: the page size; None for every remaining record (up to `MAX_UNPAGED`).
        after: the key of the last record of the previous page, or None for the first page.

    Raises:
        TooLargeError: no ``limit`` was given and more than `MAX_UNPAGED` records remain.
    """
    start = 0 if after is None else bisect.bisect_right(records, after, key=_key)
    if limit is None:
        if len(records) - start > MAX_UNPAGED:
            raise TooLargeError(
                f"{len(records) - start} records are more than one list answer holds"
                f" ({MAX_UNPAGED}): ask for pages with limit and after (helperctl list does)"
            )
        return records[start:], None
    chosen = records[start : start + limit]
    more = start + limit < len(records)
    return chosen, (chosen[-1].key if more and chosen else None)


def _key(record: Record) -> RecordKey:
    return record.key
