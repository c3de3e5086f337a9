"""The store file's journal: its format, and the file as its writer sees it.

Beside the store file, its journal (``<file>.journal``) holds each write of a few records made
since the file was written whole: `JOURNAL_MAGIC`, the 12-byte nonce of the file's header (the
file it follows), then one entry per write, appended and fsynced: its length (4 bytes,
big-endian), a fresh 12-byte nonce and the AES-256-GCM output of its lines (``+`` and a record's
line, or ``-`` and the JSON ``[name, username]`` of a removed one), with the file's nonce and the
entry's number as associated data. Opening replays the journal over the file, up to its first
entry that does not hold together: only the last append can be unfinished (each one is fsynced
before it is acknowledged), and a power loss may keep any part of it; what follows is dropped,
and the next write writes the whole file. A write that would make the journal bigger than a
quarter of the file (at least 64 KiB, at most 1 MiB) writes the whole file again instead,
re-encrypting only the segments that changed, and starts a new journal. A journal that follows
another file (a crash between those two renames) holds nothing the file lacks, and is ignored.

The store file itself is `helperd.stores.file_format`; docs/file-format.md gives every field
and the reasons. `helperd.stores.file_store.FileStore` is the only user of these names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from helperd_client.errors import StoreUnavailableError
from pydantic import ValidationError

from helperd.core.bulk import paused_gc
from helperd.core.record import RecordKey
from helperd.stores import durable
from helperd.stores.file_decode import _items
from helperd.stores.file_format import (
    NONCE_BYTES,
    TAG_BYTES,
    VERSION,
    _Changes,
    _entry_key,
    _Header,
    _Piece,
)
from helperd.stores.keys import StoreKey

__all__ = [
    "JOURNAL_HEAD",
    "JOURNAL_MAGIC",
    "JournalFile",
    "change_text",
    "changes_of",
    "journal_room",
]

log = logging.getLogger(__name__)

JOURNAL_MAGIC = b"helperd-journal 1\n"
"""The journal's first bytes; the nonce of the file it follows comes next."""
JOURNAL_HEAD = len(JOURNAL_MAGIC) + NONCE_BYTES
"""Where the journal's first entry starts."""
_LENGTH_BYTES = 4
_JOURNAL_AAD = b"helperd-store journal"
_JOURNAL_MIN = 64 << 10
_JOURNAL_MAX = 1 << 20


def journal_room(file_size: int) -> int:
    """How big the journal may grow beside a file of ``file_size`` bytes: a quarter of it, at
    least 64 KiB (a small store writes itself whole once in a few hundred writes), at most
    1 MiB (what opening replays stays a small part of opening a big store)."""
    return min(max(file_size // 4, _JOURNAL_MIN), _JOURNAL_MAX)


def _entry_aad(file_nonce: bytes, number: int) -> bytes:
    """An entry's associated data: it fits only this file's journal, at this place."""
    return _JOURNAL_AAD + file_nonce + number.to_bytes(8, "big")


def _journal_entry(
    key: StoreKey,
    file_nonce: bytes,
    number: int,
    changes: _Changes,
    randbytes: Callable[[int], bytes],
) -> bytes:
    """Journal entry ``number`` for a write of ``changes``: its length, nonce and ciphertext."""
    nonce = randbytes(NONCE_BYTES)
    sealed = key.encrypt(nonce, change_text(changes), _entry_aad(file_nonce, number))
    return (NONCE_BYTES + len(sealed)).to_bytes(_LENGTH_BYTES, "big") + nonce + sealed


@dataclass(frozen=True)
class _Journal:
    """What a journal holds for the file it follows."""

    changes: dict[RecordKey, _Piece | None] = field(default_factory=dict, repr=False)
    entries: int = 0
    end: int = 0
    """Where the next entry goes; 0: none may be appended before the journal is started again."""
    dropped: int = 0
    """Bytes after the last whole entry (an unfinished append, or damage), not replayed."""


def _read_journal(key: StoreKey, header: _Header, raw: bytes | None, path: Path) -> _Journal:
    """The changes a journal holds for the file whose header is ``header``.

    No journal, or one that follows another file (a crash between the file's rename and the
    journal's): nothing, and a new journal is started at the next write. The entries are read
    up to the first that does not hold together (cut short, its length or tag wrong: an append
    that never finished); that one and what follows are dropped, and a new journal is started
    at the next write, so that no entry number is ever used twice under one file.

    Raises:
        StoreUnavailableError: the journal does not start as one, or an entry that passed its
            tag does not hold valid lines.
    """
    if raw is None:
        return _Journal()
    if len(raw) < JOURNAL_HEAD or not raw.startswith(JOURNAL_MAGIC):
        raise _damaged_journal(path)  # written whole by a rename: never cut short
    if raw[len(JOURNAL_MAGIC) : JOURNAL_HEAD] != header.nonce:
        return _Journal()
    try:
        with paused_gc():
            return _replay(key, header.nonce, raw)
    except (InvalidTag, ValueError, TypeError, RecursionError, ValidationError):
        pass
    raise _damaged_journal(path)  # out here, with no context: errors quote the plaintext


def _replay(key: StoreKey, file_nonce: bytes, raw: bytes) -> _Journal:
    """Decrypt the entries of a journal that follows the file with nonce ``file_nonce``, up to
    the first that does not hold together."""
    at, number, texts = JOURNAL_HEAD, 0, []
    while at < len(raw):
        length = int.from_bytes(raw[at : at + _LENGTH_BYTES], "big")
        end = at + _LENGTH_BYTES + length
        if end > len(raw) or length < NONCE_BYTES + TAG_BYTES:
            break
        start = at + _LENGTH_BYTES + NONCE_BYTES
        try:
            text = key.decrypt(
                raw[start - NONCE_BYTES : start], raw[start:end], _entry_aad(file_nonce, number)
            )
        except InvalidTag:
            break
        texts.append(text)
        at, number = end, number + 1
    changes = changes_of([line for text in texts for line in text.split(b"\n")])
    return _Journal(changes, number, at, len(raw) - at)


def change_text(changes: _Changes) -> bytes:
    """The plaintext of a journal entry for ``changes``: a line per record, ``+<entry line>``
    for one written, ``-<[name, username]>`` for one removed. The writer process tells the
    daemon of a write in the same text (`helperd.daemon.writer`)."""
    return b"\n".join(
        b"-" + json.dumps(list(k), separators=(",", ":")).encode("ascii")
        if piece is None
        else b"+" + piece[1]
        for k, piece in changes.items()
    )


def changes_of(lines: list[bytes]) -> dict[RecordKey, _Piece | None]:
    """The changes that lines of `change_text` make, later lines winning.

    Raises:
        ValueError, TypeError, ValidationError: a line that does not hold together.
    """
    puts = iter(_items([line[1:] for line in lines if line[:1] == b"+"]))
    changes: dict[RecordKey, _Piece | None] = {}
    for line in lines:
        if line[:1] == b"+":
            entry = next(puts)
            changes[_entry_key(entry)] = (entry, line[1:])
        elif line[:1] == b"-":
            name, username = json.loads(line[1:])
            if not isinstance(name, str) or not isinstance(username, str):
                raise TypeError("a removed key is not two strings")
            changes[(name, username)] = None
        else:
            raise ValueError("a line is neither added nor removed")
    return changes


def _damaged_journal(path: Path) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"the journal {path} failed its integrity check (damaged or tampered with); it was"
        " left untouched. Restore the store from a backup, or move the store and its journal"
        " away to start a new one"
    )


class JournalFile:
    """The journal beside a store file, as its writer sees it: where the next entry goes, the
    descriptor it is appended through, and how big it may grow. `FileStore` uses it with its
    writer lock held only; readers never look at it.

    No entry may be appended while the journal must be started again first (there is none, it
    follows another file, its replay dropped bytes, or a write failed): the next write writes
    the whole file, then `start` starts a new journal, so that no entry number is ever used
    twice under one file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None  # open for appends while the journal is the same
        self._entries = 0
        """Entries in the journal since the file was written whole: the next entry's number."""
        self._end = 0
        """Where the next entry goes; 0 when the journal must be started again first."""
        self._room = 0
        """How big the journal may grow: `journal_room` of the store file's size."""

    @property
    def folded(self) -> bool:
        """True when the journal holds no entry and follows the file: the file alone holds
        every record (a journal to start again does not count)."""
        return bool(self._end) and not self._entries

    def read(self, key: StoreKey, header: _Header) -> _Journal:
        """What the journal holds for the file whose header is ``header`` (only a version 4 file
        has one), with the bytes its replay dropped logged.

        Raises:
            StoreUnavailableError: the journal is damaged (see `_read_journal`).
        """
        raw = durable.read_private(self.path) if header.version == VERSION else None
        journal = _read_journal(key, header, raw, self.path)
        if journal.dropped:
            log.warning(
                "%s: %d byte(s) after its last whole entry (a write that never finished) were"
                " not replayed; the next write writes the whole store",
                self.path,
                journal.dropped,
            )
        return journal

    def follow(self, journal: _Journal, file_size: int) -> None:
        """Go on after ``journal``, just replayed over a file of ``file_size`` bytes: the next
        entry after its last, or, when its replay dropped bytes, none before a new journal."""
        self._entries = journal.entries
        self._end = 0 if journal.dropped else journal.end
        self._room = journal_room(file_size)

    def append(
        self,
        key: StoreKey,
        file_nonce: bytes,
        changes: _Changes,
        randbytes: Callable[[int], bytes],
    ) -> bool:
        """Append the entry of a write of ``changes`` and fsync it: True once it is durable,
        False (nothing written) when the journal must be started again or the entry would make
        it bigger than its room, and the whole file is to be written instead.

        On failure the entry is cut off again (as far as the disk lets it), and the journal
        must be started again: the next write, lock or close writes the whole file and a new
        journal, so a write reported as failed never comes back from this journal.

        Raises:
            StoreUnavailableError: the write failed (full disk, I/O error).
        """
        if not self._end:
            return False
        entry = _journal_entry(key, file_nonce, self._entries, changes, randbytes)
        if self._end + len(entry) > self._room:
            return False
        try:
            if self._fd is None:
                self._fd = durable.open_for_append(self.path)
            fd = self._fd
            durable.write_at(fd, entry, self._end)
            os.fdatasync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                if self._fd is not None:
                    os.ftruncate(self._fd, self._end)
                    os.fdatasync(self._fd)
            self.stop()
            raise StoreUnavailableError(
                f"could not write {self.path}: {exc.strerror or exc}"
            ) from None
        self._entries += 1
        self._end += len(entry)
        return True

    def start(self, file_nonce: bytes, file_size: int) -> None:
        """Replace the journal with an empty one that follows the file just written, whose
        nonce is ``file_nonce``. On failure the file still holds every record, and the old
        journal follows the old file, so it is ignored: the next write tries again by writing
        the whole file."""
        self.stop()
        self._entries, self._room = 0, journal_room(file_size)
        try:
            durable.write_atomic(self.path, JOURNAL_MAGIC + file_nonce)
        except StoreUnavailableError as exc:
            log.warning("no journal for now, every write writes the whole file: %s", exc.message)
            return
        self._end = JOURNAL_HEAD

    def stop(self) -> None:
        """After a failed write: no entry until the journal is started again (the next write is
        a whole one). The journal open may follow a file that is no longer on disk."""
        self._end = 0
        self.close()

    def close(self) -> None:
        """Close the descriptor appends go through (the next append opens it again)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
