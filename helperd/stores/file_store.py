"""The encrypted file store: every record and password in one AES-256-GCM encrypted file,
and the writes made since it was written whole in its journal beside it.

The file's format (its header, its records) is in `helperd.stores.file_format`, its reading
(older versions too) in `helperd.stores.file_decode`, the journal's format and its file's I/O in
`helperd.stores.file_journal`; docs/file-format.md gives every field and the reasons. The
store's writes (and the upgrade of an older version) are `helperd.stores.file_writes.FileWrites`,
a part of `FileStore` kept in a module of its own.

A file that does not open cleanly is never written, and nothing is stored until it does.

Readers never wait for a writer: the open store is one immutable snapshot (`_Open`: key,
header, records, and each record's encoded JSON) that a write replaces in a single attribute
assignment once the write is durable. Writers prepare, encrypt and fsync under the writer
lock, which readers never take. A write of a few records appends one entry to the journal and
fsyncs it, whatever the store's size; once the journal has grown to `journal_room`, a write
writes the whole file instead (re-encrypting only the segments that changed) and starts a new
journal. Each record's JSON is encoded once and reused by later writes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from helperd_client.errors import (
    BadPassphraseError,
    BadRequestError,
    LockedError,
    NotFoundError,
    StoreUnavailableError,
)
from pydantic import SecretStr

from helperd.core.catalog import Delta
from helperd.core.record import Record, RecordKey
from helperd.core.store import Store, StoreState
from helperd.stores import durable
from helperd.stores.file_decode import _decrypt, _parse
from helperd.stores.file_format import (
    _Changes,
    _edited,
    _made_of,
    _Open,
    _pieces_of,
    _unsealed,
)
from helperd.stores.file_journal import JournalFile, _Journal
from helperd.stores.file_scribe import Scribe, Scribed
from helperd.stores.file_writes import FileWrites
from helperd.stores.keys import (
    KEY_FILE,
    PASSPHRASE,
    SALT_BYTES,
    KdfParams,
    KeySpec,
    StoreKey,
    key_file_key,
    passphrase_key,
    read_key_file,
)

__all__ = ["FileStore"]


class FileStore(Scribed, FileWrites, Store):
    """Records and passwords in one encrypted file, opened by a passphrase or a key file.

    With ``key_file``, the store opens itself on first use (creating an empty store file
    when none exists) and is never locked: a key file fixed after a refusal is picked up on
    the next call. Without, ``create``/``unlock`` take a passphrase and ``lock`` forgets it.

    Thread safe, and reads take no lock: they see the snapshot of the last durable write.
    Writes (and lock, unlock, close) are serialised by a writer lock held across encryption
    and fsync; Argon2id runs outside it, so neither readers nor writers wait for a KDF.

    Args:
        path: the store file; its directory exists and is private (0700).
        key_file: the key file of a headless store, or None for a passphrase store.
        kdf: Argon2id parameters for new passphrases (an existing file names its own).
        randbytes: source of salts and nonces (tests make it deterministic).
        held_lock: a descriptor of the store's lock file that already holds its lock (the
            writer process's, handed over by its daemon); None takes the lock here.

    Raises:
        StoreUnavailableError: another helperd holds this store's lock.
    """

    kind = "file"

    def __init__(
        self,
        path: Path,
        *,
        key_file: Path | None = None,
        kdf: KdfParams = KdfParams(),  # noqa: B008 - a frozen dataclass, immutable
        randbytes: Callable[[int], bytes] = os.urandom,
        held_lock: int | None = None,
    ) -> None:
        self.path = path
        self.key_file = key_file
        self._kdf = kdf
        self._randbytes = randbytes
        # Serialises every change to the file and to _open: held across encryption, write
        # and fsync (so only ever in a worker thread), never while Argon2id runs, never by
        # a reader.
        self._lock = threading.Lock()
        # Serialises create/unlock/change_passphrase, so the key spec on disk only changes
        # under it while put/remove (under self._lock alone) go on. Taken before _lock.
        self._slow = threading.Lock()
        # The open store, or None while locked; read without a lock (one atomic load).
        self._open: _Open | None = None
        self._closed = False
        self._journal = JournalFile(path.with_name(path.name + ".journal"))
        self._file_lock = durable.FileLock(path.with_name(path.name + ".lock"), held=held_lock)
        self._scribe: Scribe | None = None  # who writes, while a writer process does
        self.committed: Callable[[_Changes], None] | None = None  # told of each durable write
        durable.remove_stale_temps(path)  # the journal's temporary files too

    def __repr__(self) -> str:
        source = PASSPHRASE if self.key_file is None else f"key_file={str(self.key_file)!r}"
        return f"FileStore({str(self.path)!r}, {source})"

    @property
    def journal(self) -> Path:
        """The journal beside the store file."""
        return self._journal.path

    @property
    def state(self) -> StoreState:
        """UNLOCKED with a key in memory, else LOCKED, or MISSING when there is no file.

        A key-file store is always UNLOCKED: it opens itself on use, and reports what keeps
        it from opening as `StoreUnavailableError`.
        """
        if self._open is not None or self.key_file is not None:
            return StoreState.UNLOCKED
        # lexists: a dangling symlink is not "missing" (init must not write through it).
        return StoreState.LOCKED if os.path.lexists(self.path) else StoreState.MISSING

    @property
    def reads_block(self) -> bool:
        """Reads come from memory once the store is open (a key-file store opens on first use)."""
        return self._open is None

    @property
    def lockable(self) -> bool:
        """True for a passphrase store; a key-file store cannot be locked."""
        return self.key_file is None

    @property
    def needs_passphrase(self) -> bool:
        """True for a passphrase store."""
        return self.key_file is None

    def records(self) -> Sequence[Record]:
        """Every record, sorted by (name, username), without passwords."""
        return self._current().records

    def records_delta(self, since: Sequence[Record], until: Sequence[Record]) -> Delta | None:
        """What a write of a few records changed from ``since`` to ``until``, when ``until``
        is the current version and was made from ``since`` by one write."""
        opened = self._open
        if opened is None or opened.records is not until or opened.previous is not since:
            return None
        return opened.delta

    def password(self, record: Record) -> SecretStr:
        """The password of the record with ``record``'s (name, username)."""
        entry = self._current().entry(record.key)
        if entry is None:
            raise NotFoundError(f"no record named {record.name!r} for user {record.username!r}")
        return SecretStr(entry[1])

    def put(self, record: Record, password: SecretStr) -> None:
        """Add ``record``, replacing the one with the same (name, username); durable on return."""
        with self._lock:
            self._write_changes(_pieces_of({record.key: (record, password.get_secret_value())}))

    def remove(self, keys: Iterable[RecordKey]) -> None:
        """Delete the records with these keys; nothing is written when none of them exists."""
        with self._lock:
            opened = self._open_entries()
            doomed: _Changes = {key: None for key in keys if opened.entry(key) is not None}
            if doomed:
                self._write_changes(doomed)

    def create(self, passphrase: SecretStr | None) -> None:
        """Write a new, empty passphrase store and leave it unlocked.

        Raises:
            BadRequestError: a store file exists, this is a key-file store, or the passphrase
                is missing or empty.
        """
        if self.key_file is not None:
            raise BadRequestError(
                f"this store is opened by its key file {self.key_file}; init is for passphrase"
                " stores (a key-file store creates itself on first use)"
            )
        secret = _new_passphrase(passphrase)
        with self._slow:
            with self._lock:
                self._refuse_existing()
            salt = self._randbytes(SALT_BYTES)
            key = passphrase_key(secret, salt, self._kdf)
            with self._lock:
                self._refuse_existing()
                self._commit_all((), key, KeySpec(PASSPHRASE, salt, key.check, self._kdf), 1)

    def unlock(self, passphrase: SecretStr | None) -> None:
        """Open the store with its passphrase (a key-file store just opens itself).

        An already unlocked store checks the passphrase too, and stays unlocked either way.

        Raises:
            BadPassphraseError: the passphrase does not open the store.
            LockedError: no store exists (unlock never creates one).
            StoreUnavailableError: the file is damaged, or is opened by a key file.
        """
        if self.key_file is not None:
            with self._lock:
                self._open_entries()
            return
        secret = _passphrase(passphrase, "unlock")
        with self._slow:
            spec, raw = self._current_spec()
            key = self._passphrase_key(secret, spec)
            if raw is None:
                key.wipe()  # already unlocked: the passphrase was only checked
                return
            opened, journal = self._with_journal(_decrypt(key, raw, self.path))
            with self._lock:
                self._check_not_closed()
                self._open = opened
                self._journal.follow(journal, len(raw))
                self._upgrade()

    def lock(self) -> None:
        """Drop the key and every decrypted secret from memory.

        Raises:
            BadRequestError: a key-file store cannot be locked.
        """
        if self.key_file is not None:
            raise BadRequestError(
                f"this store is opened by its key file {self.key_file}: it cannot be locked,"
                " as no passphrase could unlock it"
            )
        with self._lock:
            self._write_whole()
            self._forget()

    def change_passphrase(self, old: SecretStr, new: SecretStr) -> None:
        """Re-encrypt the store under ``new`` with a new salt, atomically; it ends up unlocked.

        Raises:
            BadPassphraseError: ``old`` does not open the store (nothing changes).
            BadRequestError: ``new`` is empty, or this is a key-file store.
            LockedError: no store exists.
            StoreUnavailableError: the file could not be written (nothing changes), or it was,
                under ``new``, but its folder's fsync failed (the store is unlocked under
                ``new``, which the message says).
        """
        if self.key_file is not None:
            raise BadRequestError(
                f"this store is opened by its key file {self.key_file}: it has no passphrase"
            )
        old_secret = _passphrase(old, "change the passphrase of")
        new_secret = _new_passphrase(new)
        with self._slow:
            spec, raw = self._current_spec()
            old_key = self._passphrase_key(old_secret, spec)
            salt = self._randbytes(SALT_BYTES)
            new_key = passphrase_key(new_secret, salt, self._kdf)
            new_spec = KeySpec(PASSPHRASE, salt, new_key.check, self._kdf)
            with self._lock:
                self._check_not_closed()
                # Unlocked now: the records in memory, puts made during the KDF included;
                # locked, before or during the KDF: what the file holds.
                was = self._open
                if was is None:
                    raw = raw or self._read_existing()
                    was = self._with_journal(_decrypt(old_key, raw, self.path))[0]
                generation = was.header.generation + 1
                try:
                    self._write(new_key, new_spec, generation, _unsealed(was))
                except durable.NotDurableError as exc:
                    raise StoreUnavailableError(
                        "the passphrase was changed, but the store's folder could not be synced"
                        f" ({exc.reason}): after a power loss the old passphrase may be the one"
                        " that opens the store"
                    ) from None

    def discard(self) -> None:
        """Delete the store file and its journal (after a migration), then close the store."""
        with self._lock:
            self._check_not_closed()
            self._end_scribe()
            self._journal.close()
            try:
                self.path.unlink(missing_ok=True)
                self.journal.unlink(missing_ok=True)
                durable.fsync_dir(self.path.parent)
            except OSError as exc:
                raise StoreUnavailableError(
                    f"could not delete {self.path}: {exc.strerror or exc}"
                ) from None
            self._forget()  # so that close writes nothing back
        self.close()

    def close(self) -> None:
        """Write the journal's changes into the file, forget every secret and release the
        store's OS lock."""
        with self._lock:
            if not self._closed and not self._end_scribe():
                self._write_whole()
            self._forget()
            self._journal.close()
            self._closed = True
            self._file_lock.release()

    # Internals. Those that change _open run with self._lock held.

    def _forget(self) -> None:
        """Zero the key (see helperd.stores.secret_memory) and drop every decrypted secret."""
        current, self._open = self._open, None
        if current is not None:
            current.key.wipe()

    def _check_not_closed(self) -> None:
        if self._closed:
            raise StoreUnavailableError(f"the file store at {self.path} is closed")

    def _refuse_existing(self) -> None:
        self._check_not_closed()
        if os.path.lexists(self.path):
            raise BadRequestError(f"a store already exists at {self.path}; use `helperctl unlock`")

    def _missing(self) -> LockedError:
        return LockedError(f"no store exists at {self.path} yet: create it with `helperctl init`")

    def _current(self) -> _Open:
        """The open store, read without a lock; only a key-file store's first open takes one.

        A passphrase store that is locked (or being locked) is refused without the lock too:
        a reader on the event loop must never wait for a writer's fsync.
        """
        opened = self._open
        self._check_not_closed()
        if opened is not None:
            return opened
        if self.key_file is None:
            raise self._locked_or_missing()
        with self._lock:
            return self._open_entries()

    def _open_entries(self) -> _Open:
        """The open store, opening a key-file store on first use (self._lock held)."""
        self._check_not_closed()
        if self._open is not None:
            return self._open
        if self.key_file is not None:
            return self._open_with_key_file(self.key_file)
        raise self._locked_or_missing()

    def _locked_or_missing(self) -> LockedError:
        if os.path.lexists(self.path):
            return LockedError(f"the store at {self.path} is locked: run `helperctl unlock`")
        return self._missing()

    def _open_with_key_file(self, key_file: Path) -> _Open:
        # Read on every attempt until one succeeds, so a key file fixed later is picked up.
        material = read_key_file(key_file)
        raw = durable.read_private(self.path)
        if raw is None:
            salt = self._randbytes(SALT_BYTES)
            key = key_file_key(material, salt)
            return self._commit_all((), key, KeySpec(KEY_FILE, salt, key.check), 1)
        spec = _parse(raw, self.path)[0].spec
        if spec.source != KEY_FILE:
            raise StoreUnavailableError(
                f"store file {self.path} is protected by a passphrase, not by a key file; it"
                " was left untouched. Unset HELPERD_KEY_FILE to use it, or move it away to start"
                " a new store"
            )
        key = key_file_key(material, spec.salt)
        if not key.matches(spec.check):
            raise StoreUnavailableError(
                f"the key file {key_file} does not open the store {self.path}; it was left"
                " untouched. Use the key file that created it, or move the store away to start"
                " a new one"
            )
        self._open, journal = self._with_journal(_decrypt(key, raw, self.path))
        self._journal.follow(journal, len(raw))
        self._upgrade()
        return self._open

    def _with_journal(self, opened: _Open) -> tuple[_Open, _Journal]:
        """``opened`` with the changes its journal holds made (a version 4 file), and that
        journal, for the writer to follow once ``opened`` is current."""
        journal = self._journal.read(opened.key, opened.header)
        # What is served from now on is on disk, even the entry of a write killed before its
        # fsync, and the file of a rename whose folder was not fsynced yet.
        durable.sync_files(self.path, self.journal)
        made = _edited(opened, journal.changes)[0] if journal.changes else _made_of(opened)
        return _Open(opened.key, opened.header, *made), journal

    def _current_spec(self) -> tuple[KeySpec, bytes | None]:
        """The key spec in force, with the file's bytes when the store is locked."""
        with self._lock:
            self._check_not_closed()
            if self._open is not None:
                return self._open.header.spec, None
            raw = self._read_existing()
        return _parse(raw, self.path)[0].spec, raw

    def _passphrase_key(self, secret: SecretStr, spec: KeySpec) -> StoreKey:
        """Run Argon2id for ``spec`` (slow: never with self._lock held) and check the result."""
        if spec.kdf is None:
            raise StoreUnavailableError(
                f"store file {self.path} is opened by a key file, not by a passphrase: set"
                " HELPERD_KEY_FILE to that key file"
            )
        key = passphrase_key(secret, spec.salt, spec.kdf)
        if not key.matches(spec.check):
            key.wipe()
            raise BadPassphraseError(f"wrong passphrase for the store at {self.path}")
        return key

    def _read_existing(self) -> bytes:
        raw = durable.read_private(self.path)
        if raw is None:
            raise self._missing()
        return raw


def _passphrase(passphrase: SecretStr | None, action: str) -> SecretStr:
    if passphrase is None:
        raise BadRequestError(f"a passphrase is needed to {action} the file store")
    return passphrase


def _new_passphrase(passphrase: SecretStr | None) -> SecretStr:
    secret = _passphrase(passphrase, "protect")
    if not secret.get_secret_value():
        raise BadRequestError("the new passphrase must not be empty")
    return secret
