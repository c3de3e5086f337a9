"""The file store's journal (format version 4): a write of a few records appends one entry
and leaves the file alone; opening replays the journal; a last entry that never finished is
dropped, and so is everything from the first entry that does not hold together; a journal
that does not start as one, or an entry that passes its tag but holds no valid record, is
refused; a full journal makes the next write write the whole file; lock and close fold the
journal into the file."""

from __future__ import annotations

import base64
import errno
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helperd_client.errors import StoreUnavailableError
from pydantic import SecretStr

from helperd.stores import durable, file_journal
from helperd.stores.file_store import FileStore
from tests.unit.conftest import KEY_BYTES
from tests.unit.test_file_store import (
    aead_key_for_key_file,
    failing_fsync_dir,
    header_of,
    rec,
    sha256,
    whole,
)

JOURNAL_HEAD = file_journal.JOURNAL_HEAD


@pytest.fixture
def stores(path: Path, key_path: Path) -> Iterator[list[FileStore]]:
    """Key-file stores on ``path`` opened by a test (`reopen`), each closed at the end."""
    opened: list[FileStore] = []
    yield opened
    for store in opened:
        store.close()


def reopen(stores: list[FileStore], path: Path, key_path: Path) -> FileStore:
    """A new store on ``path``, its records read (the file opened, the journal replayed)."""
    store = FileStore(path, key_file=key_path)
    stores.append(store)
    store.records()
    return store


def crash(store: FileStore) -> None:
    """Let the store go as a killed daemon would: no last write, the OS lock released."""
    store._journal.close()
    store._file_lock.release()
    store._closed = True  # its fixture's close then does nothing


def entries(journal: Path) -> list[tuple[int, int]]:
    """Each entry's (start, end) in the journal, by its length fields."""
    raw = journal.read_bytes()
    at, found = JOURNAL_HEAD, []
    while at < len(raw):
        end = at + 4 + int.from_bytes(raw[at : at + 4], "big")
        found.append((at, end))
        at = end
    return found


def filled(stores: list[FileStore], path: Path, key_path: Path) -> FileStore:
    """A store with a1 and a2 written whole, then three journal entries: b1, a1 again, rm a2."""
    store = reopen(stores, path, key_path)
    store.put(rec("a1"), SecretStr("first"))
    store.put(rec("a2"), SecretStr("second"))
    whole(store)
    store.put(rec("b1"), SecretStr("third"))
    store.put(rec("a1"), SecretStr("first, changed"))
    store.remove([("a2", "alice")])
    return store


def passwords(store: FileStore) -> dict[str, str]:
    return {r.name: store.password(r).get_secret_value() for r in store.records()}


AFTER = {"a1": "first, changed", "b1": "third"}
"""What `filled` leaves."""


def test_a_write_appends_one_entry_and_leaves_the_file_alone(
    stores: list[FileStore], path: Path, key_path: Path
) -> None:
    """Each put or remove adds one entry to the journal; the store file's bytes stay."""
    store = reopen(stores, path, key_path)
    store.put(rec("a"), SecretStr("x"))
    whole(store)
    file_before = path.read_bytes()

    store.put(rec("b"), SecretStr("y"))
    store.remove([("a", "alice")])

    assert file_before == path.read_bytes()
    assert 2 == len(entries(store.journal))
    assert file_before[:JOURNAL_HEAD] != store.journal.read_bytes()[:JOURNAL_HEAD]
    assert store.journal.read_bytes().startswith(file_journal.JOURNAL_MAGIC)


def test_opening_replays_the_journal(stores: list[FileStore], path: Path, key_path: Path) -> None:
    """After a crash, the file plus its journal give every write, in order."""
    crash(filled(stores, path, key_path))

    assert AFTER == passwords(reopen(stores, path, key_path))


def test_the_journal_holds_no_plaintext(
    stores: list[FileStore], path: Path, key_path: Path
) -> None:
    """Names, usernames and passwords are encrypted in the journal as in the file."""
    crash(filled(stores, path, key_path))
    raw = path.read_bytes() + path.with_name("store.enc.journal").read_bytes()

    for text in (b"first, changed", b"third", b"second", b"alice"):
        assert text not in raw


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda raw, last: raw[: last[0] + 3], id="length-cut"),
        pytest.param(lambda raw, last: raw[: last[1] - 1], id="entry-cut"),
        pytest.param(lambda raw, last: raw[: last[0]] + bytes(last[1] - last[0]), id="zeroed"),
        pytest.param(
            lambda raw, last: raw[: last[0]] + bytes(4) + raw[last[0] + 4 :], id="length-lost"
        ),
        pytest.param(
            lambda raw, last: raw[: last[1] - 1] + bytes([raw[last[1] - 1] ^ 1]), id="garbled"
        ),
        pytest.param(lambda raw, last: raw + bytes(1000), id="zeroes-after"),
    ],
)
def test_a_last_entry_that_never_finished_is_dropped(
    stores: list[FileStore], path: Path, key_path: Path, cut: object
) -> None:
    """A last entry cut short, zeroed, its length lost or unreadable (a power loss keeps any
    part of an append not yet fsynced, and so never acknowledged): dropped; the next write
    writes the whole store and a new journal, and a later open finds it."""
    store = filled(stores, path, key_path)
    crash(store)
    journal = store.journal
    last = entries(journal)[-1]
    assert callable(cut)
    journal.write_bytes(cut(journal.read_bytes(), last))

    again = reopen(stores, path, key_path)
    expected = AFTER if (journal.stat().st_size > last[1]) else {**AFTER, "a2": "second"}
    assert expected == passwords(again)
    again.put(rec("c"), SecretStr("after the crash"))
    assert JOURNAL_HEAD == journal.stat().st_size  # a new journal, after a whole write
    crash(again)

    assert {**expected, "c": "after the crash"} == passwords(reopen(stores, path, key_path))


BASE = {"a1": "first", "a2": "second"}
"""What `filled` wrote whole, before its three journal entries."""


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(
            lambda raw, first, _: (
                raw[: first[1] - 1] + bytes([raw[first[1] - 1] ^ 1]) + raw[first[1] :]
            ),
            BASE,
            id="byte-flipped",
        ),
        pytest.param(
            lambda raw, first, second: (
                raw[: first[0]]
                + raw[second[0] : second[1]]
                + raw[first[0] : first[1]]
                + raw[second[1] :]
            ),
            BASE,
            id="entries-swapped",
        ),
        pytest.param(
            lambda raw, first, _: raw[: first[0]] + raw[first[1] :], BASE, id="entry-dropped"
        ),
        pytest.param(
            lambda raw, first, _: raw[: first[0]] + (5).to_bytes(4, "big") + raw[first[0] + 4 :],
            BASE,
            id="length-changed",
        ),
        pytest.param(
            lambda raw, _, second: (
                raw[: second[1] - 1] + bytes([raw[second[1] - 1] ^ 1]) + raw[second[1] :]
            ),
            {**BASE, "b1": "third"},
            id="second-entry-flipped",
        ),
    ],
)
def test_a_damaged_entry_ends_the_journal_and_nothing_changed_gets_in(
    stores: list[FileStore],
    path: Path,
    key_path: Path,
    *,
    tamper: object,
    expected: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An entry changed, moved or dropped ends what is replayed there: the store opens with
    the writes before it, never with a changed or moved one, says what it dropped, and its
    next write starts a new journal (no entry number is used twice under one file)."""
    store = filled(stores, path, key_path)
    crash(store)
    journal = store.journal
    first, second, _ = entries(journal)
    assert callable(tamper)
    journal.write_bytes(tamper(journal.read_bytes(), first, second))

    again = reopen(stores, path, key_path)

    assert expected == passwords(again)
    assert "were not replayed" in caplog.text
    again.put(rec("c"), SecretStr("next"))
    assert JOURNAL_HEAD == journal.stat().st_size
    crash(again)
    assert {**expected, "c": "next"} == passwords(reopen(stores, path, key_path))


def test_a_journal_that_is_not_one_is_refused_and_left_untouched(
    stores: list[FileStore], path: Path, key_path: Path
) -> None:
    """A journal whose first bytes are wrong (it is created whole, by a rename) is refused,
    with the journal named, and nothing is written."""
    crash(filled(stores, path, key_path))
    journal = path.with_name("store.enc.journal")
    journal.write_bytes(b"not a journal" + journal.read_bytes()[13:])
    before = sha256(path)

    again = FileStore(path, key_file=key_path)
    stores.append(again)
    with pytest.raises(StoreUnavailableError) as caught:
        again.records()

    assert f"the journal {journal} failed its integrity check" in caught.value.message
    assert before == sha256(path)


def test_an_entry_that_passes_its_tag_but_holds_no_valid_record_is_refused_unquoted(
    stores: list[FileStore], path: Path, key_path: Path
) -> None:
    """An entry sealed with the store's key, at its place, whose line is not a valid record
    (only the key's holder can write one) is refused, and the error keeps nothing of it: no
    quote, no cause, no context (pydantic's error quotes the record)."""
    store = reopen(stores, path, key_path)
    store.put(rec("a1"), SecretStr("first"))
    whole(store)
    crash(store)
    header = header_of(path)
    file_nonce = base64.b64decode(header["nonce"])
    line = b'+[{"name":"LEAKME","username":5},"LEAKME"]'
    nonce = b"\x01" * 12
    sealed = aead_key_for_key_file(KEY_BYTES, header).encrypt(
        nonce, line, file_journal._entry_aad(file_nonce, 0)
    )
    entry = (len(nonce) + len(sealed)).to_bytes(4, "big") + nonce + sealed
    with store.journal.open("ab") as journal:
        journal.write(entry)

    again = FileStore(path, key_file=key_path)
    stores.append(again)
    with pytest.raises(StoreUnavailableError) as caught:
        again.records()

    assert f"the journal {store.journal} failed its integrity check" in caught.value.message
    assert "LEAKME" not in caught.value.message
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_a_journal_of_another_file_is_ignored(
    stores: list[FileStore], path: Path, key_path: Path
) -> None:
    """A crash between the file's rename and the new journal's leaves the journal of the file
    before, whose writes the new file holds: it is ignored, and started again at the next write."""
    store = filled(stores, path, key_path)
    old_journal = store.journal.read_bytes()
    whole(store)
    crash(store)
    store.journal.write_bytes(old_journal)

    again = reopen(stores, path, key_path)
    assert AFTER == passwords(again)
    again.put(rec("d"), SecretStr("next"))
    crash(again)

    assert {**AFTER, "d": "next"} == passwords(reopen(stores, path, key_path))


def test_a_full_journal_makes_the_next_write_write_the_whole_file(
    stores: list[FileStore], path: Path, key_path: Path
) -> None:
    """Past `journal_room` (64 KiB for a small store), a write rewrites the file (the next
    generation) and starts an empty journal; nothing is lost on the way."""
    store = reopen(stores, path, key_path)
    store.put(rec("a"), SecretStr("x"))
    whole(store)
    generation = header_of(path)["generation"]
    sizes = []
    for number in range(400):
        store.put(rec(f"r{number % 7}"), SecretStr(f"pw-{number}" + "y" * 100))
        sizes.append(store.journal.stat().st_size)

    assert max(sizes) <= file_journal.journal_room(path.stat().st_size)
    rewrites = sum(1 for a, b in itertools.pairwise(sizes) if b < a)
    assert rewrites >= 1
    assert generation + rewrites == header_of(path)["generation"]
    crash(store)
    again = passwords(reopen(stores, path, key_path))
    assert {"a": "x", **{f"r{n % 7}": f"pw-{n}" + "y" * 100 for n in range(400)}} == again


def test_close_and_lock_fold_the_journal_into_the_file(
    stores: list[FileStore], path: Path, key_path: Path
) -> None:
    """After close the file alone holds every record: the journal is empty again."""
    store = filled(stores, path, key_path)
    store.close()

    assert JOURNAL_HEAD == store.journal.stat().st_size
    store.journal.unlink()  # the file alone
    assert AFTER == passwords(reopen(stores, path, key_path))


def test_a_failed_append_changes_nothing_and_the_next_write_starts_a_new_journal(
    stores: list[FileStore], path: Path, key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk during an append: the write fails and is not seen; what it may have left
    past the journal's end is never appended after, since the next write writes the whole
    file and a new journal."""
    store = filled(stores, path, key_path)
    real = os.pwrite

    def full(fd: int, data: bytes, offset: int) -> int:
        real(fd, data[: len(data) // 2], offset)  # half an entry, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", full)
        with pytest.raises(StoreUnavailableError, match="No space left on device"):
            store.put(rec("lost"), SecretStr("never"))
    assert AFTER == passwords(store)
    generation = header_of(path)["generation"]
    store.put(rec("e"), SecretStr("kept"))
    assert generation + 1 == header_of(path)["generation"]
    assert [] == entries(store.journal)
    store.put(rec("f"), SecretStr("kept too"))
    crash(store)

    expected = {**AFTER, "e": "kept", "f": "kept too"}
    assert expected == passwords(reopen(stores, path, key_path))


@pytest.mark.parametrize("ending", ["close", "crash"])
def test_a_write_whose_fsync_failed_never_comes_back(
    stores: list[FileStore],
    path: Path,
    key_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ending: str,
) -> None:
    """The entry was written but its fsync failed (an I/O error): the set is reported failed,
    and neither a clean close nor a crash lets a later open replay it."""
    store = filled(stores, path, key_path)

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fdatasync", broken)
        with pytest.raises(StoreUnavailableError, match="Input/output error"):
            store.put(rec("a1"), SecretStr("reported failed"))
    assert AFTER == passwords(store)
    if ending == "close":
        store.close()
    else:
        crash(store)

    assert AFTER == passwords(reopen(stores, path, key_path))


def test_after_a_whole_write_failed_past_its_rename_no_entry_follows_the_old_file(
    stores: list[FileStore], path: Path, key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole write renamed its file, then the folder's fsync failed: it is reported failed,
    and the next write is a whole one, not an entry in the journal of the file before (which
    an open would ignore, losing that acknowledged write)."""
    store = filled(stores, path, key_path)

    with monkeypatch.context() as patch:
        patch.setattr(durable, "fsync_dir", failing_fsync_dir)
        whole(store)  # the fold-in of lock and close: fails, and says so in the log
    store.remove([("a1", "alice")])
    crash(store)

    assert {"b1": "third"} == passwords(reopen(stores, path, key_path))


def test_a_whole_write_of_a_few_records_renamed_but_not_synced_stays_failed(
    stores: list[FileStore], path: Path, key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `set` written as the whole file (the journal must be started again) whose folder fsync
    failed after the rename is reported failed, is not served, and the next write leaves it out:
    what the client was told holds, unless a crash comes first."""
    store = filled(stores, path, key_path)

    with monkeypatch.context() as patch:
        patch.setattr(durable, "fsync_dir", failing_fsync_dir)
        whole(store)  # fails past its rename: only whole writes follow
        with pytest.raises(StoreUnavailableError, match="was written, but its folder"):
            store.put(rec("failed"), SecretStr("never"))

    assert AFTER == passwords(store)
    store.put(rec("c"), SecretStr("next"))
    crash(store)
    assert {**AFTER, "c": "next"} == passwords(reopen(stores, path, key_path))
