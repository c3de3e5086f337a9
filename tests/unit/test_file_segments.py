"""The file store's segments (format version 3 and on): a write encrypts only what it changed, the
segments stay sorted, split and drop as the store grows and shrinks, and the file is bound
together by its sealed index, so that no segment can be moved, dropped or taken from an
older write unnoticed."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from helperd_client.errors import StoreUnavailableError
from pydantic import SecretStr

from helperd.core.catalog import Catalog
from helperd.core.record import Record
from helperd.stores import file_format
from helperd.stores.file_store import FileStore
from helperd.testing import fill_file_store
from tests.unit.test_file_store import INTEGRITY, flip_last_byte, header_of, rec, whole

SIZE = 2000
"""Records in the big store: four segments of the default `SEGMENT_RECORDS` (512)."""


@pytest.fixture
def big(path: Path, key_path: Path) -> Iterator[FileStore]:
    """A key-file store of `SIZE` records, written whole (so at the default segment size)."""
    entries = {}
    for index in range(SIZE):
        record = rec(f"r{index:05d}", "alice", f"https://h{index}.test/simple/")
        entries[record.key] = (record, SecretStr(f"pw-{index}"))
    fill_file_store(path, entries, key_file=key_path)
    store = FileStore(path, key_file=key_path)
    yield store
    store.close()


def segment_bytes(store: FileStore) -> list[bytes]:
    """The ciphertext of each segment of the open store, as written in its file (the journal
    folded in first)."""
    whole(store)
    opened = store._open
    assert opened is not None
    sealed = [segment.sealed for segment in opened.segments]
    assert all(s is not None for s in sealed)
    body = store.path.read_bytes()
    assert all(s in body for s in sealed if s is not None)  # what is in memory is on disk
    return [s for s in sealed if s is not None]


def test_a_write_encrypts_again_only_the_segment_it_changes(big: FileStore) -> None:
    """Replacing one record of a 2,000-record store (default segment size) leaves every other
    segment's ciphertext byte for byte as it was, in the file too; adding one does the same."""
    big.records()
    before = segment_bytes(big)
    assert 4 == len(before) == header_of(big.path)["segments"]

    big.put(rec("r01000", "alice", "https://h1000.test/simple/"), SecretStr("new"))
    after = segment_bytes(big)
    big.put(rec("r00001a", "alice"), SecretStr("added"))
    added = segment_bytes(big)

    assert [False, True, False, False] == [a != b for a, b in zip(before, after, strict=True)]
    assert [True, False, False, False] == [a != b for a, b in zip(after, added, strict=True)]
    assert "new" == big.password(rec("r01000")).get_secret_value()
    assert "added" == big.password(rec("r00001a")).get_secret_value()


def invariants(store: FileStore) -> None:
    """Segments sorted and adjacent, none empty (unless it is the only one), none past twice
    the segment size, and each segment's keys within its bounds."""
    opened = store._open
    assert opened is not None
    keys = [key for segment in opened.segments for key in segment.pieces]
    assert sorted(set(keys)) == keys
    assert keys == [record.key for record in opened.records]
    assert all(segment.pieces for segment in opened.segments) or len(opened.segments) == 1
    assert all(len(s.pieces) < 2 * file_format.SEGMENT_RECORDS for s in opened.segments)
    edges = [None, *opened.bounds, None]
    for at, segment in enumerate(opened.segments):
        low, high = edges[at], edges[at + 1]
        assert all((low is None or low <= k) and (high is None or k < high) for k in segment.pieces)


def test_segments_split_and_drop_as_the_store_grows_and_shrinks(
    path: Path, key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With four records a segment, 400 random puts and removes keep every invariant; the
    records, passwords and the file read again always agree with a plain dict."""
    monkeypatch.setattr(file_format, "SEGMENT_RECORDS", 4)
    store = FileStore(path, key_file=key_path)
    rng = random.Random(3)
    model: dict[tuple[str, str], tuple[Record, str]] = {}
    counts: list[int] = []
    for step in range(400):
        if model and rng.random() < 0.4:
            doomed = rng.sample(sorted(model), min(len(model), rng.randrange(1, 4)))
            store.remove(doomed)
            for key in doomed:
                del model[key]
        else:
            record = rec(f"r{rng.randrange(60):02d}", rng.choice(["a", "b"]))
            store.put(record, SecretStr(f"pw{step}"))
            model[record.key] = (record, f"pw{step}")
        invariants(store)
        assert store._open is not None
        counts.append(len(store._open.segments))
        assert [model[key][0] for key in sorted(model)] == list(store.records())
    store.close()
    again = FileStore(path, key_file=key_path)
    try:
        assert [model[key][0] for key in sorted(model)] == list(again.records())
        assert [model[key][1] for key in sorted(model)] == [
            again.password(r).get_secret_value() for r in again.records()
        ]
        invariants(again)
    finally:
        again.close()
    pairs = list(itertools.pairwise(counts))
    assert any(a < b for a, b in pairs)
    assert any(a > b for a, b in pairs)


def body_parts(store: FileStore) -> tuple[bytes, bytes, list[bytes]]:
    """The header line with its newline, the sealed index, and each segment's ciphertext."""
    sealed = segment_bytes(store)
    line, _, body = store.path.read_bytes().partition(b"\n")
    index_size = len(body) - sum(map(len, sealed))
    assert body[index_size:] == b"".join(sealed)
    return line + b"\n", body[:index_size], sealed


def assert_refused(store: FileStore, key_path: Path) -> None:
    """Close ``store``; its file, opened again, fails the integrity check."""
    store.close()
    again = FileStore(store.path, key_file=key_path)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            again.records()
        assert INTEGRITY in caught.value.message
    finally:
        again.close()


def _swap_two(parts: list[bytes]) -> list[bytes]:
    return [parts[1], parts[0], *parts[2:]]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_swap_two, id="segments-swapped"),
        pytest.param(lambda parts: parts[:-1], id="last-segment-dropped"),
        pytest.param(lambda parts: [*parts, b"x"], id="bytes-after"),
        pytest.param(lambda parts: [flip_last_byte(parts[0]), *parts[1:]], id="segment-byte"),
    ],
)
def test_a_segment_out_of_place_fails_the_integrity_check(
    big: FileStore, key_path: Path, tamper: object
) -> None:
    """Segments swapped, one dropped, bytes added after the last or a byte changed: the file
    is refused as tampered with and left as it was."""
    big.records()
    head, index, sealed = body_parts(big)
    assert callable(tamper)
    big.path.write_bytes(head + index + b"".join(tamper(sealed)))
    assert_refused(big, key_path)


def test_a_segment_from_an_older_write_does_not_fit(big: FileStore, key_path: Path) -> None:
    """A segment's ciphertext from the write before (valid under the same key, same length
    class) put in place of its successor is refused: the index names each segment's nonce
    and tag."""
    big.records()
    _, _, old = body_parts(big)
    big.put(rec("r00002", "alice", "https://h2.test/simple/"), SecretStr("changed"))
    head, index, sealed = body_parts(big)
    assert old[0] != sealed[0]
    big.path.write_bytes(head + index + b"".join([old[0], *sealed[1:]]))
    assert_refused(big, key_path)


def test_the_store_says_what_a_write_changed(big: FileStore) -> None:
    """After a put, the store hands out the record it replaced and the new one, for that very
    pair of versions only; a catalog that follows with it equals a full build."""
    before = big.records()
    catalog = Catalog(before)
    new = rec("r00010", "alice", "https://elsewhere.test/simple/")
    big.put(new, SecretStr("x"))
    after = big.records()

    removed, added = big.records_delta(before, after) or ((), ())
    assert ([before[10]], [new]) == (list(removed), list(added))
    assert big.records_delta(after, after) is None
    followed = Catalog(after, previous=catalog, delta=(removed, added))
    built = Catalog(after)
    for table in ("_named", "_generic", "_origins", "_hosts"):
        assert getattr(built, table).flat() == getattr(followed, table).flat()
