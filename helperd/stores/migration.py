"""The marker file of a migration from one store to another, so that none loses a record.

`helperd.core.migration.copy_verified` copies and then reads every record back from the
target, comparing facts and password, before anything is deleted. The daemon wraps it in a
marker file (`MigrationMarker`): while the marker names a target and the source still exists,
the store choice at start-up keeps the source, which is complete until the copy is verified. So a
``kill -9`` or a power cut at any point of a migration loses nothing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from helperd.stores.durable import fsync_dir, read_private, write_atomic

__all__ = ["MigrationMarker"]


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
