"""The encrypted store file's format: its header, and the encoding of its records.

File format, version 2 (docs/file-format.md gives every field and the reasons)::

    {"aead":"AES-256-GCM","check":"…","format":"helperd-store","generation":1,"key":{…},…}
    <binary: AES-256-GCM ciphertext followed by its 16-byte tag>

The first line is a JSON header (UTF-8, compact, sorted keys: ``aead``, ``check``, ``format``,
``generation``, ``key``, ``nonce``, ``version``) ended by ``\\n``; the rest is the ciphertext.
``key`` says how the master key is made (`helperd.stores.keys.KeySpec`), ``check`` tells a
wrong passphrase from a damaged file, ``nonce`` is 12 random bytes fresh for every write and
``generation`` counts writes (groundwork for rollback detection). The associated data is the
header line without its ``\\n``, so no header byte changes unnoticed. The plaintext is one
line per record, ``[<Record.model_dump(mode="json")>, "<password>"]``, sorted by key; version 1
held the JSON ``{"records": [{<Record.model_dump(mode="json")>, "password": "…"}]}`` and is
still read (`helperd.stores.file_store.FileStore` rewrites it as version 2 on opening).

`helperd.stores.file_store.FileStore` is the only user of these private names.
"""

from __future__ import annotations

import base64
import bisect
import json
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

from cryptography.exceptions import InvalidTag
from helperd_client.errors import StoreUnavailableError
from pydantic import TypeAdapter, ValidationError

from helperd.core.bulk import paused_gc
from helperd.core.record import Record, RecordKey
from helperd.core.store import RecordMap
from helperd.stores.keys import KeySpec, StoreKey, decode_b64

__all__ = ["AEAD", "FORMAT", "NONCE_BYTES", "VERSION"]

FORMAT = "helperd-store"
VERSION = 2
"""Version 2 holds one line per record (version 1, one JSON document, is read and rewritten)."""
AEAD = "AES-256-GCM"
NONCE_BYTES = 12
_HEADER_FIELDS = frozenset({"aead", "check", "format", "generation", "key", "nonce", "version"})

_Entry = tuple[Record, str]
"""A record and its password (a plain str: a SecretStr per record made opening slow; the
password leaves the store as a SecretStr, and no repr shows an entry)."""
_Entries = RecordMap[_Entry]
_Pieces = dict[RecordKey, tuple[_Entry, bytes]]


class _NewerVersionError(Exception):
    """The header's format version is newer than this helperd's; the message is the version."""


@dataclass(frozen=True)
class _Header:
    spec: KeySpec
    nonce: bytes
    generation: int
    version: int = VERSION

    def encode(self) -> bytes:
        header = {
            "aead": AEAD,
            "check": base64.b64encode(self.spec.check).decode("ascii"),
            "format": FORMAT,
            "generation": self.generation,
            "key": self.spec.to_json(),
            "nonce": base64.b64encode(self.nonce).decode("ascii"),
            "version": self.version,
        }
        return json.dumps(header, separators=(",", ":"), sort_keys=True).encode("ascii")


@dataclass(frozen=True)
class _Open:
    """What an open store holds, replaced whole by each write (never changed in place)."""

    key: StoreKey
    header: _Header
    entries: _Entries = field(repr=False)
    pieces: _Pieces = field(repr=False)
    """Each entry's encoded JSON (password included: never in a repr), reused by writes."""
    order: list[RecordKey] = field(repr=False, default_factory=list)
    """The keys of ``pieces`` in sorted order (the file's order); never changed in place."""


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
    header, line, ciphertext = _parse(raw, path)
    try:
        plaintext = key.decrypt(header.nonce, ciphertext, line)
        with paused_gc():
            if header.version == 1:
                return _Open(key, header, _decode_records_v1(plaintext), {})
            return _Open(key, header, *_decode_lines(plaintext))
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
    if version not in (1, VERSION) or not _is_int(version):
        raise ValueError("its header has no valid version")
    if set(header) != _HEADER_FIELDS:
        raise ValueError("its header has missing or unknown fields")
    if header["aead"] != AEAD:
        raise ValueError(f"its cipher is not {AEAD}")
    generation = header["generation"]
    if not _is_int(generation) or generation < 1:
        raise ValueError("its generation is not a positive integer")
    spec = KeySpec.from_json(header["key"], header["check"])
    nonce = decode_b64(header["nonce"], NONCE_BYTES, "nonce")
    return _Header(spec, nonce, generation, version)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


_record_of: Callable[[_Entry], Record] = operator.itemgetter(0)
_piece_of: Callable[[tuple[_Entry, bytes]], bytes] = operator.itemgetter(1)


def _encode(entry: _Entry) -> tuple[_Entry, bytes]:
    """One entry's line: ``[record, password]`` in JSON (ASCII: never a raw newline)."""
    record, password = entry
    item = [record.model_dump(mode="json"), password]
    # ensure_ascii escapes lone surrogates and newlines too, so any str a password holds
    # round-trips and a line never holds a newline.
    return entry, json.dumps(item, separators=(",", ":"), sort_keys=True).encode("ascii")


def _encode_pieces(entries: _Entries, known: _Pieces) -> tuple[_Pieces, list[RecordKey]]:
    """Every entry's JSON and the keys in sorted order; an entry ``known`` holds (the very
    same tuple) is reused, not encoded again.

    The pieces joined by newlines in that order are the plaintext of the file.
    """
    order = sorted(entries)
    pieces: _Pieces = {}
    for key in order:
        entry = entries[key]
        held = known.get(key)
        pieces[key] = held if held is not None and held[0] is entry else _encode(entry)
    return pieces, order


def _update_pieces(
    entries: _Entries, current: _Open, changed: Iterable[RecordKey]
) -> tuple[_Pieces, list[RecordKey]]:
    """The current pieces and order with the ``changed`` keys encoded again, added or
    dropped: a write of one record to a big store encodes that record alone."""
    pieces, order = dict(current.pieces), list(current.order)
    if len(pieces) != len(current.entries):  # opened from the file: nothing encoded yet
        pieces, order = _encode_pieces(current.entries, {})
    for key in set(changed):
        entry = entries.get(key)
        if entry is None:
            if pieces.pop(key, None) is not None:
                del order[bisect.bisect_left(order, key)]
            continue
        if key not in pieces:
            bisect.insort(order, key)
        pieces[key] = _encode(entry)
    return pieces, order


_LINES: TypeAdapter[list[tuple[Record, str]]] = TypeAdapter(list[tuple[Record, str]])


def _edited_records(
    before: _Entries, after: _Entries, order: list[RecordKey], changed: set[RecordKey]
) -> tuple[Record, ...] | None:
    """The sorted records of ``after`` made from ``before``'s by its one changed key (a copy
    of pointers, in C), or None to sort them again (several changes, nothing cached)."""
    previous = before.sorted_cache
    if previous is None or len(changed) != 1:
        return None
    (key,) = changed
    at = bisect.bisect_left(order, key)  # the keys below it are the same before and after
    entry = after.get(key)
    if entry is None:
        return previous[:at] + previous[at + 1 :] if key in before else previous
    skip = 1 if key in before else 0  # replaced, or inserted
    return (*previous[:at], entry[0], *previous[at + skip :])


def _decode_lines(plaintext: bytes) -> tuple[_Entries, _Pieces, list[RecordKey]]:
    """Parse version 2 plaintext, keeping each line as the record's encoded piece.

    One pydantic call validates every line, rather than one model per record from Python:
    opening a 100,000-record store spends its time there.

    Raises:
        ValidationError: a line is not ``[record, password]``.
        ValueError: two records share a key, or the lines are not sorted by key.
    """
    lines = plaintext.split(b"\n") if plaintext else []
    # json, not pydantic's parser: only Python's takes the lone surrogates a str may hold.
    items = _LINES.validate_python(json.loads(b"[" + b",".join(lines) + b"]"), strict=False)
    entries = _Entries()
    pieces: _Pieces = {}
    order: list[RecordKey] = []
    for item, line in zip(items, lines, strict=True):
        record = item[0]
        key = (record.name, record.username)
        entries[key] = item
        pieces[key] = (item, line)
        order.append(key)
    if any(map(operator.ge, order, order[1:])):  # in C: sorted, and no key twice
        raise ValueError("the records are not sorted by key")
    return entries, pieces, order


def _decode_records_v1(plaintext: bytes) -> _Entries:
    """Parse version 1 plaintext (raises ValueError, TypeError or KeyError when not valid)."""
    document = json.loads(plaintext.decode("utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise ValueError("not a records document")
    entries = _Entries()
    for item in document["records"]:
        fields = dict(item)
        password = fields.pop("password")
        if not isinstance(password, str):
            raise TypeError("password is not a string")
        record = Record.model_validate(fields)
        if record.key in entries:
            raise ValueError("two records share a key")
        entries[record.key] = (record, password)
    return entries
