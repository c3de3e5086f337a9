"""One contract for the Store interface, run against both stores: the file store and the OS
keyring store on a real Secret Service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helperd_client.errors import NotFoundError
from keyring.backends import SecretService as SecretServiceBackend
from pydantic import SecretStr

from helperd.core.record import Kind, Record
from helperd.core.store import Store, StoreState
from helperd.stores.file_store import FileStore
from helperd.stores.keyring_store import KeyringStore
from helperd.stores.keys import KdfParams
from helperd.stores.os_keyring import BoundedKeyring
from tests.support.secret_service import SecretService

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PASSWORDS = ["plain", "", "new\nline and\ttab", "ünïcödé ✓ 🔑", 'quote"back\\slash', "x" * 4000]

Opener = Callable[[], Store]


@pytest.fixture(params=["file", "keyring"])
def open_store(request: pytest.FixtureRequest, home: Path) -> Iterator[Opener]:
    """A function that opens the store under test afresh (a reopen sees what was written)."""
    opened: list[Store] = []
    if request.param == "file":
        key = home / "k"
        key.write_bytes(b"k" * 32)
        key.chmod(0o600)

        def make() -> Store:
            params = KdfParams(iterations=1, memory_kib=8, lanes=1)
            store: Store = FileStore(home / "store.enc", key_file=key, kdf=params)
            opened.append(store)
            return store
    else:
        secret_service: SecretService = request.getfixturevalue("secret_service")
        assert secret_service.address

        def make() -> Store:
            bounded = BoundedKeyring(SecretServiceBackend.Keyring(), timeout=2.0)
            store: Store = KeyringStore(home / "keyring-index.json", bounded)
            opened.append(store)
            return store

    yield make
    for store in opened:
        store.close()


def record(name: str = "acme", username: str = "alice", kind: Kind = Kind.BASIC) -> Record:
    return Record(
        name=name,
        username=username,
        kind=kind,
        urls=("https://h.test/simple/",),
        created_at=T0,
        updated_at=T0,
    )


def test_starts_empty_and_unlocked(open_store: Opener) -> None:
    """A new store holds nothing and can be used at once."""
    store = open_store()
    assert (StoreState.UNLOCKED, []) == (store.state, list(store.records()))


@pytest.mark.parametrize("password", PASSWORDS, ids=range(len(PASSWORDS)))
def test_put_then_password_round_trips(open_store: Opener, password: str) -> None:
    """Any password, empty, multi-line or unicode, comes back exactly."""
    store = open_store()
    store.put(record(), SecretStr(password))
    assert [record()] == list(store.records())
    assert password == store.password(record()).get_secret_value()


def test_put_replaces_the_same_key(open_store: Opener) -> None:
    """A put with the same (name, username) replaces record and password."""
    store = open_store()
    store.put(record(), SecretStr("one"))
    store.put(record(), SecretStr("two"))
    assert 1 == len(store.records())
    assert "two" == store.password(record()).get_secret_value()


def test_two_usernames_and_kinds_side_by_side(open_store: Opener) -> None:
    """One name holds a basic and a token record; a generic entry sits beside them."""
    store = open_store()
    token = record(username="__token__", kind=Kind.TOKEN)
    generic = record(name="some app", username="me", kind=Kind.GENERIC)
    generic = generic.model_copy(update={"urls": ()})
    for item, password in ((record(), "b"), (token, "t"), (generic, "g")):
        store.put(item, SecretStr(password))
    assert {"b", "t", "g"} == {store.password(r).get_secret_value() for r in store.records()}


def test_remove_deletes_only_the_named_keys(open_store: Opener) -> None:
    """remove takes keys; absent keys are ignored; the others stay."""
    store = open_store()
    store.put(record(), SecretStr("a"))
    store.put(record(username="bob"), SecretStr("b"))
    store.remove([("acme", "alice"), ("nope", "x")])
    assert [("acme", "bob")] == [r.key for r in store.records()]
    with pytest.raises(NotFoundError):
        store.password(record())


def test_records_are_one_sequence_per_version(open_store: Opener) -> None:
    """records() is sorted by key and the same object until a change, a new one after it
    (the service keeps its lookup index for as long as that object stands)."""
    store = open_store()
    store.put(record("b"), SecretStr("b"))
    store.put(record("a"), SecretStr("a"))
    first = store.records()
    assert first is store.records()
    assert [record("a"), record("b")] == list(first)

    store.put(record("c"), SecretStr("c"))
    assert store.records() is not first
    second = store.records()
    store.remove([record("c").key])
    assert store.records() is not second
    assert [record("a"), record("b")] == list(store.records())


def test_reopen_keeps_everything(open_store: Opener) -> None:
    """What was written is there after the store is closed and opened again."""
    store = open_store()
    store.put(record(), SecretStr("kept\nsecret"))
    store.close()
    again = open_store()
    assert [record()] == list(again.records())
    assert "kept\nsecret" == again.password(record()).get_secret_value()


def test_discard_removes_the_store(open_store: Opener, home: Path) -> None:
    """discard deletes the store's files; a new store there starts empty."""
    store = open_store()
    store.put(record(), SecretStr("x"))
    store.discard()
    assert not (home / "store.enc").exists()
    assert not (home / "keyring-index.json").exists()
    assert [] == list(open_store().records())
