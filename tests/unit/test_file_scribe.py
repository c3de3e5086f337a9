"""A file store written by a writer process (helperd/stores/file_scribe.py): the daemon's store
sends its writes away and applies what comes back; the writer's store shares the daemon's lock."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helperd_client.errors import StoreUnavailableError
from pydantic import SecretStr

from helperd.core.protocol import GetResult, parse_request
from helperd.core.record import Kind, Record
from helperd.core.service import Service
from helperd.stores.file_journal import JOURNAL_HEAD
from helperd.stores.file_scribe import Changes
from helperd.stores.file_store import FileStore

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def rec(name: str) -> Record:
    return Record(name=name, username="u", kind=Kind.BASIC, urls=(), created_at=T0, updated_at=T0)


def digest(path: Path) -> str:
    journal = path.with_name(path.name + ".journal")
    return hashlib.sha256(path.read_bytes() + b"/" + journal.read_bytes()).hexdigest()


class WriterStandIn:
    """What the writer process does for a `FileStore`: writes through a store of its own that
    shares the daemon's lock, and has the daemon's store apply each write."""

    def __init__(self, daemon_store: FileStore, path: Path, key_path: Path) -> None:
        held = daemon_store.held_lock()
        assert held is not None
        # A descriptor of its own, as the process has: closing it leaves the daemon's open.
        self.own = FileStore(path, key_file=key_path, held_lock=os.dup(held))
        self.own.committed = daemon_store.apply
        self.commits: list[Changes] = []
        self.closed = False

    def commit(self, changes: Changes) -> None:
        self.commits.append(changes)
        self.own.write_changes(changes)

    def close(self) -> None:
        self.closed = True
        self.own.close()


@pytest.fixture
def store(path: Path, key_path: Path) -> Iterator[FileStore]:
    opened = FileStore(path, key_file=key_path)
    opened.put(rec("before"), SecretStr("pw-before"))
    yield opened
    opened.close()


@pytest.fixture
def writer(store: FileStore, path: Path, key_path: Path) -> WriterStandIn:
    stand_in: WriterStandIn | None = None

    def start() -> WriterStandIn:
        nonlocal stand_in
        stand_in = WriterStandIn(store, path, key_path)
        return stand_in

    store.hand_writes_to(start)
    assert stand_in is not None
    return stand_in


def test_a_second_store_on_the_file_is_refused_unless_it_shares_the_lock(
    store: FileStore, path: Path, key_path: Path
) -> None:
    with pytest.raises(StoreUnavailableError, match="another helperd"):
        FileStore(path, key_file=key_path)
    held = store.held_lock()
    assert held is not None
    sharing = FileStore(path, key_file=key_path, held_lock=os.dup(held))
    assert [r.name for r in sharing.records()] == ["before"]
    sharing.close()


def test_writes_go_to_the_writer_and_come_back_applied(
    store: FileStore, writer: WriterStandIn, path: Path
) -> None:
    store.put(rec("added"), SecretStr("pw-added"))
    store.remove([("before", "u")])
    assert [list(c) for c in writer.commits] == [[("added", "u")], [("before", "u")]]
    assert [r.name for r in store.records()] == ["added"]
    assert store.password(rec("added")).get_secret_value() == "pw-added"
    assert [r.name for r in writer.own.records()] == ["added"]
    later = digest(path)
    store.put(rec("added"), SecretStr("pw-again"))
    assert digest(path) != later  # the writer's store wrote it, durably


def test_close_has_the_writer_fold_the_journal_and_writes_nothing_itself(
    store: FileStore, writer: WriterStandIn, path: Path, key_path: Path
) -> None:
    store.put(rec("added"), SecretStr("pw-added"))
    store.close()
    assert writer.closed
    assert path.with_name(path.name + ".journal").stat().st_size == JOURNAL_HEAD
    reopened = FileStore(path, key_file=key_path)  # the lock is free again
    try:
        assert [r.name for r in reopened.records()] == ["added", "before"]
    finally:
        reopened.close()


def test_taking_writes_back_reads_what_the_writer_wrote_unannounced(
    store: FileStore, writer: WriterStandIn
) -> None:
    writer.own.committed = None  # a writer killed between its fsync and its telling
    writer.own.put(rec("untold"), SecretStr("pw-untold"))
    writer.own.close()
    assert [r.name for r in store.records()] == ["before"]
    store.take_writes_back()
    assert [r.name for r in store.records()] == ["before", "untold"]
    store.put(rec("mine"), SecretStr("pw-mine"))  # written here again
    assert writer.commits == []


def test_only_a_store_with_a_writer_applies_writes(store: FileStore) -> None:
    with pytest.raises(StoreUnavailableError, match="no writer process"):
        store.apply({})


def test_a_write_the_writer_made_costs_the_daemon_no_pass_over_every_record(
    store: FileStore, writer: WriterStandIn
) -> None:
    service = Service(store, store_reason="test")
    service.prime()
    store.put(rec("added"), SecretStr("pw-added"))
    service.written(T0)
    records = store.records()
    _, get = parse_request(b'{"v":1,"id":1,"op":"get","name":"added"}')
    assert isinstance(service.handle(get, T0), GetResult)
    # The lookup index followed the write by what it changed; the sorted tuple of every
    # record is built only when something reads them all.
    assert records._records is None  # type: ignore[attr-defined]
    assert records == (writer.own.records()[0], writer.own.records()[1])
    assert [r.name for r in records[:1]] == ["added"]
    assert len(records) == 2
    assert records._records is not None  # type: ignore[attr-defined]
