"""Which store the daemon opens, and why: the answer ``status`` reports as ``store_reason``.

``--store auto`` (the default) keeps the store a user already has: an existing keyring index
means the keyring store, an existing encrypted file means the file store (``helperctl migrate``
moves between them). Otherwise a configured key file means the file store (a headless server
was provisioned for it); otherwise the keyring store when a real OS keyring answers a probe
within the bound, else the encrypted file store. A locked keyring still answers the probe:
the keyring store is chosen and reports ``locked`` until the collection is unlocked.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from helperd_client.errors import StoreUnavailableError
from keyring.backend import KeyringBackend

from helperd.core.config import Settings
from helperd.core.ladder import STARTUP_PROBE_TIMEOUT
from helperd.core.store import ForeignKeyring, Store
from helperd.stores.durable import check_private_dir
from helperd.stores.file_store import FileStore
from helperd.stores.keyring_store import ForeignEntries, KeyringStore
from helperd.stores.migration import MigrationMarker
from helperd.stores.os_keyring import BoundedKeyring, pick_backend, probe

__all__ = ["Choice", "Migrations", "build_store"]


@dataclass(frozen=True)
class Choice:
    """The opened store, why it was chosen, and where generic entries not held are read."""

    store: Store
    reason: str
    foreign: ForeignKeyring | None


def build_store(settings: Settings) -> Choice:  # noqa: PLR0911 - one return per rule
    """Open the store that ``settings`` ask for.

    Raises:
        StoreUnavailableError: the store cannot be opened, or ``--store keyring`` was asked
            for and no usable OS keyring exists (the message says why and what to do).
    """
    check_private_dir(settings.data_dir)
    unfinished = Migrations(settings).marker.target()
    if settings.store == "file":
        return _file(settings, "asked for with --store file (or HELPERD_STORE, config.toml)")
    if settings.store == "keyring":
        keyring, verdict = _os_keyring(settings)
        if keyring is None:
            raise StoreUnavailableError(
                f"no usable OS keyring ({verdict}): start one, or use --store file or auto"
            )
        return _keyring(settings, keyring, f"asked for with --store keyring; {verdict}")
    if unfinished == "keyring" and settings.store_file.exists():
        return _file(settings, "a migration did not finish: rerun `helperctl migrate --to keyring`")
    if settings.index_file.exists():
        keyring, verdict = _os_keyring(settings)
        if unfinished == "file" and keyring is not None:
            return _keyring(
                settings, keyring, "a migration did not finish: rerun it with --to file"
            )
        if keyring is not None:
            return _keyring(settings, keyring, f"a keyring index exists; {verdict}")
        raise StoreUnavailableError(
            f"{settings.index_file} says the secrets are in the OS keyring, but {verdict};"
            " start the keyring, or run `helperctl migrate --to file` once it answers"
        )
    if settings.store_file.exists():
        return _file(settings, f"an encrypted store exists at {settings.store_file}")
    if settings.key_file is not None:
        return _file(settings, "a key file is configured (headless server)")
    keyring, verdict = _os_keyring(settings)
    if keyring is not None:
        return _keyring(settings, keyring, verdict)
    return _file(settings, f"no usable OS keyring: {verdict}")


class Migrations:
    """Opens the store a migration moves to, and keeps its marker (see helperd.stores.migration)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.marker = MigrationMarker(settings.data_dir / "migrating-to")

    def open(self, kind: str) -> Choice:
        """Open the ``kind`` store as the target of a migration.

        Raises:
            StoreUnavailableError: no usable OS keyring, or the store cannot be opened.
        """
        why = f"moved here with `helperctl migrate --to {kind}`"
        if kind == "file":
            return _file(self._settings, why)
        keyring, verdict = _os_keyring(self._settings)
        if keyring is None:
            raise StoreUnavailableError(f"no usable OS keyring to migrate to: {verdict}")
        return _keyring(self._settings, keyring, f"{why}; {verdict}")


def _file(settings: Settings, why: str) -> Choice:
    store = FileStore(settings.store_file, key_file=settings.key_file)
    key = f"key file {settings.key_file}" if settings.key_file else "a passphrase"
    foreign = None
    if settings.key_file is None:  # a desktop without a usable keyring may still have one later
        keyring, _ = _os_keyring(settings)
        foreign = ForeignEntries(keyring) if keyring is not None else None
    return Choice(store, f"encrypted file protected by {key}: {why}", foreign)


def _keyring(settings: Settings, keyring: BoundedKeyring, why: str) -> Choice:
    store = KeyringStore(settings.index_file, keyring)
    return Choice(store, f"OS keyring ({keyring.describe()}): {why}", store)


def _os_keyring(settings: Settings) -> tuple[BoundedKeyring | None, str]:
    """A bounded handle on the best OS keyring backend, or None and why not.

    A backend counts when it passes `probe` (a harmless read within the bound; a locked
    collection answers too). Even choosing a backend talks to D-Bus, so that is bounded as
    well. At start no client waits, and a Secret Service may still be starting (D-Bus
    activation): the probe gets the longer of `STARTUP_PROBE_TIMEOUT` and ``keyring_timeout``;
    requests later get ``keyring_timeout``, a rung of the timeout ladder (helperd.core.ladder).
    """
    timeout = max(settings.keyring_timeout, STARTUP_PROBE_TIMEOUT)
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="helperd-probe")
    try:
        backend: KeyringBackend | None = pool.submit(pick_backend).result(timeout)
    except concurrent.futures.TimeoutError:
        return None, f"choosing a keyring backend took longer than {timeout:g} s"
    finally:
        pool.shutdown(wait=False)
    if backend is None:
        return (
            None,
            "keyring found no OS backend (no Secret Service, Keychain or Credential Locker)",
        )
    keyring = BoundedKeyring(backend, timeout=timeout)
    try:
        usable, verdict = probe(keyring)
    finally:
        keyring.timeout = settings.keyring_timeout
    if not usable:
        keyring.close()
        return None, verdict
    return keyring, verdict
