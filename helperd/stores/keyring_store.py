"""The keyring store: secrets in the OS keyring, only their public facts in an index file.

Where things live:

- a repository record (kind ``basic`` or ``token``) keeps its password under service
  ``helperd:<name>`` and the record's username, a namespace of helperd's own;
- a generic record (kind ``generic``, ``name`` = a raw keyring service) keeps it under its own
  service and username, exactly where ``keyring`` itself would have put it;
- every record's non-secret fields are in the index, a JSON file (0600, written atomically and
  durably) that never holds a password.

Crash safety comes from ordering alone. `put` writes the secret first, then the index; `remove`
writes the index first, then deletes the secret. A ``kill -9`` between the two steps leaves at
worst a secret that no index entry names: harmless, invisible to helperd, and overwritten by the
next `put` of the same record. It never leaves an index entry whose secret is missing, so the
store needs no repair pass when it opens.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Literal

from helperd_client.errors import (
    BadRequestError,
    HelperdError,
    LockedError,
    NotFoundError,
    StoreUnavailableError,
)
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from helperd.core.record import Kind, Record
from helperd.core.store import RecordMap, Store, StoreState
from helperd.stores.durable import (
    FileLock,
    check_private_dir,
    fsync_dir,
    read_private,
    remove_stale_temps,
    write_atomic,
)
from helperd.stores.os_keyring import BoundedKeyring
from helperd.stores.secret_service import LOCKED_MESSAGE

__all__ = ["SERVICE_PREFIX", "ForeignEntries", "KeyringStore", "location"]

SERVICE_PREFIX = "helperd:"
"""Keyring services that start with this belong to helperd's repository records."""

_Records = RecordMap[Record]


def _itself(record: Record) -> Record:
    return record


class _Index(BaseModel):
    """The index file: every record, no password."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["helperd-keyring-index"] = "helperd-keyring-index"
    version: Literal[1] = 1
    records: list[Record]


def location(record: Record) -> tuple[str, str]:
    """The (service, username) of the OS keyring entry that holds ``record``'s password."""
    if record.kind is Kind.GENERIC:
        return record.name, record.username
    return SERVICE_PREFIX + record.name, record.username


class KeyringStore(Store):
    """Records in an index file, their passwords in the OS keyring.

    Args:
        index_path: the index file; its folder must be private (it is created 0700 when
            missing), and ``<index name>.lock`` beside it keeps a second daemon out.
        keyring: the bounded OS keyring that holds the passwords.

    Raises:
        StoreUnavailableError: the folder is unsafe, another daemon holds the lock, or the
            index cannot be read.
    """

    kind = "keyring"

    def __init__(self, index_path: Path, keyring: BoundedKeyring) -> None:
        check_private_dir(index_path.parent)
        self._index_path = index_path
        self._keyring = keyring
        self._foreign = ForeignEntries(keyring)
        self._file_lock = FileLock(index_path.with_name(index_path.name + ".lock"))
        remove_stale_temps(index_path)
        # _write_lock makes each put or remove one step, keyring call included, so two
        # writers cannot interleave their halves. Readers take no lock: _records is an
        # immutable snapshot that a writer replaces in one assignment once the index is durable.
        self._write_lock = threading.Lock()
        try:
            self._records = self._load()
        except BaseException:
            self._file_lock.release()
            raise

    @property
    def keyring(self) -> BoundedKeyring:
        """The OS keyring this store keeps passwords in."""
        return self._keyring

    @property
    def state(self) -> StoreState:
        """LOCKED while the OS keyring's collection is locked, else UNLOCKED.

        A keyring that does not answer counts as UNLOCKED here: the index is local, and the
        calls that need the keyring report it as unavailable themselves.
        """
        try:
            locked = self._keyring.is_locked()
        except HelperdError:
            return StoreState.UNLOCKED
        return StoreState.LOCKED if locked else StoreState.UNLOCKED

    def records(self) -> tuple[Record, ...]:
        """Every record, sorted by (name, username), from the index alone (no keyring call)."""
        return self._records.sorted_records(_itself)

    def password(self, record: Record) -> SecretStr:
        """Read ``record``'s password from the OS keyring (bounded).

        Raises:
            NotFoundError: the record is not held, or its secret is missing from the OS keyring.
            LockedError: the OS keyring's collection is locked.
            StoreUnavailableError: the OS keyring did not answer in time or failed.
        """
        held = self._records.get(record.key)
        if held is None:
            raise NotFoundError(f"no record {record.name} with username {record.username}")
        service, username = location(held)
        secret = self._keyring.get_password(service, username)
        if secret is None:
            raise NotFoundError(
                f"no record of {held.name} ({held.username}) can be served: its secret is"
                f" missing from the OS keyring ({self._keyring.name}, service {service});"
                " set it again with helperctl set"
            )
        return secret

    def foreign_password(self, service: str, username: str | None) -> tuple[str, SecretStr] | None:
        """See `ForeignEntries.foreign_password`."""
        return self._foreign.foreign_password(service, username)

    def foreign_delete(self, service: str, username: str) -> bool:
        """See `ForeignEntries.foreign_delete`."""
        return self._foreign.foreign_delete(service, username)

    def put(self, record: Record, password: SecretStr) -> None:
        """Add or replace ``record``: the secret first, then the index (see the module doc).

        Raises:
            BadRequestError: a generic record named like one of helperd's own services.
            LockedError, StoreUnavailableError: the keyring or the index could not be written;
                the index is then unchanged.
        """
        if record.kind is Kind.GENERIC and record.name.startswith(SERVICE_PREFIX):
            raise BadRequestError(
                f"keyring services that start with {SERVICE_PREFIX!r} are reserved for helperd"
            )
        with self._write_lock:
            old = self._records.get(record.key)
            records = _Records(self._records)
            service, username = location(record)
            self._keyring.set_password(service, username, password)
            records[record.key] = record
            self._save(records)
            self._records = records
            if old is not None and location(old) != (service, username):
                # The record changed kind (generic <-> repository): its old entry is an orphan
                # now. Failing to delete it loses nothing, so the put still succeeds.
                with contextlib.suppress(HelperdError):
                    self._keyring.delete_password(*location(old))

    def remove(self, keys: list[tuple[str, str]]) -> None:
        """Delete these records: the index first, then their secrets (see the module doc).

        Raises:
            LockedError: the OS keyring's collection is locked; nothing was removed.
            StoreUnavailableError: the index could not be written (nothing was removed), or
                a secret could not be deleted after the index was (the message names it).
        """
        with self._write_lock:
            current = self._records
            gone = [current[key] for key in keys if key in current]
            records = _Records((k, r) for k, r in current.items() if k not in set(keys))
            if not gone:
                return
            if self._keyring.is_locked():
                # Deleting a secret needs an unlocked collection: refuse before the index
                # changes rather than leave secrets behind that the user asked to delete.
                raise LockedError(LOCKED_MESSAGE)
            self._save(records)
            self._records = records
            left: list[str] = []
            for record in gone:
                service, username = location(record)
                try:
                    self._keyring.delete_password(service, username)
                except HelperdError as exc:
                    left.append(f"service {service}, username {username} ({exc.message})")
            if left:
                raise StoreUnavailableError(
                    "removed from helperd, but the OS keyring still holds the secret of "
                    + "; ".join(left)
                    + ": delete it with your keyring's tool (for example secret-tool clear)"
                )

    def unlock(self, passphrase: SecretStr | None) -> None:
        """Ask the OS keyring to unlock its collection (the passphrase is not used; bounded).

        Raises:
            LockedError: the unlock prompt was dismissed, could not be shown, or timed out.
            StoreUnavailableError: the OS keyring did not answer.
        """
        self._keyring.unlock()

    def lock(self) -> None:
        """Refuse: helperd does not lock the OS keyring for the whole desktop session.

        Raises:
            BadRequestError: always, saying how to lock the OS keyring instead.
        """
        raise BadRequestError(
            "the keyring store has no lock of its own: helperd keeps no secret in memory, and"
            " locking the OS keyring would lock it for every program in your session; lock the"
            " collection from your desktop (Seahorse) or with: secret-tool lock --collection=login"
        )

    def discard(self) -> None:
        """Delete the index (after a migration), then helperd's secrets in the OS keyring.

        The index goes first: without it the store is gone, and a secret left behind by an
        interruption is an orphan, never an index entry pointing at nothing.
        """
        with self._write_lock:
            try:
                self._index_path.unlink(missing_ok=True)
                fsync_dir(self._index_path.parent)
            except OSError as exc:
                raise StoreUnavailableError(
                    f"could not delete {self._index_path}: {exc.strerror or exc}"
                ) from None
            gone, self._records = list(self._records.values()), _Records()
            for record in gone:
                with contextlib.suppress(HelperdError):
                    self._keyring.delete_password(*location(record))
        self.close()

    def close(self) -> None:
        """Release the index lock, and the OS keyring's connection."""
        self._file_lock.release()
        self._keyring.close()

    def _load(self) -> _Records:
        data = read_private(self._index_path)
        if data is None:
            return _Records()
        try:
            index = _Index.model_validate(json.loads(data))
        except (ValueError, ValidationError):
            # The validation text would quote the file: name the file only.
            raise StoreUnavailableError(
                f"{self._index_path} is not a helperd keyring index (damaged, or from a newer"
                " helperd); move it away to start with an empty store"
            ) from None
        return _Records((record.key, record) for record in index.records)

    def _save(self, records: _Records) -> None:
        """Write the index durably; sort ``records`` here, in the writer, not in a reader."""
        index = _Index(records=list(records.sorted_records(_itself)))
        write_atomic(self._index_path, index.model_dump_json(indent=1).encode("utf-8") + b"\n")


class ForeignEntries:
    """OS keyring entries that helperd does not hold, read and deleted in bounded calls.

    SPEC.md's generic fallback: entries other programs stored before helperd's plugin became
    the active keyring backend keep working. Used by the keyring store, and by the file store
    when an OS keyring is usable.
    """

    def __init__(self, keyring: BoundedKeyring) -> None:
        self._keyring = keyring

    @property
    def keyring(self) -> BoundedKeyring:
        """The OS keyring these entries live in."""
        return self._keyring

    def foreign_password(self, service: str, username: str | None) -> tuple[str, SecretStr] | None:
        """Read an OS keyring entry helperd does not hold: the generic fallback (bounded).

        With ``username`` None, the first entry of ``service`` answers, with its username.
        helperd's own ``helperd:`` services are never read this way: their records are
        served (and expired) through the index.

        Raises:
            LockedError, StoreUnavailableError: as for `password`.
        """
        if service.startswith(SERVICE_PREFIX):
            return None
        if username is None:
            return self._keyring.get_credential(service, None)
        secret = self._keyring.get_password(service, username)
        return None if secret is None else (username, secret)

    def foreign_delete(self, service: str, username: str) -> bool:
        """Delete an OS keyring entry helperd does not hold (bounded); False when absent.

        So that ``keyring del`` through helperd's plugin still deletes what other programs
        stored before helperd. Entries in helperd's own ``helperd:`` services are left alone:
        `remove` deletes those.

        Raises:
            LockedError, StoreUnavailableError: as for `password`.
        """
        if service.startswith(SERVICE_PREFIX):
            return False
        return self._keyring.delete_password(service, username)
