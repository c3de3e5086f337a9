"""A store file read back, whatever its version: its header line checked, its body decrypted
and checked, its lines parsed into records.

The format is `helperd.stores.file_format`; docs/file-format.md gives every field and the
reasons, and the order of the checks. A file that does not read cleanly is refused with a
`StoreUnavailableError` that says why (damaged, written by a newer helperd, failed its integrity
check) and never quotes what was decrypted.

Version 3 is version 4 without a journal; version 2 held every line in one ciphertext,
version 1 the JSON ``{"records": [{…, "password": "…"}]}``; all are still read, and
`helperd.stores.file_store.FileStore` rewrites them as version 4 on opening.

`helperd.stores.file_store.FileStore` and `helperd.stores.file_journal` are the only users of
these private names.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from pathlib import Path
from typing import TypeGuard

from cryptography.exceptions import InvalidTag
from helperd_client.errors import StoreUnavailableError
from pydantic import TypeAdapter, ValidationError

from helperd.core.bulk import paused_gc
from helperd.core.record import Record, RecordKey
from helperd.stores.file_format import (
    _HEADER_FIELDS,
    _INDEX_ENTRY,
    _SEGMENT_AAD,
    AEAD,
    FORMAT,
    MAX_SEGMENTS,
    NONCE_BYTES,
    SEGMENTED,
    TAG_BYTES,
    VERSION,
    _built,
    _Entry,
    _Header,
    _Open,
    _Piece,
    _record_of,
    _runs,
    _Segment,
)
from helperd.stores.keys import KeySpec, StoreKey, decode_b64

__all__: list[str] = []


class _NewerVersionError(Exception):
    """The header's format version is newer than this helperd's; the message is the version."""


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
        pass
    # Raised out here, so that the error keeps no context: JSON and pydantic errors quote the
    # decrypted input (`from None` only hides a context, which stays on __context__).
    raise StoreUnavailableError(
        f"store file {path} failed its integrity check (damaged, truncated or"
        " tampered with); it was left untouched. Restore it from a backup, or move it"
        " away to start a new store"
    )


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
