"""The service's passphrase family: ``migrate``, and the passphrase checks behind the gate.

`PassphraseOps` is a part of `helperd.core.service.Service`, kept in a module of its own;
`Opened` and `Migrations` say what a migration needs from the daemon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from helperd_client.errors import BadPassphraseError, BadRequestError
from pydantic import SecretStr

from helperd.core.gate import GuessGate
from helperd.core.migration import Marker, copy_verified
from helperd.core.protocol import Ack, MigrateRequest, MigrateResult
from helperd.core.store import ForeignKeyring, Store, StoreState

__all__ = ["Migrations", "Opened", "PassphraseOps"]

log = logging.getLogger(__name__)


class Opened(Protocol):
    """A store opened for a migration, with why and its generic fallback."""

    @property
    def store(self) -> Store: ...  # pragma: no cover - protocol
    @property
    def reason(self) -> str: ...  # pragma: no cover - protocol
    @property
    def foreign(self) -> ForeignKeyring | None: ...  # pragma: no cover - protocol


class Migrations(Protocol):
    """Opens the target store of a migration and keeps the marker of one under way."""

    @property
    def marker(self) -> Marker: ...  # pragma: no cover - protocol

    def open(self, kind: str) -> Opened:  # pragma: no cover - protocol
        """Open the ``kind`` store."""
        ...


class PassphraseOps:
    """``migrate`` and the passphrase checks of `helperd.core.service.Service`."""

    store: Store
    store_reason: str
    gate: GuessGate
    _foreign: ForeignKeyring | None
    _migrations: Migrations | None

    def _migrate(self, request: MigrateRequest, now: datetime) -> MigrateResult:
        """Move every record to the other store; see helperd.stores.migration for the safety."""
        if self._migrations is None:
            raise BadRequestError("this daemon cannot migrate its store")
        if request.to == self.store.kind:
            raise BadRequestError(f"the {request.to} store is already the active one")
        self.store.records()  # a locked source fails here, before anything is written
        target = self._migrations.open(request.to)  # no usable keyring: fails before the marker
        try:
            creating = target.store.state is StoreState.MISSING and target.store.needs_passphrase
            if creating:
                self._require_passphrase(request.passphrase)
            self._migrations.marker.begin(request.to)
            if creating:
                target.store.create(request.passphrase)
            elif target.store.state is StoreState.LOCKED:
                passphrase = request.passphrase
                self._guarded(lambda: target.store.unlock(passphrase), target.store, now)
            moved = copy_verified(self.store, target.store)
            self.store.discard()
        except BaseException:
            target.store.close()
            raise
        self.store, self.store_reason, self._foreign = target.store, target.reason, target.foreign
        self._migrations.marker.end()
        log.info("migrated %d record(s) to the %s store", moved, request.to)
        return MigrateResult(moved=moved, store=request.to, store_reason=target.reason)

    def _require_passphrase(self, passphrase: SecretStr | None) -> None:
        if self.store.needs_passphrase and not (passphrase and passphrase.get_secret_value()):
            raise BadRequestError("a passphrase is required and must not be empty")

    def _guarded(self, action: Callable[[], None], store: Store, now: datetime) -> None:
        """Run a passphrase check through the daemon-wide gate (see helperd.core.gate).

        The gate is asked before the KDF runs: a refusal costs nothing and leaves the count
        alone. A wrong passphrase is answered as soon as its check ends, and closes the gate.
        A store that takes no passphrase (a key file, the OS keyring) is not gated.
        """
        if not store.needs_passphrase:
            action()
            return
        self.gate.admit(now)
        started = time.monotonic()
        try:
            action()
        except BadPassphraseError:
            # The interval runs from the answer, that is from the end of the KDF.
            ended = now + timedelta(seconds=time.monotonic() - started)
            closed_for = self.gate.wrong(ended)
            log.warning("wrong passphrase: no passphrase is checked for %g s", closed_for)
            raise
        except BaseException:
            self.gate.release()
            raise
        self.gate.right()

    def _succeeded(self) -> Ack:
        return Ack(locked=self.store.state is not StoreState.UNLOCKED)
