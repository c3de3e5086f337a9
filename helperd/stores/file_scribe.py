"""A writer process writing a `helperd.stores.file_store.FileStore` for its daemon.

A daemon whose store is a key-file file store hands its writes to a process of its own
(`helperd.daemon.writer`, which says why). Its `FileStore` then writes nothing itself: each
write goes to the process (the store's `Scribe`), and each write the process made durable,
whoever asked for it, reaches the daemon's snapshot through `Scribed.apply`. The process's own
`FileStore` writes as any does, and tells of each write through ``committed``.

`Scribed` is a part of `FileStore`, kept in a module of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from helperd_client.errors import StoreUnavailableError

from helperd.core.catalog import Delta
from helperd.stores import durable
from helperd.stores.file_format import _Changes, _edited, _Open
from helperd.stores.file_journal import JournalFile

__all__ = ["Changes", "Scribe", "Scribed"]

Changes = _Changes
"""A write of a few records: for each key, its record and password with the record's line in
the file, or None for a record removed (what `Scribe.commit` makes durable)."""


class Scribe(Protocol):
    """Who writes a `FileStore` while a writer process does (`FileStore.hand_writes_to`)."""

    def commit(self, changes: Changes) -> None:
        """Make ``changes`` durable; the store has applied them when this returns.

        Raises:
            StoreUnavailableError: the write failed, or its outcome is unknown.
        """
        ...  # pragma: no cover - protocol

    def close(self) -> None:
        """Write the journal into the file and stop writing."""
        ...  # pragma: no cover - protocol


class Scribed:
    """The writer-process side of `FileStore` (its writer lock is ``_lock``)."""

    key_file: Path | None
    _open: _Open | None
    _journal: JournalFile
    _file_lock: durable.FileLock
    _scribe: Scribe | None
    committed: Callable[[_Changes], None] | None

    _lock: threading.Lock

    if TYPE_CHECKING:

        def _open_entries(self) -> _Open: ...

        def _open_with_key_file(self, key_file: Path) -> _Open: ...

        def _commit_changes(self, changes: _Changes) -> None: ...

    def write_changes(self, changes: _Changes) -> None:
        """Make ``changes`` (records with their passwords, or None for one removed) durable
        at once: the writes a writer process is sent by its daemon."""
        with self._lock:
            self._write_changes(changes)

    # A writer process (helperd.daemon.writer): the daemon's side.

    def hand_writes_to(self, start: Callable[[], Scribe]) -> None:
        """Open the store, then let the scribe ``start`` returns write it from now on.

        The scribe opens the store itself while this store's writer lock is held, so that both
        hold the same records; from then on every write of this store is the scribe's, and
        reaches this store's snapshot through `apply`.

        Raises:
            HelperdError: the store cannot be opened, or the scribe did not start.
        """
        with self._lock:
            self._open_entries()
            self._journal.close()  # the scribe may replace the journal: appends open it anew
            self._scribe = start()

    def apply(self, changes: _Changes) -> Delta:
        """Make a write the scribe made durable the current version, and return what it
        changed (no I/O, no lock: the daemon calls it on its event loop, the one place that
        changes the open store while a scribe writes it)."""
        current = self._open
        if current is None or self._scribe is None:
            raise StoreUnavailableError("no writer process writes this store")
        made, delta = _edited(current, changes, later=True)  # no pass over every record
        self._open = _Open(current.key, current.header, *made, current.records, delta)
        return delta

    def take_writes_back(self) -> None:
        """After the scribe ended on its own: open the store from disk again, which holds any
        write it made durable but did not tell of, and write it here again."""
        with self._lock:
            self._scribe = None
            earlier = self._open
            if earlier is None or self.key_file is None:
                return
            try:  # the old version is served until the new one is open
                self._open_with_key_file(self.key_file)
            except BaseException:
                self._open = None  # opened again on its next use
                raise
            finally:
                earlier.key.wipe()

    def held_lock(self) -> int | None:
        """The descriptor holding the store's lock, to hand to a writer process."""
        return self._file_lock.fileno()

    def _write_changes(self, changes: _Changes) -> None:
        """Make ``changes`` durable here, or through the scribe while one writes (self._lock
        held)."""
        if self._scribe is not None:
            self._open_entries()
            self._scribe.commit(changes)  # applied to this store before it returns
            return
        self._commit_changes(changes)
        if self.committed is not None:
            self.committed(changes)

    def _end_scribe(self) -> bool:
        """End the scribe, which writes the journal into the file; False when none writes."""
        scribe, self._scribe = self._scribe, None
        if scribe is None:
            return False
        scribe.close()
        return True
