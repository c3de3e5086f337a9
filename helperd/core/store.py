"""The Store interface every backend implements.

A store keeps `Record`s and their passwords. It is synchronous and may block (disk, fsync,
KDF, D-Bus): the server calls it from worker threads, and a store is responsible for its own
thread safety. Stores raise only `helperd_client.errors.HelperdError` subclasses, mapping OS
and library errors where the I/O happens, with messages that never contain a secret.
`ForeignKeyring` is what the service needs of the OS keyring for entries helperd does not hold.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from helperd_client.errors import BadRequestError
from pydantic import SecretStr

from helperd.core.record import Record, RecordKey

if TYPE_CHECKING:
    from helperd.core.catalog import Delta

__all__ = ["ForeignKeyring", "RecordMap", "Store", "StoreState"]

_Entry = TypeVar("_Entry")


class StoreState(StrEnum):
    """Whether a store can serve records now."""

    MISSING = "missing"
    """No store exists yet: ``helperctl init`` creates one."""
    LOCKED = "locked"
    """The store exists but its key is not in memory."""
    UNLOCKED = "unlocked"


class Store(abc.ABC):
    """A place that keeps records and their passwords."""

    kind: str
    """``"file"`` or ``"keyring"``: what ``status`` reports as the active store."""

    @property
    @abc.abstractmethod
    def state(self) -> StoreState:
        """Whether the store is missing, locked or unlocked."""

    @property
    def lockable(self) -> bool:
        """Whether ``lock``/``unlock`` and idle auto-lock apply (a passphrase protects it)."""
        return False

    @property
    def reads_block(self) -> bool:
        """Whether `records` and `password` may block (disk, D-Bus); False when in memory."""
        return True

    @property
    def needs_passphrase(self) -> bool:
        """Whether `create` and `unlock` take a passphrase."""
        return False

    @abc.abstractmethod
    def records(self) -> Sequence[Record]:
        """Every record, sorted by (name, username), without passwords.

        Stores return the same sequence object until their records change (see `RecordMap`),
        so that callers may keep what they derive from it (the service's lookup catalog)
        for as long as ``records() is`` the sequence they derived it from.

        Raises:
            LockedError: the store is locked or missing.
            StoreUnavailableError: the store cannot be read.
        """

    def records_delta(self, since: Sequence[Record], until: Sequence[Record]) -> Delta | None:
        """The records removed from ``since`` and those added to it to make ``until``, when
        the store knows them without comparing every record; None otherwise.

        Both are sequences `records` handed out; a store that returns a delta promises
        that a record object found in both versions has the same password in both (a change
        makes a new record object), so that what was derived from it still holds.
        """
        return None

    @abc.abstractmethod
    def password(self, record: Record) -> SecretStr:
        """The password of ``record``.

        Raises:
            NotFoundError: the record is gone.
            LockedError, StoreUnavailableError: as for `records`.
        """

    @abc.abstractmethod
    def put(self, record: Record, password: SecretStr) -> None:
        """Add ``record``, or replace the record with the same key; durable on return."""

    @abc.abstractmethod
    def remove(self, keys: list[tuple[str, str]]) -> None:
        """Delete the records with these keys (absent keys are ignored); durable on return."""

    def create(self, passphrase: SecretStr | None) -> None:
        """Create a new, empty store and leave it unlocked.

        Raises:
            BadRequestError: a store exists already, or this store is not created by hand.
        """
        raise BadRequestError(f"the {self.kind} store is not created with init")

    def unlock(self, passphrase: SecretStr | None) -> None:
        """Load the key into memory.

        Raises:
            BadPassphraseError: the passphrase does not open the store.
            LockedError: no store exists yet (unlock never creates one).
        """
        return

    def lock(self) -> None:
        """Drop the key and every decrypted secret from memory."""
        return

    def change_passphrase(self, old: SecretStr, new: SecretStr) -> None:
        """Re-encrypt the store under ``new``, atomically."""
        raise BadRequestError(f"the {self.kind} store has no passphrase to change")

    def discard(self) -> None:
        """Delete the store itself, after `helperctl migrate` moved its records elsewhere.

        The store is closed afterwards. What makes the store exist on disk (the file, the
        index) goes first, so that an interruption never leaves a half-deleted store that
        looks whole.
        """
        raise BadRequestError(f"the {self.kind} store cannot be discarded")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and locks; the store is not used afterwards."""


class RecordMap(dict[RecordKey, _Entry]):
    """A store's entries by (name, username), caching its records sorted by key.

    Stores never change a RecordMap that is in use: each change builds a new one and swaps it
    in. So `sorted_records` is computed once per version of the store and stays the same
    object until the next change, as `Store.records` promises; and the cache lives and dies
    with its map (locking a store drops both).
    """

    __slots__ = ("_sorted",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sorted: tuple[Record, ...] | None = None

    def sorted_records(self, record: Callable[[_Entry], Record]) -> tuple[Record, ...]:
        """The record of each entry (``record`` picks it), sorted by key; cached."""
        if self._sorted is None:
            # map, not a generator: the loop runs in C (a write to a big store sorts here).
            self._sorted = tuple(map(record, map(self.__getitem__, sorted(self))))
        return self._sorted

    @property
    def sorted_cache(self) -> tuple[Record, ...] | None:
        """What `sorted_records` holds, or None before its first call."""
        return self._sorted

    def adopt_sorted(self, records: tuple[Record, ...]) -> None:
        """Take ``records`` as `sorted_records`: the caller built it from the previous version
        by the one record that changed, rather than from every key again."""
        self._sorted = records


class ForeignKeyring(Protocol):
    """Reads OS keyring entries that helperd does not hold (SPEC.md's generic fallback)."""

    def foreign_password(
        self, service: str, username: str | None
    ) -> tuple[str, SecretStr] | None:  # pragma: no cover - protocol
        """The (username, password) stored under ``service``, or None; bounded in time."""
        ...

    def foreign_delete(self, service: str, username: str) -> bool:  # pragma: no cover
        """Delete the entry (``service``, ``username``); False when it was absent."""
        ...
