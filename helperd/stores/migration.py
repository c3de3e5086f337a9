"""Moving every record from one store to another, losing nothing on the way.

`copy_verified` copies and then reads every record back from the target, comparing facts
and password, before anything is deleted. The daemon wraps it in a marker file
(`MigrationMarker`): while the marker names a target and the source still exists, the store
choice at start-up keeps the source, which is complete until the copy is verified. So a
``kill -9`` or a power cut at any point of a migration loses nothing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from helperd_client.errors import StoreUnavailableError

from helperd.core.store import Store
from helperd.stores.durable import fsync_dir, read_private, write_atomic

__all__ = ["MigrationMarker", "copy_verified"]


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


class MigrationMarker:
    """The file that says a migration to a store kind has begun and not yet finished."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def begin(self, kind: str) -> None:
        """Record, durably, that a migration to ``kind`` starts now."""
        write_atomic(self.path, kind.encode() + b"\n")

    def target(self) -> str | None:
        """The store kind an unfinished migration was moving to, or None."""
        data = read_private(self.path)
        return None if data is None else data.decode(errors="replace").strip()

    def end(self) -> None:
        """The migration is complete: forget it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
            fsync_dir(self.path.parent)
