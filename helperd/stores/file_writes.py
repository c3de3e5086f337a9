"""The file store's writes: a write of a few records (one journal entry, or the whole file),
the whole writes (a new store, a new passphrase, the upgrade of an older version, the fold-in of
the journal on lock and close), and the rules that keep a failed write from coming back.

A whole write encrypts the segments not sealed yet, writes the file atomically and durably
(`helperd.stores.durable.write_atomic`), makes it current, then starts a new journal that
follows it. A failed write changes nothing in memory, and only a whole write may follow it: a
failed append is cut off (`helperd.stores.file_journal.JournalFile.append`), and a whole write
may have failed after its rename, which leaves a journal that follows the file before. One
exception: a whole write of a new store, passphrase or header whose rename happened and whose
folder fsync alone failed (`helperd.stores.durable.NotDurableError`) is made current, since
that is the file an open finds now.

`FileWrites` is a part of `helperd.stores.file_store.FileStore`, kept in a module of its own;
every method runs with the store's writer lock held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from helperd_client.errors import StoreUnavailableError

from helperd.core.catalog import Delta
from helperd.core.record import Record
from helperd.stores import durable
from helperd.stores.file_format import (
    NONCE_BYTES,
    VERSION,
    _built,
    _Changes,
    _edited,
    _Entry,
    _Header,
    _Made,
    _made_of,
    _Open,
    _sealed,
    _unsealed,
)
from helperd.stores.file_journal import JournalFile
from helperd.stores.keys import KeySpec, StoreKey

__all__ = ["FileWrites"]

log = logging.getLogger(__name__)


class FileWrites:
    """The writes of `helperd.stores.file_store.FileStore` (its writer lock held)."""

    path: Path
    _randbytes: Callable[[int], bytes]
    _journal: JournalFile
    _open: _Open | None

    if TYPE_CHECKING:

        def _open_entries(self) -> _Open: ...

    def _write_whole(self) -> None:
        """Fold the journal into the file, so that the file alone holds every record (on lock
        and close: a copy of the stopped store's file is a whole backup). A failure is only
        logged: the journal still holds the changes (self._lock held)."""
        opened = self._open
        if opened is None or self._journal.folded:
            return  # nothing to fold in (a journal to start again counts as something)
        header = opened.header
        try:
            self._write(opened.key, header.spec, header.generation + 1, _made_of(opened))
        except StoreUnavailableError as exc:
            log.warning("the journal stays beside the store file: %s", exc.message)

    def _upgrade(self) -> None:
        """Rewrite a file of an older version just opened in the current one, and start its
        journal (self._lock held).

        One atomic, durable write like any whole write: a crash leaves the old file or the new
        one, both holding every record.
        """
        opened = self._open
        if opened is not None and opened.header.version < VERSION:
            header = opened.header
            self._write(opened.key, header.spec, header.generation + 1, _unsealed(opened))

    def _commit_changes(self, changes: _Changes) -> None:
        """Make ``changes`` durable: one journal entry, or the whole file when the journal is
        full (or must be started again). Readers see the previous version until then."""
        current = self._open_entries()
        made, delta = _edited(current, changes)
        header = current.header
        if self._journal.append(current.key, header.nonce, changes, self._randbytes):
            self._open = _Open(current.key, header, *made, current.records, delta)
            return
        generation = header.generation + 1
        self._write(current.key, header.spec, generation, made, (current.records, delta))

    def _commit_all(
        self, entries: Iterable[_Entry], key: StoreKey, spec: KeySpec, generation: int
    ) -> _Open:
        """Write ``entries`` as the whole store, under ``key`` (a new store, a new passphrase)."""
        return self._write(key, spec, generation, _built(entries))

    def _write(
        self,
        key: StoreKey,
        spec: KeySpec,
        generation: int,
        made: _Made,
        change: tuple[Sequence[Record], Delta] | None = None,
    ) -> _Open:
        """Write ``made`` durably, then make it current (self._lock held). A failed write
        changes nothing, but for a `NotDurableError` when ``change`` is None (see below). The
        segments not sealed yet are encrypted here. ``change`` is the previous records and what
        a write of a few records changed (`records_delta`)."""
        segments, bounds, records = made
        header = _Header(spec, self._randbytes(NONCE_BYTES), generation, segments=len(segments))
        line = header.encode()
        segments, body = _sealed(key, header, line, segments, self._randbytes)
        previous, delta = (None, None) if change is None else change
        written = _Open(key, header, segments, bounds, records, previous, delta)
        try:
            durable.write_atomic(self.path, [line + b"\n", *body])
        except StoreUnavailableError as exc:
            # From now on only a whole write may follow, never an entry in the journal of the
            # file before: the rename may have happened.
            self._journal.stop()
            if isinstance(exc, durable.NotDurableError) and change is None:
                # It did: the new file is what an open finds now. A new store or passphrase
                # (or the same records under a new header) must be what memory holds too, or
                # the next whole write would undo it. A write of a few records stays failed,
                # as reported: it is not served, and the next whole write leaves it out.
                self._open = written
            raise
        self._open = written
        self._journal.start(header.nonce, len(line) + 1 + sum(map(len, body)))
        return self._open
