"""The encrypted store file's format: its header, its index and its segments of records.

File format, version 4 (docs/file-format.md gives every field and the reasons)::

    {"aead":"AES-256-GCM","check":"…","format":"helperd-store","generation":1,"key":{…},…}
    <binary: the sealed index, then each segment's AES-256-GCM ciphertext and tag>

The first line is a JSON header (UTF-8, compact, sorted keys: ``aead``, ``check``, ``format``,
``generation``, ``key``, ``nonce``, ``segments``, ``version``) ended by ``\\n``. ``key`` says how
the master key is made (`helperd.stores.keys.KeySpec`), ``check`` tells a wrong passphrase from a
damaged file, ``nonce`` is 12 random bytes fresh for every write and ``generation`` counts writes.
The records are shared out among ``segments`` segments (a power of two) by a CRC-32 of their key;
each segment is one line per record, ``[<Record.model_dump(mode="json")>, "<password>"]``,
sorted by key, encrypted on its own (its number in its associated data). The index lists each
segment's nonce, length and tag, and is sealed with the header's nonce and the header line as
associated data, so no byte of the file changes unnoticed, and a segment from another write
does not fit.

Beside the file, its journal holds the writes of a few records made since the file was written
whole: `helperd.stores.file_journal` gives its format.

Version 3 is version 4 without a journal; version 2 held every line in one ciphertext,
version 1 the JSON ``{"records": [{…, "password": "…"}]}``; all are still read, and
`helperd.stores.file_store.FileStore` rewrites them as version 4 on opening.

`helperd.stores.file_store.FileStore` and `helperd.stores.file_journal` are the only users of
these private names.
"""

from __future__ import annotations

import base64
import bisect
import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

from cryptography.exceptions import InvalidTag
from helperd_client.errors import StoreUnavailableError
from pydantic import TypeAdapter, ValidationError

from helperd.core.bulk import paused_gc
from helperd.core.catalog import Delta
from helperd.core.record import Record, RecordKey
from helperd.stores.keys import KeySpec, StoreKey, decode_b64

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


class _NewerVersionError(Exception):
    """The header's format version is newer than this helperd's; the message is the version."""


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


def _parse(raw: bytes, path: Path) -> tuple[_Header, bytes, bytes]:
    """Split a file into its header, its header line and its ciphertext."""
    line, newline, ciphertext = raw.partition(b"\n")
    try:
        if not newline:
            raise ValueError("it has no header line")
        return _decode_header(line), line, ciphertext
    except _NewerVersionError as exc:
        raise StoreUnavailableError(
            f"store file {path} was written by a newer helperd (format version {exc});"
            " it was left untouched. Upgrade helperd to open it"
        ) from None
    except ValueError as exc:
        raise StoreUnavailableError(
            f"store file {path} is damaged or not a helperd store ({exc}); it was left"
            " untouched. Restore it from a backup, or move it away to start a new store"
        ) from None


def _decrypt(key: StoreKey, raw: bytes, path: Path) -> _Open:
    header, line, body = _parse(raw, path)
    try:
        with paused_gc():
            if header.version >= SEGMENTED:
                return _decode_v3(key, header, line, body)
            plaintext = key.decrypt(header.nonce, body, line)
            if header.version == 1:
                return _decode_v1(key, header, plaintext)
            return _decode_v2(key, header, plaintext)
    except (InvalidTag, ValueError, TypeError, KeyError, RecursionError, ValidationError):
        # Never chain or quote: JSON and pydantic errors quote the decrypted input.
        raise StoreUnavailableError(
            f"store file {path} failed its integrity check (damaged, truncated or"
            " tampered with); it was left untouched. Restore it from a backup, or move it"
            " away to start a new store"
        ) from None


def _decode_header(line: bytes) -> _Header:
    """Parse a header line (raises ValueError saying what is wrong, or _NewerVersionError)."""
    try:
        header = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ValueError("its first line is not a JSON header") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"its header does not say format {FORMAT!r}")
    version = header.get("version")
    if _is_int(version) and version > VERSION:
        raise _NewerVersionError(str(version))
    if version not in (1, 2, SEGMENTED, VERSION) or not _is_int(version):
        raise ValueError("its header has no valid version")
    segmented = version >= SEGMENTED
    if set(header) != (_HEADER_FIELDS | {"segments"} if segmented else _HEADER_FIELDS):
        raise ValueError("its header has missing or unknown fields")
    if header["aead"] != AEAD:
        raise ValueError(f"its cipher is not {AEAD}")
    generation = header["generation"]
    if not _is_int(generation) or generation < 1:
        raise ValueError("its generation is not a positive integer")
    spec = KeySpec.from_json(header["key"], header["check"])
    nonce = decode_b64(header["nonce"], NONCE_BYTES, "nonce")
    segments = header.get("segments", 1)
    if not _is_int(segments) or not 1 <= segments <= MAX_SEGMENTS:
        raise ValueError(f"its segment count is not an integer from 1 to {MAX_SEGMENTS}")
    return _Header(spec, nonce, generation, version, segments)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


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
    records: tuple[Record, ...] = field(repr=False)
    """Every record, sorted by key: what `FileStore.records` hands out for this version."""
    previous: tuple[Record, ...] | None = field(default=None, repr=False)
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


_Made = tuple[tuple[_Segment, ...], tuple[RecordKey, ...], tuple[Record, ...]]
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


_Changes = Mapping[RecordKey, _Piece | None]
"""A write: per key, the new entry and its line (added or replaced), or None (removed)."""

_FEW = 8
"""Changes up to which the sorted records are spliced per change rather than rebuilt."""


def _pieces_of(changes: Mapping[RecordKey, _Entry | None]) -> dict[RecordKey, _Piece | None]:
    """Each changed entry with its line, encoded once for the segment and the journal."""
    return {
        key: None if entry is None else (entry, _encode(entry)) for key, entry in changes.items()
    }


def _edited(opened: _Open, changes: _Changes) -> tuple[_Made, Delta]:
    """The segments, bounds and sorted records of ``opened`` with ``changes`` made, and the
    delta from ``opened``'s records.

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
    if len(changes) > _FEW:
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


def _decode_v3(key: StoreKey, header: _Header, line: bytes, body: bytes) -> _Open:
    """Open version 3: the index, then each segment, checked against the index."""
    count = header.segments
    size = count * _INDEX_ENTRY + TAG_BYTES
    if len(body) < size:
        raise ValueError("the index is truncated")
    index = key.decrypt(header.nonce, body[:size], line)
    at, sealed, plaintexts = size, [], []
    for number in range(count):
        entry = index[number * _INDEX_ENTRY : (number + 1) * _INDEX_ENTRY]
        nonce, length = entry[:NONCE_BYTES], int.from_bytes(entry[NONCE_BYTES:-TAG_BYTES], "big")
        chunk = body[at : at + length]
        if len(chunk) != length or chunk[-TAG_BYTES:] != entry[-TAG_BYTES:]:
            raise ValueError("a segment does not match the index")
        plaintexts.append(key.decrypt(nonce, chunk, _SEGMENT_AAD))
        sealed.append((chunk, nonce))
        at += length
    if at != len(body):
        raise ValueError("bytes follow the last segment")
    groups = [text.split(b"\n") if text else [] for text in plaintexts]
    if count > 1 and not all(groups):
        raise ValueError("a segment is empty")
    lines = [line for group in groups for line in group]
    items = _items(lines)
    pieces, keys, records = _pieces(items, lines)
    segments, taken = [], 0
    for group, (chunk, nonce) in zip(groups, sealed, strict=True):
        run = keys[taken : taken + len(group)]
        segments.append(
            _Segment(dict(zip(run, pieces[taken : taken + len(group)], strict=True)), chunk, nonce)
        )
        taken += len(group)
    bounds = tuple(next(iter(s.pieces)) for s in segments[1:])
    return _Open(key, header, tuple(segments), bounds, records)


def _pieces(
    items: list[tuple[Record, str]], lines: list[bytes]
) -> tuple[list[_Piece], list[RecordKey], tuple[Record, ...]]:
    """The pieces, keys and records of parsed lines, which must be in strictly increasing
    key order (raises ValueError otherwise: that also rules out a key twice)."""
    records = tuple(map(_record_of, items))
    keys = list(map(_KEY, records))
    if any(map(operator.ge, keys, keys[1:])):  # in C: sorted, and no key twice
        raise ValueError("the records are not sorted by key")
    return list(zip(items, lines, strict=True)), keys, records


_KEY: Callable[[Record], RecordKey] = operator.attrgetter("name", "username")


_LINES: TypeAdapter[list[tuple[Record, str]]] = TypeAdapter(list[tuple[Record, str]])


def _items(lines: list[bytes]) -> list[tuple[Record, str]]:
    """Every line as a (record, password), validated in one pydantic call rather than one
    model per record from Python: opening a 100,000-record store spends its time here.

    Raises:
        ValidationError: a line is not ``[record, password]``.
    """
    # json, not pydantic's parser: only Python's takes the lone surrogates a str may hold.
    return _LINES.validate_python(json.loads(b"[" + b",".join(lines) + b"]"), strict=False)


def _decode_v2(key: StoreKey, header: _Header, plaintext: bytes) -> _Open:
    """Open version 2 (one line per record, sorted, in one ciphertext), to be rewritten.

    Raises:
        ValidationError: a line is not ``[record, password]``.
        ValueError: two records share a key, or the lines are not sorted by key.
    """
    lines = plaintext.split(b"\n") if plaintext else []
    pieces, _, records = _pieces(_items(lines), lines)
    return _Open(key, header, *_runs(pieces), records)


def _decode_v1(key: StoreKey, header: _Header, plaintext: bytes) -> _Open:
    """Open version 1 (raises ValueError, TypeError or KeyError when not valid)."""
    document = json.loads(plaintext.decode("utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise ValueError("not a records document")
    entries: dict[RecordKey, _Entry] = {}
    for item in document["records"]:
        fields = dict(item)
        password = fields.pop("password")
        if not isinstance(password, str):
            raise TypeError("password is not a string")
        record = Record.model_validate(fields)
        if record.key in entries:
            raise ValueError("two records share a key")
        entries[record.key] = (record, password)
    return _Open(key, header, *_built(entries.values()))
