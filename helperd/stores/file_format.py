"""The encrypted store file's format: its header, its index and its segments of records.

File format, version 4 (docs/file-format.md gives every field and the reasons)::

    {"aead":"AES-256-GCM","check":"…","format":"helperd-store","generation":1,"key":{…},…}
    <binary: the sealed index, then each segment's AES-256-GCM ciphertext and tag>

The first line is a JSON header (UTF-8, compact, sorted keys: ``aead``, ``check``, ``format``,
``generation``, ``key``, ``nonce``, ``segments``, ``version``) ended by ``\\n``. ``key`` says how
the master key is made (`helperd.stores.keys.KeySpec`), ``check`` tells a wrong passphrase from a
damaged file, ``nonce`` is 12 random bytes fresh for every whole write and ``generation``
counts whole writes. The records are shared out among ``segments`` segments, each a run of
records adjacent in key order: one line per record, ``[<Record.model_dump(mode="json")>,
"<password>"]``, sorted by key, encrypted on its own under a nonce of its own. The index lists
each segment's nonce, length and tag, and is sealed with the header's nonce and the header line
as associated data, so no byte of the file changes unnoticed, and a segment from another write
does not fit.

Beside the file, its journal holds the writes of a few records made since the file was written
whole: `helperd.stores.file_journal` gives its format.

This module builds, edits and encrypts the file; `helperd.stores.file_decode` reads it back,
older versions included.

`helperd.stores.file_store.FileStore`, `helperd.stores.file_journal` and
`helperd.stores.file_decode` are the only users of these private names.
"""

from __future__ import annotations

import base64
import bisect
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import overload

from helperd.core.catalog import Delta
from helperd.core.record import Record, RecordKey
from helperd.stores.keys import KeySpec, StoreKey

__all__ = ["AEAD", "FORMAT", "NONCE_BYTES", "VERSION"]

FORMAT = "helperd-store"
VERSION = 4
"""Version 4 is followed by a journal; version 3 holds the records in segments without one;
1 and 2 in one ciphertext (all three are read, and rewritten)."""
SEGMENTED = 3
"""The first version with segments (and the ``segments`` header field)."""
AEAD = "AES-256-GCM"
NONCE_BYTES = 12
TAG_BYTES = 16
SEGMENT_RECORDS = 512
"""Records per segment when a store is written whole; a segment is split at twice as many."""
MAX_SEGMENTS = 1 << 20
_INDEX_ENTRY = NONCE_BYTES + 8 + TAG_BYTES
"""An index entry: the segment's nonce, its length (8 bytes, big-endian) and its tag."""
_HEADER_FIELDS = frozenset({"aead", "check", "format", "generation", "key", "nonce", "version"})

_Entry = tuple[Record, str]
"""A record and its password (a plain str: a SecretStr per record made opening slow; the
password leaves the store as a SecretStr, and no repr shows an entry)."""


@dataclass(frozen=True)
class _Header:
    spec: KeySpec
    nonce: bytes
    generation: int
    version: int = VERSION
    segments: int = 1

    def encode(self) -> bytes:
        header: dict[str, object] = {
            "aead": AEAD,
            "check": base64.b64encode(self.spec.check).decode("ascii"),
            "format": FORMAT,
            "generation": self.generation,
            "key": self.spec.to_json(),
            "nonce": base64.b64encode(self.nonce).decode("ascii"),
            "version": self.version,
        }
        if self.version >= SEGMENTED:
            header["segments"] = self.segments
        return json.dumps(header, separators=(",", ":"), sort_keys=True).encode("ascii")


_record_of: Callable[[_Entry], Record] = operator.itemgetter(0)


def _key_of(record: Record) -> RecordKey:
    return (record.name, record.username)


def _entry_key(entry: _Entry) -> RecordKey:
    return (entry[0].name, entry[0].username)


def _encode(entry: _Entry) -> bytes:
    """One entry's line: ``[record, password]`` in JSON (ASCII: never a raw newline)."""
    record, password = entry
    item = [record.model_dump(mode="json"), password]
    # ensure_ascii escapes lone surrogates and newlines too, so any str a password holds
    # round-trips and a line never holds a newline.
    return json.dumps(item, separators=(",", ":"), sort_keys=True).encode("ascii")


_SEGMENT_AAD = b"helperd-store segment"
"""Each segment's associated data; the sealed index fixes which segment goes where."""

_Piece = tuple[_Entry, bytes]
"""An entry and its encoded line."""


@dataclass(frozen=True)
class _Segment:
    """A run of records adjacent in key order, each with its line, and their ciphertext once
    sealed. Never changed in place: an edit makes a new segment (which is sealed anew)."""

    pieces: dict[RecordKey, _Piece] = field(repr=False)
    """Entry and line per key, in key order."""
    sealed: bytes | None = field(default=None, repr=False)
    """The segment's ciphertext and tag under the open key, or None until written."""
    nonce: bytes = b""

    def plaintext(self) -> bytes:
        return b"\n".join(line for _, line in self.pieces.values())


@dataclass(frozen=True)
class _Open:
    """What an open store holds, replaced whole by each write (never changed in place)."""

    key: StoreKey
    header: _Header
    segments: tuple[_Segment, ...] = field(repr=False)
    bounds: tuple[RecordKey, ...] = field(repr=False)
    """The first key of each segment but the first: segment ``i`` holds the keys from
    ``bounds[i - 1]`` up to ``bounds[i]``, excluded."""
    records: Sequence[Record] = field(repr=False)
    """Every record, sorted by key: what `FileStore.records` hands out for this version (a
    tuple, or `_SegmentRecords` for a version a writer process made)."""
    previous: Sequence[Record] | None = field(default=None, repr=False)
    delta: Delta | None = field(default=None, repr=False)
    """The records removed from ``previous`` and added to it to make ``records`` (a write of
    a few records), or None (``previous`` None too)."""

    def entry(self, key: RecordKey) -> _Entry | None:
        """The record and password under ``key``, or None."""
        found = self.segments[bisect.bisect_right(self.bounds, key)].pieces.get(key)
        return None if found is None else found[0]

    def entries(self) -> list[_Entry]:
        """Every record and password, in key order."""
        return [entry for segment in self.segments for entry, _ in segment.pieces.values()]


_Made = tuple[tuple[_Segment, ...], tuple[RecordKey, ...], Sequence[Record]]
"""The segments, bounds and sorted records of a version of the store."""


def _runs(pieces: list[_Piece]) -> tuple[tuple[_Segment, ...], tuple[RecordKey, ...]]:
    """Unsealed segments of `SEGMENT_RECORDS` pieces each (sorted by key), and their bounds."""
    segments = tuple(
        _Segment({_key_of(p[0][0]): p for p in pieces[at : at + SEGMENT_RECORDS]})
        for at in range(0, max(len(pieces), 1), SEGMENT_RECORDS)
    )
    return segments, tuple(next(iter(s.pieces)) for s in segments[1:])


def _built(entries: Iterable[_Entry]) -> _Made:
    """Unsealed segments, bounds and sorted records of a whole new set of entries."""
    ordered = sorted(entries, key=_entry_key)
    return (*_runs([(entry, _encode(entry)) for entry in ordered]), tuple(map(_record_of, ordered)))


def _made_of(opened: _Open) -> _Made:
    """``opened``'s segments (those sealed keep their ciphertext), bounds and records."""
    return opened.segments, opened.bounds, opened.records


def _unsealed(opened: _Open) -> _Made:
    """``opened``'s segments, bounds and records, to be encrypted again (a new key or format)."""
    segments = tuple(_Segment(segment.pieces) for segment in opened.segments)
    return segments, opened.bounds, opened.records


_Changes = Mapping[RecordKey, _Piece | None]
"""A write: per key, the new entry and its line (added or replaced), or None (removed)."""

_FEW = 8
"""Changes up to which the sorted records are spliced per change rather than rebuilt."""


def _pieces_of(changes: Mapping[RecordKey, _Entry | None]) -> dict[RecordKey, _Piece | None]:
    """Each changed entry with its line, encoded once for the segment and the journal."""
    return {
        key: None if entry is None else (entry, _encode(entry)) for key, entry in changes.items()
    }


def _edited(opened: _Open, changes: _Changes, *, later: bool = False) -> tuple[_Made, Delta]:
    """The segments, bounds and sorted records of ``opened`` with ``changes`` made, and the
    delta from ``opened``'s records. With ``later``, the sorted records are read from the
    segments when first asked for (`_SegmentRecords`), not spliced now.

    Only the segments that hold a change are copied (and later encrypted): a write of one
    record to a 100,000-record store encodes and encrypts a few hundred records, not all.
    A segment grown to twice `SEGMENT_RECORDS` is split; an empty one is dropped. Many
    changes at once (a journal replayed on opening) copy each segment once.
    """
    removed = [old[0] for key in changes if (old := opened.entry(key)) is not None]
    groups: dict[int, list[RecordKey]] = {}
    for key in changes:
        groups.setdefault(bisect.bisect_right(opened.bounds, key), []).append(key)
    segments, bounds = list(opened.segments), list(opened.bounds)
    for at in sorted(groups, reverse=True):  # placing one never moves those before it
        pieces = dict(segments[at].pieces)
        added = False
        for key in groups[at]:
            piece = changes[key]
            if piece is None:
                pieces.pop(key, None)
            else:
                added = added or key not in pieces
                pieces[key] = piece
        if added:  # keep the pieces in key order
            pieces = {k: pieces[k] for k in sorted(pieces)}
        _place(segments, bounds, at, pieces)
    records = opened.records
    if later:
        records = _SegmentRecords(tuple(segments))
    elif len(changes) > _FEW:
        records = tuple(piece[0][0] for s in segments for piece in s.pieces.values())
    else:
        for key, piece in changes.items():  # each a bisection and a copy of pointers, in C
            at = bisect.bisect_left(records, key, key=_key_of)
            there = at < len(records) and _key_of(records[at]) == key
            middle = () if piece is None else (piece[0][0],)
            records = (*records[:at], *middle, *records[at + there :])
    added_records = [piece[0][0] for piece in changes.values() if piece is not None]
    return (tuple(segments), tuple(bounds), records), (removed, added_records)


def _place(
    segments: list[_Segment], bounds: list[RecordKey], at: int, pieces: dict[RecordKey, _Piece]
) -> None:
    """Put ``pieces`` as segment ``at``: split in runs of `SEGMENT_RECORDS` once it has grown
    to twice that, dropped when empty (unless it is the only one)."""
    if len(pieces) >= 2 * SEGMENT_RECORDS:
        keys = list(pieces)
        starts = range(0, len(keys), SEGMENT_RECORDS)
        segments[at : at + 1] = [
            _Segment({k: pieces[k] for k in keys[start : start + SEGMENT_RECORDS]})
            for start in starts
        ]
        bounds[at:at] = [keys[start] for start in starts[1:]]
    elif pieces or len(segments) == 1:
        segments[at] = _Segment(pieces)
    else:
        del segments[at]
        del bounds[max(at - 1, 0)]  # the bound that opened it (or that of the next one)


def _sealed(
    key: StoreKey,
    header: _Header,
    line: bytes,
    segments: tuple[_Segment, ...],
    randbytes: Callable[[int], bytes],
) -> tuple[tuple[_Segment, ...], list[bytes]]:
    """Encrypt the segments not sealed yet; return every segment sealed, and the file's body
    as chunks: the index (sealed with the header line as associated data), then each segment."""
    done = [_seal(key, segment, randbytes) for segment in segments]
    chunks = [s.sealed for s in done if s.sealed is not None]
    index = b"".join(
        s.nonce + len(sealed).to_bytes(8, "big") + sealed[-TAG_BYTES:]
        for s, sealed in zip(done, chunks, strict=True)
    )
    return tuple(done), [key.encrypt(header.nonce, index, line), *chunks]


def _seal(key: StoreKey, segment: _Segment, randbytes: Callable[[int], bytes]) -> _Segment:
    if segment.sealed is not None:
        return segment  # unchanged since the last write: its ciphertext is reused
    nonce = randbytes(NONCE_BYTES)
    sealed = key.encrypt(nonce, segment.plaintext(), _SEGMENT_AAD)
    return _Segment(segment.pieces, sealed, nonce)


class _SegmentRecords(Sequence[Record]):
    """A version's sorted records, read from its segments on first use and kept.

    Splicing a record into the sorted tuple of every record touches each of them (at 10,000
    records, 60 µs on a quiet machine and several times that beside a busy writer): work the
    daemon would do on its event loop at each set a writer process serves (`FileStore.apply`).
    Its gets never need the whole sequence (the lookup catalog follows a write by its delta), so
    it is built only for ``list``, ``status`` and the like, once per version. Immutable, as a
    tuple; compares equal to any sequence of the same records.
    """

    __slots__ = ("_records", "_segments")

    def __init__(self, segments: tuple[_Segment, ...]) -> None:
        self._segments = segments
        self._records: tuple[Record, ...] | None = None

    def _all(self) -> tuple[Record, ...]:
        records = self._records
        if records is None:  # two threads may both build it: the same tuple, either one kept
            pieces = (piece for segment in self._segments for piece in segment.pieces.values())
            records = self._records = tuple(piece[0][0] for piece in pieces)
        return records

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | Sequence[Record]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and self._all() == tuple(other)

    # Unhashable, as a list is: it equals sequences whose hashes differ.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"_SegmentRecords({sum(len(s.pieces) for s in self._segments)} records)"
