"""Moving every record from one store to another, losing nothing on the way.

`copy_verified` is the copy rule, over the `Store` interface alone; `Marker` is what the
service needs of the durable marker file (`helperd.stores.migration.MigrationMarker`), which
says a migration has begun and not yet finished, so that start-up keeps the complete source.
"""

from __future__ import annotations

from typing import Protocol

from helperd_client.errors import StoreUnavailableError

from helperd.core.store import Store

__all__ = ["Marker", "copy_verified"]


def copy_verified(source: Store, target: Store) -> int:
    """Copy every record of ``source`` into ``target`` and verify each; return the count.

    Raises:
        StoreUnavailableError: a record did not read back identical; the source is intact.
        HelperdError: either store failed; the source is intact.
    """
    records = source.records()
    for record in records:
        target.put(record, source.password(record))
    copied = {r.key: r for r in target.records()}
    for record in records:
        same_facts = copied.get(record.key) == record
        same_secret = (
            same_facts
            and target.password(record).get_secret_value()
            == source.password(record).get_secret_value()
        )
        if not same_secret:
            raise StoreUnavailableError(
                f"record {record.name!r} (username {record.username!r}) did not read back"
                f" identical from the {target.kind} store; nothing was deleted"
            )
    return len(records)


class Marker(Protocol):
    """Records, durably, that a migration to a store kind has begun, and then that it ended."""

    def begin(self, kind: str) -> None:  # pragma: no cover - protocol
        """Record, durably, that a migration to ``kind`` starts now."""
        ...

    def end(self) -> None:  # pragma: no cover - protocol
        """The migration is complete: forget it."""
        ...
