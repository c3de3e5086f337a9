"""The encrypted file store: its format, its two key modes, and the files it refuses to touch."""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import json
import os
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from helperd_client.errors import (
    BadPassphraseError,
    BadRequestError,
    HelperdError,
    LockedError,
    NotFoundError,
    StoreUnavailableError,
)
from pydantic import SecretStr

from helperd.core.record import Kind, Record
from helperd.core.store import StoreState
from helperd.stores import durable, file_store
from helperd.stores.file_store import FileStore
from helperd.stores.keys import KdfParams, StoreKey, passphrase_key
from tests.unit.conftest import KEY_BYTES

CHEAP = KdfParams(iterations=1, memory_kib=8, lanes=1)
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PASS = SecretStr("correct horse")
SECRET = "hunter2-\u00fcber-\U0001f511"

OpenStore = Callable[..., FileStore]


def rec(name: str = "pypi", username: str = "alice", *urls: str) -> Record:
    """A basic record created and updated at T0."""
    return Record(
        name=name, username=username, kind=Kind.BASIC, urls=urls, created_at=T0, updated_at=T0
    )


class CountingRandom:
    """A deterministic ``randbytes``: its n-th call returns n bytes of value n (mod 256)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, size: int) -> bytes:
        self.calls += 1
        return bytes([self.calls % 256]) * size


def hkdf_sha256(material: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    """RFC 5869 with the standard library only: an independent statement of the format."""
    prk = hmac.new(salt or bytes(32), material, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def aead_key_for_key_file(material: bytes, header: dict[str, Any]) -> AESGCM:
    """The AEAD of a key-file store, derived as docs/file-format.md says."""
    salt = base64.b64decode(header["key"]["salt"])
    master = hkdf_sha256(material, salt, b"helperd file store v1 key", 32)
    return AESGCM(hkdf_sha256(master, None, b"helperd file store v1 aead", 32))


def segment_plaintexts(path: Path, aead: AESGCM) -> list[bytes]:
    """Each segment's plaintext, read as docs/file-format.md says (the index sealed with the
    header's nonce and the header line; each entry a nonce, a length and a tag)."""
    line, _, body = path.read_bytes().partition(b"\n")
    header = json.loads(line)
    count = header["segments"]
    index = aead.decrypt(base64.b64decode(header["nonce"]), body[: count * 36 + 16], line)
    at, plaintexts = count * 36 + 16, []
    for number in range(count):
        nonce, size, tag = (
            index[36 * number :][:12],
            index[36 * number + 12 :][:8],
            index[36 * number + 20 :][:16],
        )
        chunk = body[at : at + int.from_bytes(size, "big")]
        assert tag == chunk[-16:]
        plaintexts.append(aead.decrypt(nonce, chunk, b"helperd-store segment"))
        at += len(chunk)
    assert len(body) == at
    return plaintexts


def sha256(path: Path) -> str:
    """The digest of the store file and its journal, to prove neither was touched."""
    journal = path.with_name(path.name + ".journal")
    tail = journal.read_bytes() if journal.exists() else b""
    return hashlib.sha256(path.read_bytes() + b"/" + tail).hexdigest()


def whole(store: FileStore) -> None:
    """Fold the journal into the store file, as lock and close do, to read the file alone."""
    with store._lock:
        store._write_whole()


def header_of(path: Path) -> dict[str, Any]:
    """The parsed header line of a store file."""
    header: dict[str, Any] = json.loads(path.read_bytes().partition(b"\n")[0])
    return header


@pytest.fixture
def open_store(path: Path) -> Iterator[OpenStore]:
    """Open FileStores on ``path`` (cheap KDF unless told), closing them all at the end."""
    stores: list[FileStore] = []

    def factory(**kwargs: Any) -> FileStore:
        kwargs.setdefault("kdf", CHEAP)
        store = FileStore(path, **kwargs)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


@pytest.fixture
def unlocked(open_store: OpenStore) -> FileStore:
    """A new passphrase store holding one record with password SECRET."""
    store = open_store()
    store.create(PASS)
    store.put(rec(), SecretStr(SECRET))
    return store


def failing_fsync_dir(folder: Path) -> None:
    """`durable.fsync_dir` on a disk that fails it: the rename before it has happened."""
    raise OSError(errno.EIO, "Input/output error")


def reopen(store: FileStore, open_store: OpenStore, **kwargs: Any) -> FileStore:
    """Close ``store`` and open its file again, as a restarted daemon would."""
    store.close()
    return open_store(**kwargs)


# -- format ---------------------------------------------------------------------------------


def test_key_file_store_header_is_stable(open_store: OpenStore, key_path: Path, path: Path) -> None:
    """Fixed key material and random bytes give a byte-exact header (salt first, then nonce)."""
    open_store(key_file=key_path, randbytes=CountingRandom()).records()

    expected = (
        b'{"aead":"AES-256-GCM","check":"gkRt9XYq3y60U2PhurVvoA==","format":"helperd-store",'
        b'"generation":1,"key":{"kdf":"hkdf-sha256","salt":"AQEBAQEBAQEBAQEBAQEBAQ==",'
        b'"source":"key_file"},"nonce":"AgICAgICAgICAgIC","segments":1,"version":4}'
    )
    assert expected == path.read_bytes().partition(b"\n")[0]


def test_passphrase_store_header_is_stable(open_store: OpenStore, path: Path) -> None:
    """A passphrase store's header names Argon2id and its parameters (docs/file-format.md)."""
    open_store(randbytes=CountingRandom()).create(PASS)

    expected = (
        b'{"aead":"AES-256-GCM","check":"7+R78jK4dR3e5FqnYso2gw==","format":"helperd-store",'
        b'"generation":1,"key":{"iterations":1,"kdf":"argon2id","lanes":1,"memory_kib":8,'
        b'"salt":"AQEBAQEBAQEBAQEBAQEBAQ==","source":"passphrase"},"nonce":"AgICAgICAgICAgIC",'
        b'"segments":1,"version":4}'
    )
    assert expected == path.read_bytes().partition(b"\n")[0]


def test_ciphertext_is_the_documented_plaintext(
    open_store: OpenStore, key_path: Path, path: Path
) -> None:
    """The ciphertext opens with the documented keys, the header line as associated data."""
    store = open_store(key_file=key_path)
    store.put(rec("pypi", "alice", "https://upload.pypi.org/legacy/"), SecretStr("s3cret"))
    whole(store)

    header = header_of(path)
    (plaintext,) = segment_plaintexts(path, aead_key_for_key_file(KEY_BYTES, header))

    expected = (
        b'[{"created_at":"2026-01-02T03:04:05Z","expires_at":null,"kind":"basic",'
        b'"name":"pypi","updated_at":"2026-01-02T03:04:05Z",'
        b'"urls":["https://upload.pypi.org/legacy/"],"username":"alice"},"s3cret"]'
    )
    assert expected == plaintext


def test_every_whole_write_has_a_fresh_nonce_and_next_generation(
    unlocked: FileStore, path: Path
) -> None:
    """Each write of the whole file bumps ``generation`` by one and draws a new nonce; the salt
    stays. A write of a few records leaves the file alone and goes to the journal."""
    whole(unlocked)
    before, file_before = header_of(path), path.read_bytes()
    unlocked.put(rec("other"), SecretStr("x"))
    assert file_before == path.read_bytes()
    whole(unlocked)
    after = header_of(path)

    assert (before["generation"] + 1, before["key"]) == (after["generation"], after["key"])
    assert before["nonce"] != after["nonce"]


def test_store_file_is_0600(unlocked: FileStore, path: Path) -> None:
    """The store file is readable and writable by its owner only, whatever the umask."""
    old = os.umask(0)
    try:
        unlocked.put(rec("other"), SecretStr("x"))
    finally:
        os.umask(old)

    assert 0o600 == path.stat().st_mode & 0o777


def test_no_secret_in_a_passphrase_store_file(open_store: OpenStore, path: Path) -> None:
    """Neither the password (raw, UTF-8 or JSON-escaped) nor the passphrase is on disk."""
    store = open_store()
    store.create(PASS)
    store.put(rec(), SecretStr(SECRET))
    data = path.read_bytes()

    for needle in (SECRET, "hunter2", json.dumps(SECRET), PASS.get_secret_value()):
        assert needle.encode() not in data


def test_no_secret_in_a_key_file_store_file(
    open_store: OpenStore, path: Path, key_path: Path
) -> None:
    """Neither the password nor the key file's bytes are on disk."""
    open_store(key_file=key_path).put(rec(), SecretStr(SECRET))
    data = path.read_bytes()

    for needle in (SECRET.encode(), b"hunter2", json.dumps(SECRET).encode(), KEY_BYTES):
        assert needle not in data


def test_repr_and_errors_hold_no_secret(unlocked: FileStore) -> None:
    """repr of the store, and an error about a wrong passphrase, show no secret."""
    with pytest.raises(BadPassphraseError) as caught:
        unlocked.unlock(SecretStr("wrong-passphrase-xyz"))

    for text in (repr(unlocked), str(unlocked.__dict__), caught.value.message, repr(caught.value)):
        assert "hunter2" not in text
        assert "wrong-passphrase-xyz" not in text
        assert PASS.get_secret_value() not in text


# -- round trips ----------------------------------------------------------------------------


def test_round_trip_through_reopen(unlocked: FileStore, open_store: OpenStore) -> None:
    """Records and passwords survive a restart; the reopened store starts locked."""
    unlocked.put(rec("b", "bob", "https://b.example.test/"), SecretStr("pw-b"))
    expected = [(r, unlocked.password(r).get_secret_value()) for r in unlocked.records()]

    store = reopen(unlocked, open_store)
    assert StoreState.LOCKED == store.state
    store.unlock(PASS)

    assert expected == [(r, store.password(r).get_secret_value()) for r in store.records()]


@pytest.mark.parametrize(
    "password",
    [
        "two\nlines",
        "crlf\r\n",
        "nul\x00byte",
        "emoji \U0001f511\U0001f40d",
        'quote" back\\slash',
        "  spaces  ",
        "",
        "lone \ud800 surrogate",
        "\u00fcn\u00efc\u00f6d\u00e9 \u6f22\u5b57",
        "x" * 10_000,
    ],
)
def test_any_unicode_password_round_trips(
    open_store: OpenStore, key_path: Path, password: str
) -> None:
    """A password is stored as the exact text given, through a restart."""
    store = open_store(key_file=key_path)
    store.put(rec(), SecretStr(password))

    store = reopen(store, open_store, key_file=key_path)

    assert password == store.password(rec()).get_secret_value()


def test_put_replaces_the_record_with_the_same_key(unlocked: FileStore) -> None:
    """(name, username) identifies a record: a second put replaces it, others stay."""
    newer = rec("pypi", "alice", "https://new.example.test/")
    unlocked.put(rec("pypi", "bob"), SecretStr("b"))
    unlocked.put(newer, SecretStr("new"))

    assert [newer, rec("pypi", "bob")] == list(unlocked.records())
    assert "new" == unlocked.password(rec()).get_secret_value()


def test_records_are_one_tuple_per_version_of_the_store(unlocked: FileStore) -> None:
    """records() hands out the same tuple until a change (the service caches its lookup
    index by that identity), and a new one after a put, a remove or a lock and unlock."""
    unlocked.put(rec(), SecretStr("a"))
    first = unlocked.records()
    assert first is unlocked.records()

    unlocked.put(rec("pypi", "bob"), SecretStr("b"))
    second = unlocked.records()
    assert second is not first
    assert [rec(), rec("pypi", "bob")] == list(second)

    unlocked.remove([rec("pypi", "bob").key])
    assert [rec()] == list(unlocked.records())
    assert unlocked.records() is not second

    third = unlocked.records()
    unlocked.lock()
    unlocked.unlock(PASS)
    assert third is not unlocked.records()
    assert [rec()] == list(unlocked.records())


def test_password_of_absent_record_is_not_found(unlocked: FileStore) -> None:
    """Asking for a record the store does not hold raises NotFoundError."""
    with pytest.raises(NotFoundError, match="no record named 'nope' for user 'alice'"):
        unlocked.password(rec("nope"))


def test_remove_ignores_absent_keys_without_writing(unlocked: FileStore, path: Path) -> None:
    """Removing only absent keys leaves the file as it was; a present key is removed."""
    before = sha256(path)
    unlocked.remove([("nope", "alice")])
    assert before == sha256(path)

    unlocked.remove([("pypi", "alice"), ("nope", "x")])
    assert [] == list(unlocked.records())
    assert before != sha256(path)


# -- passphrase mode ------------------------------------------------------------------------


def test_state_goes_missing_unlocked_locked(open_store: OpenStore) -> None:
    """No file: MISSING; after create: UNLOCKED; after lock: LOCKED."""
    store = open_store()
    states = [store.state]
    store.create(PASS)
    states.append(store.state)
    store.lock()
    states.append(store.state)

    assert [StoreState.MISSING, StoreState.UNLOCKED, StoreState.LOCKED] == states
    assert (True, True) == (store.lockable, store.needs_passphrase)


USES: list[Callable[[FileStore], object]] = [
    lambda s: s.records(),
    lambda s: s.password(rec()),
    lambda s: s.put(rec(), SecretStr("x")),
    lambda s: s.remove([rec().key]),
]


@pytest.mark.parametrize("call", USES, ids=["records", "password", "put", "remove"])
def test_missing_store_says_to_run_init(
    open_store: OpenStore, path: Path, call: Callable[[FileStore], object]
) -> None:
    """Using a store that does not exist names `helperctl init`, and creates nothing."""
    with pytest.raises(LockedError) as caught:
        call(open_store())

    assert f"no store exists at {path} yet: create it with `helperctl init`" == caught.value.message
    assert not path.exists()


@pytest.mark.parametrize("call", USES, ids=["records", "password", "put", "remove"])
def test_locked_store_says_to_run_unlock(
    unlocked: FileStore, call: Callable[[FileStore], object]
) -> None:
    """Using a locked store names `helperctl unlock`."""
    unlocked.lock()

    with pytest.raises(LockedError, match="run `helperctl unlock`"):
        call(unlocked)


def test_lock_drops_every_secret(unlocked: FileStore) -> None:
    """After lock no password can be read and the store holds no key or SecretStr."""
    unlocked.lock()

    with pytest.raises(LockedError):
        unlocked.password(rec())
    held = [v for v in vars(unlocked).values() if v is not None]
    assert not [v for v in held if isinstance(v, (SecretStr, dict, StoreKey))]


def test_create_refuses_an_existing_store(
    unlocked: FileStore, open_store: OpenStore, path: Path
) -> None:
    """init on an existing file is refused, pointing at unlock; the file is untouched."""
    store = reopen(unlocked, open_store)
    before = sha256(path)

    with pytest.raises(BadRequestError) as caught:
        store.create(SecretStr("another"))

    assert f"a store already exists at {path}; use `helperctl unlock`" == caught.value.message
    assert before == sha256(path)


def test_unlock_never_creates(open_store: OpenStore, path: Path) -> None:
    """unlock on a missing store says to run init, and creates no file."""
    with pytest.raises(LockedError, match="create it with `helperctl init`"):
        open_store().unlock(PASS)

    assert not path.exists()


def test_wrong_passphrase_keeps_the_store_locked(
    unlocked: FileStore, open_store: OpenStore
) -> None:
    """A wrong passphrase raises BadPassphraseError and the store stays locked."""
    store = reopen(unlocked, open_store)

    with pytest.raises(BadPassphraseError, match="wrong passphrase"):
        store.unlock(SecretStr("correct horsf"))

    assert StoreState.LOCKED == store.state


def test_unlock_of_an_unlocked_store_checks_the_passphrase(unlocked: FileStore) -> None:
    """unlock on an open store refuses a wrong passphrase but stays unlocked."""
    with pytest.raises(BadPassphraseError):
        unlocked.unlock(SecretStr("wrong"))
    unlocked.unlock(PASS)

    assert StoreState.UNLOCKED == unlocked.state


@pytest.mark.parametrize("passphrase", [None, SecretStr("")])
def test_create_needs_a_passphrase(open_store: OpenStore, passphrase: SecretStr | None) -> None:
    """A missing or empty passphrase cannot create a store."""
    with pytest.raises(BadRequestError, match="passphrase"):
        open_store().create(passphrase)


def test_change_passphrase(unlocked: FileStore, open_store: OpenStore, path: Path) -> None:
    """After passwd the old passphrase fails, the new one opens it, and the salt is new."""
    salt = header_of(path)["key"]["salt"]
    unlocked.change_passphrase(PASS, SecretStr("new horse"))
    assert SECRET == unlocked.password(rec()).get_secret_value()  # still unlocked
    assert salt != header_of(path)["key"]["salt"]

    store = reopen(unlocked, open_store)
    with pytest.raises(BadPassphraseError):
        store.unlock(PASS)
    store.unlock(SecretStr("new horse"))

    assert SECRET == store.password(rec()).get_secret_value()


@pytest.mark.parametrize("locked", [False, True], ids=["unlocked", "locked"])
def test_change_passphrase_whose_folder_sync_failed_says_so_and_keeps_the_new_one(
    unlocked: FileStore, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch, *, locked: bool
) -> None:
    """The new file was renamed into place, then the folder's fsync failed: passwd says the
    passphrase was changed and may come back after a power loss, and the store goes on under
    the new one (the next write must not put the old one back)."""
    store = reopen(unlocked, open_store) if locked else unlocked

    with monkeypatch.context() as patch:
        patch.setattr(durable, "fsync_dir", failing_fsync_dir)
        with pytest.raises(StoreUnavailableError) as caught:
            store.change_passphrase(PASS, SecretStr("new horse"))
    store.put(rec("after"), SecretStr("later"))

    assert "the passphrase was changed, but" in caught.value.message
    assert "Input/output error" in caught.value.message
    again = reopen(store, open_store)
    with pytest.raises(BadPassphraseError):
        again.unlock(PASS)
    again.unlock(SecretStr("new horse"))
    assert SECRET == again.password(rec()).get_secret_value()
    assert "later" == again.password(rec("after")).get_secret_value()


def test_init_whose_folder_sync_failed_leaves_the_new_store_open(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init's file was renamed into place, then the folder's fsync failed: the store is there
    and open under its passphrase, and says why it may not survive a power loss."""
    store = open_store()

    with monkeypatch.context() as patch:
        patch.setattr(durable, "fsync_dir", failing_fsync_dir)
        with pytest.raises(StoreUnavailableError, match="was written, but its folder could not"):
            store.create(PASS)
    store.put(rec(), SecretStr(SECRET))

    assert store.state is StoreState.UNLOCKED
    again = reopen(store, open_store)
    again.unlock(PASS)
    assert SECRET == again.password(rec()).get_secret_value()


def test_change_passphrase_refuses_wrong_old(unlocked: FileStore, path: Path) -> None:
    """passwd with a wrong old passphrase changes nothing."""
    before = sha256(path)

    with pytest.raises(BadPassphraseError):
        unlocked.change_passphrase(SecretStr("nope"), SecretStr("new"))

    assert before == sha256(path)


def test_change_passphrase_of_a_locked_store(unlocked: FileStore, open_store: OpenStore) -> None:
    """passwd works on a locked store and leaves it unlocked under the new passphrase."""
    store = reopen(unlocked, open_store)
    store.change_passphrase(PASS, SecretStr("new"))

    assert SECRET == store.password(rec()).get_secret_value()
    store.lock()
    store.unlock(SecretStr("new"))


def test_change_passphrase_moves_to_current_kdf_params(
    unlocked: FileStore, open_store: OpenStore, path: Path
) -> None:
    """passwd re-derives with the store's configured Argon2id parameters."""
    store = reopen(unlocked, open_store, kdf=KdfParams(iterations=2, memory_kib=16, lanes=2))
    store.change_passphrase(PASS, SecretStr("new"))

    key = header_of(path)["key"]
    assert (2, 16, 2) == (key["iterations"], key["memory_kib"], key["lanes"])


def test_default_kdf_params(open_store: OpenStore, path: Path) -> None:
    """The default Argon2id cost creates and reopens a store (this one takes ~0.5 s)."""
    store = open_store(kdf=KdfParams())
    store.create(PASS)
    store.put(rec(), SecretStr(SECRET))

    store = reopen(store, open_store, kdf=KdfParams())
    store.unlock(PASS)

    assert SECRET == store.password(rec()).get_secret_value()
    assert 65536 == header_of(path)["key"]["memory_kib"]


# -- refusing damaged files -----------------------------------------------------------------


def flip_last_byte(data: bytes) -> bytes:
    """Corrupt the GCM tag."""
    return data[:-1] + bytes([data[-1] ^ 1])


def replace_in_header(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    """Edit the header line."""

    def edit(data: bytes) -> bytes:
        line, _, rest = data.partition(b"\n")
        assert old in line
        return line.replace(old, new, 1) + b"\n" + rest

    return edit


def replace_b64_field(field: str) -> Callable[[bytes], bytes]:
    """Give a base64 header field other, well-formed bytes of the same length."""

    def edit(data: bytes) -> bytes:
        line, _, rest = data.partition(b"\n")
        header = json.loads(line)
        holder = header["key"] if field == "salt" else header
        holder[field] = base64.b64encode(bytes(len(base64.b64decode(holder[field])))).decode()
        return json.dumps(header, separators=(",", ":"), sort_keys=True).encode() + b"\n" + rest

    return edit


INTEGRITY = "failed its integrity check (damaged, truncated or tampered with)"
DAMAGED = "is damaged or not a helperd store"
TAMPERING = [
    pytest.param(flip_last_byte, StoreUnavailableError, INTEGRITY, id="ciphertext-byte"),
    pytest.param(lambda d: d[:-10], StoreUnavailableError, INTEGRITY, id="truncated"),
    pytest.param(lambda d: d[: d.index(b"\n") + 1], StoreUnavailableError, INTEGRITY, id="no-body"),
    pytest.param(
        replace_in_header(b'"generation":2', b'"generation":3'),
        StoreUnavailableError,
        INTEGRITY,
        id="header-generation",
    ),
    pytest.param(replace_b64_field("nonce"), StoreUnavailableError, INTEGRITY, id="header-nonce"),
    pytest.param(lambda d: d[:20], StoreUnavailableError, DAMAGED, id="truncated-header"),
    pytest.param(lambda d: b"[" + d[1:], StoreUnavailableError, DAMAGED, id="not-json"),
    pytest.param(lambda d: b"PK\x03\x04" + d, StoreUnavailableError, DAMAGED, id="other-file"),
    pytest.param(
        replace_in_header(b'"salt":"', b'"salt":"!'), StoreUnavailableError, DAMAGED, id="bad-b64"
    ),
    pytest.param(
        replace_in_header(b'"aead":"AES-256-GCM",', b""),
        StoreUnavailableError,
        DAMAGED,
        id="missing-field",
    ),
    pytest.param(
        replace_in_header(b'"version":4', b'"version":5'),
        StoreUnavailableError,
        "was written by a newer helperd (format version 5)",
        id="newer",
    ),
    # The salt and check can only be tested with the key: damage there reads as a wrong key.
    pytest.param(replace_b64_field("salt"), BadPassphraseError, "wrong", id="header-salt"),
    pytest.param(replace_b64_field("check"), BadPassphraseError, "wrong", id="header-check"),
]


@pytest.mark.parametrize(("tamper", "error", "message"), TAMPERING)
def test_damaged_file_is_refused_and_left_untouched(
    unlocked: FileStore,
    open_store: OpenStore,
    tamper: Callable[[bytes], bytes],
    error: type[HelperdError],
    message: str,
) -> None:
    """A damaged file is refused, saying why; it stays byte for byte and puts are refused."""
    store = reopen(unlocked, open_store)
    path = store.path
    path.write_bytes(tamper(path.read_bytes()))
    before = sha256(path)

    with pytest.raises(error) as caught:
        store.unlock(PASS)
    with pytest.raises(LockedError):
        store.put(rec("new"), SecretStr("x"))

    assert message in caught.value.message
    assert "it was left untouched" in caught.value.message or error is BadPassphraseError
    assert before == sha256(path)


def test_valid_ciphertext_with_invalid_records_is_refused(
    open_store: OpenStore, key_path: Path, path: Path
) -> None:
    """Decrypted contents that are not valid records fail the integrity check, unquoted."""
    creator = open_store(key_file=key_path)
    creator.records()
    creator.close()
    header = json.loads(path.read_bytes().partition(b"\n")[0])
    del header["segments"]
    header["version"] = 1  # one ciphertext of JSON, decrypted whole, then validated
    line = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    bad = b'{"records":[{"name":"LEAKME","password":"LEAKME","username":5}]}'
    body = aead_key_for_key_file(KEY_BYTES, header).encrypt(
        base64.b64decode(header["nonce"]), bad, line
    )
    path.write_bytes(line + b"\n" + body)

    with pytest.raises(StoreUnavailableError) as caught:
        open_store(key_file=key_path).records()

    assert INTEGRITY in caught.value.message
    assert "LEAKME" not in caught.value.message
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None  # pydantic's error, which quotes the input


# -- key-file mode --------------------------------------------------------------------------


def test_key_file_store_creates_itself_and_never_locks(
    open_store: OpenStore, key_path: Path, path: Path
) -> None:
    """A key-file store is UNLOCKED before any file exists, creates one on use, and refuses
    init, lock and passwd."""
    store = open_store(key_file=key_path)
    assert (StoreState.UNLOCKED, False, False) == (
        store.state,
        store.lockable,
        store.needs_passphrase,
    )
    assert [] == list(store.records())
    assert path.exists()

    with pytest.raises(BadRequestError, match="init is for passphrase stores"):
        store.create(PASS)
    with pytest.raises(BadRequestError, match="cannot be locked"):
        store.lock()
    with pytest.raises(BadRequestError, match="no passphrase"):
        store.change_passphrase(PASS, SecretStr("x"))


def bad_mode(path: Path) -> None:
    """Let the group read the key file."""
    path.chmod(0o640)


def symlink(path: Path) -> None:
    """Move the key file away and leave a symlink to it in its place."""
    real = path.with_name("real.key")
    path.rename(real)
    path.symlink_to(real)


def short(path: Path) -> None:
    """Keep 16 bytes of the key file."""
    path.write_bytes(KEY_BYTES[:16])


@pytest.mark.parametrize(
    ("spoil", "message"),
    [(bad_mode, "run `chmod 600"), (symlink, "symbolic link"), (short, "holds 16 bytes")],
)
def test_bad_key_file_is_refused_then_picked_up_when_fixed(
    open_store: OpenStore,
    key_path: Path,
    path: Path,
    spoil: Callable[[Path], None],
    message: str,
) -> None:
    """A bad key file refuses every call and creates no store; once fixed, the store opens."""
    spoil(key_path)
    store = open_store(key_file=key_path)

    with pytest.raises(StoreUnavailableError, match=message):
        store.records()
    with pytest.raises(StoreUnavailableError, match=message):
        store.put(rec(), SecretStr("x"))
    assert not path.exists()

    key_path.unlink()
    key_path.write_bytes(KEY_BYTES)
    key_path.chmod(0o600)
    store.put(rec(), SecretStr("x"))

    assert [rec()] == list(store.records())


def test_other_key_file_does_not_open_the_store(
    open_store: OpenStore, key_path: Path, path: Path, tmp_path: Path
) -> None:
    """Another key file is refused as not opening the store, and the file is untouched."""
    store = open_store(key_file=key_path)
    store.put(rec(), SecretStr(SECRET))
    store.close()
    before = sha256(path)
    other = tmp_path / "other.key"
    other.write_bytes(b"O" * 32)
    other.chmod(0o600)

    with pytest.raises(StoreUnavailableError, match="does not open the store"):
        open_store(key_file=other).put(rec("x"), SecretStr("x"))

    assert before == sha256(path)


def test_damaged_key_file_store_refuses_puts_until_restored(
    open_store: OpenStore, key_path: Path, path: Path
) -> None:
    """A damaged key-file store refuses reads and puts; restoring the file makes it work."""
    store = open_store(key_file=key_path)
    store.put(rec(), SecretStr(SECRET))
    store = reopen(store, open_store, key_file=key_path)
    good = path.read_bytes()
    path.write_bytes(flip_last_byte(good))
    before = sha256(path)

    with pytest.raises(StoreUnavailableError, match="integrity"):
        store.records()
    with pytest.raises(StoreUnavailableError, match="integrity"):
        store.put(rec("new"), SecretStr("x"))
    assert before == sha256(path)

    path.write_bytes(good)
    assert SECRET == store.password(rec()).get_secret_value()


def test_store_of_the_other_mode_is_refused(
    unlocked: FileStore, open_store: OpenStore, key_path: Path, path: Path
) -> None:
    """A passphrase store is not opened with a key file, nor a key-file store by passphrase."""
    unlocked.close()
    keyed = open_store(key_file=key_path)
    with pytest.raises(StoreUnavailableError, match="protected by a passphrase"):
        keyed.records()

    path.unlink()
    keyed.records()  # creates a key-file store
    keyed.close()
    with pytest.raises(StoreUnavailableError, match="set HELPERD_KEY_FILE"):
        open_store().unlock(PASS)


# -- process and thread safety --------------------------------------------------------------


def test_second_store_on_the_same_file_is_refused(open_store: OpenStore) -> None:
    """Two FileStores on one path cannot coexist; closing the first frees the path."""
    first = open_store()

    with pytest.raises(StoreUnavailableError, match="another helperd is using this store"):
        open_store()
    first.close()

    assert StoreState.MISSING == open_store().state


def test_closed_store_refuses_use(unlocked: FileStore) -> None:
    """A closed store answers StoreUnavailableError."""
    unlocked.close()

    with pytest.raises(StoreUnavailableError, match="is closed"):
        unlocked.records()


def test_failed_write_changes_nothing(
    unlocked: FileStore, open_store: OpenStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk fails put and passwd with StoreUnavailableError; memory and disk keep the
    old state and no temporary file is left."""
    before = sha256(path)

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", full)  # a write of the whole file
        patch.setattr(os, "pwrite", full)  # an entry of the journal
        with pytest.raises(StoreUnavailableError, match="No space left on device"):
            unlocked.put(rec("new"), SecretStr("x"))  # the journal's entry
        with pytest.raises(StoreUnavailableError, match="No space left on device"):
            unlocked.put(rec("new"), SecretStr("x"))  # then the whole file
        with pytest.raises(StoreUnavailableError, match="No space left on device"):
            unlocked.change_passphrase(PASS, SecretStr("new"))

    assert [rec()] == list(unlocked.records())
    assert before == sha256(path)
    files = ["store.enc", "store.enc.journal", "store.enc.lock"]
    assert files == sorted(p.name for p in path.parent.iterdir())
    store = reopen(unlocked, open_store)
    store.unlock(PASS)
    assert [rec()] == list(store.records())


def gate_kdf(monkeypatch: pytest.MonkeyPatch, block_call: int) -> threading.Event:
    """Make the ``block_call``-th Argon2id run wait for the returned event."""
    release = threading.Event()
    calls = 0
    real = passphrase_key

    def gated(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == block_call:
            assert release.wait(10)
        return real(*args)

    monkeypatch.setattr(file_store, "passphrase_key", gated)
    return release


def run_in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``call`` in a thread; the list receives its exception, if any."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def test_readers_do_not_wait_for_an_unlock_attempt(
    unlocked: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a (wrong) unlock runs Argon2id, reads and writes of the open store go on."""
    release = gate_kdf(monkeypatch, 1)
    thread, errors = run_in_thread(lambda: unlocked.unlock(SecretStr("wrong")))

    unlocked.put(rec("during"), SecretStr("d"))
    records = list(unlocked.records())
    release.set()
    thread.join(10)

    assert [rec("during"), rec()] == records
    assert [BadPassphraseError] == [type(e) for e in errors]


def test_puts_during_passwd_are_kept(
    unlocked: FileStore, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put made while passwd derives the new key is in the re-encrypted store."""
    release = gate_kdf(monkeypatch, 2)  # the first run checks the old passphrase
    thread, errors = run_in_thread(lambda: unlocked.change_passphrase(PASS, SecretStr("new")))

    unlocked.put(rec("during"), SecretStr("d"))
    release.set()
    thread.join(10)
    assert [] == errors

    store = reopen(unlocked, open_store)
    store.unlock(SecretStr("new"))
    assert "d" == store.password(rec("during")).get_secret_value()


def test_reads_never_wait_for_a_writer(unlocked: FileStore) -> None:
    """While a writer holds the store's writer lock (as it does across encryption, write and
    fsync), records, password and state answer at once from the last durable snapshot."""
    unlocked.put(rec(), SecretStr(SECRET))
    answers: list[object] = []

    def read() -> None:
        [record] = unlocked.records()
        answers.append((record.key, unlocked.password(record).get_secret_value()))
        answers.append((unlocked.state, unlocked.reads_block))

    with unlocked._lock:  # a writer in the middle of its write
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(5.0)
        finished = not reader.is_alive()
    assert finished, "a read waited for the writer's lock"
    assert [(rec().key, SECRET), (StoreState.UNLOCKED, False)] == answers


def test_incremental_encoding_writes_the_same_bytes_as_a_full_one(
    open_store: OpenStore, path: Path, key_path: Path
) -> None:
    """After puts (new and replacing), a remove and a generic record, each write encoding
    only what changed, the plaintext is byte for byte one json.dumps of each record, a line
    per record in key order."""
    store = open_store(key_file=key_path)
    for name in ("r5", "r1", "r9", "r3", "r1"):
        store.put(rec(name), SecretStr(f"pw-\udc80-{name}-é"))
    store.remove([("r3", "alice"), ("absent", "x")])
    store.put(rec("g"), SecretStr("x"))
    whole(store)
    opened = store._open
    assert opened is not None
    entries = {record.key: (record, password) for record, password in opened.entries()}
    expected = b"\n".join(
        json.dumps(
            [record.model_dump(mode="json"), password], separators=(",", ":"), sort_keys=True
        ).encode()
        for record, password in (entries[key] for key in sorted(entries))
    )
    aead = aead_key_for_key_file(KEY_BYTES, header_of(path))
    (plaintext,) = segment_plaintexts(path, aead)
    assert expected == plaintext
    assert ["g", "r1", "r5", "r9"] == [r.name for r in store.records()]


def test_records_after_each_write_are_the_sorted_records(
    open_store: OpenStore, key_path: Path
) -> None:
    """After every put (new key at either end or inside, a replacement) and remove, records()
    is every current record sorted by key, the replacing record object included, and a fresh
    open agrees."""
    store = open_store(key_file=key_path)
    rng = random.Random(19)
    current: dict[tuple[str, str], Record] = {}
    for step in range(60):
        name = f"r{rng.randrange(12):02d}"
        if rng.random() < 0.25 and current:
            doomed = rng.choice(sorted(current))
            store.remove([doomed])
            del current[doomed]
        else:
            record = rec(name, "alice", f"https://h{step}.test/")
            store.put(record, SecretStr(f"pw{step}"))
            current[record.key] = record
        assert [current[key] for key in sorted(current)] == list(store.records())
    store.close()
    again = open_store(key_file=key_path)
    assert [current[key] for key in sorted(current)] == list(again.records())
