"""Client certificates: the PEM bundle rule, and when the daemon writes or removes its files.

A `Kind.CERT` record's secret is one PEM text: the client certificate (and any chain after
it) followed by its private key, unencrypted (an encrypted key is decrypted once, by
`bundle`, before it is stored). Tools want a file path (``poetry config
certificates.NAME.client-cert``, ``pip --client-cert``, ``SSL_CLIENT_CERT``), so while the
store is unlocked the daemon keeps ``NAME.pem`` in a private folder on a tmpfs; `CertKeeper`
decides when (the service calls it after every change of records or lock state) and a
`CertFiles` from helperd.stores.cert_files does the writing.

Errors never quote the PEM text, nor cryptography's messages about it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from helperd_client.errors import BadRequestError, HelperdError, LockedError, NotFoundError
from pydantic import SecretStr

from helperd.core.protocol import CertPathResult
from helperd.core.record import Kind, Record
from helperd.core.store import Store, StoreState

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = ["CertFiles", "CertKeeper", "KeyPassphraseNeeded", "bundle", "check_cert_record"]

log = logging.getLogger(__name__)

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:RSA |EC |ENCRYPTED |DSA )?PRIVATE KEY)-----.*?-----END \1-----", re.S
)


class KeyPassphraseNeeded(BadRequestError):
    """The private key is encrypted and no passphrase was given."""


class CertFiles(Protocol):
    """Where certificate files live and how they are written (helperd.stores.cert_files)."""

    def path(self, name: str) -> Path:
        """The absolute path of ``name``'s file; the same across restarts."""
        ...  # pragma: no cover - protocol

    def problem(self) -> str | None:
        """Why no file can be written (no tmpfs, an unsafe folder), or None when one can."""
        ...  # pragma: no cover - protocol

    def exists(self, name: str) -> bool:
        """Whether ``name``'s file is there now."""
        ...  # pragma: no cover - protocol

    def write(self, name: str, pem: SecretStr) -> None:
        """Write ``name``'s file atomically, 0600."""
        ...  # pragma: no cover - protocol

    def remove(self, name: str) -> None:
        """Remove ``name``'s file, if it is there."""
        ...  # pragma: no cover - protocol

    def clear(self) -> None:
        """Remove every certificate file in the folder, stale ones of an earlier run included."""
        ...  # pragma: no cover - protocol


class CertKeeper:
    """Keeps the certificate files in step with the store: present while unlocked, else gone.

    Failures to write are logged (never with key material) and leave the request that caused
    the update answered: ``cert_path`` then reports the file missing.

    Args:
        files: the folder's I/O.
    """

    def __init__(self, files: CertFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._written: dict[str, datetime] = {}  # name -> updated_at of the record written

    def start(self, store: Store, now: datetime) -> None:
        """At daemon start: remove what an earlier run left, then write what the store holds."""
        self.clear()
        self.update(store, now)

    def clear(self) -> None:
        """Remove every file (on lock and at stop)."""
        with self._lock:
            self._clear()

    def update(
        self, store: Store, now: datetime, candidates: Iterable[Record] | None = None
    ) -> None:
        """Write the files of the store's live certificate records, remove the others.

        ``candidates``, when given, holds every certificate record of the store's current
        version (the lookup catalog's `specials`), so that a write to a big store does not
        look at every record. One lock covers reading the store's state and writing, so that
        a lock racing a write never leaves a file behind while the store is locked.
        """
        with self._lock:
            try:
                unlocked = store.state is StoreState.UNLOCKED
                certs = self.records(store, now, candidates) if unlocked else None
            except LockedError:
                certs = None
            except HelperdError as exc:
                # The store cannot be read (damaged, OS keyring away): no file, and the request
                # that caused this update is answered as it would have been; the daemon runs on.
                log.warning("cannot read the certificate records: %s", exc.message)
                certs = None
            if certs is None:
                self._clear()
                return
            try:
                for name in set(self._written) - set(certs):
                    self.files.remove(name)
                    del self._written[name]
                if certs and self.files.problem() is not None:
                    return
                for name, record in certs.items():
                    if self._written.get(name) != record.updated_at or not self.files.exists(name):
                        self.files.write(name, store.password(record))
                        self._written[name] = record.updated_at
            except OSError as exc:
                log.warning("cannot write certificate files: %s", exc.strerror)
            except HelperdError as exc:
                log.warning("cannot write certificate files: %s", exc.message)

    def _clear(self) -> None:
        self._written.clear()
        try:
            self.files.clear()
        except OSError as exc:
            log.warning("cannot remove certificate files: %s", exc.strerror)
        except HelperdError as exc:
            log.warning("cannot remove certificate files: %s", exc.message)

    def answer(self, store: Store, name: str, now: datetime) -> CertPathResult:
        """The ``cert_path`` answer for ``name``: locked first, then not found, then the path.

        Raises:
            LockedError: the store is locked.
            NotFoundError: ``name`` holds no live certificate record.
        """
        if store.state is not StoreState.UNLOCKED:
            raise LockedError("the store is locked: run `helperctl unlock`")
        if name not in self.records(store, now):
            raise NotFoundError(f"no record named {name!r} holds a client certificate")
        self.update(store, now)  # writes it again if someone removed it
        present = self.files.exists(name)
        return CertPathResult(
            name=name,
            path=str(self.files.path(name)),
            present=present,
            reason=None
            if present
            else self.files.problem() or "it could not be written: see the log",
        )

    @staticmethod
    def records(
        store: Store, now: datetime, candidates: Iterable[Record] | None = None
    ) -> dict[str, Record]:
        """The live certificate records of ``store`` (among ``candidates``), by name."""
        found = store.records() if candidates is None else candidates
        return {r.name: r for r in found if r.kind is Kind.CERT and not r.expired(now)}


def check_cert_record(
    kind: Kind, existing: Record | None, urls: tuple[str, ...] | None, pem: SecretStr
) -> None:
    """A certificate record is written only as one, with a valid bundle and no URLs.

    Raises:
        BadRequestError: a certificate replaced by another kind or the reverse, URLs, or a
            PEM text that `bundle` refuses.
    """
    if kind is not Kind.CERT or (existing is not None and existing.kind is not Kind.CERT):
        raise BadRequestError("a certificate record is replaced only by a certificate")
    if urls:
        raise BadRequestError("a certificate record has no URLs")
    bundle(pem.get_secret_value().encode("utf-8"))


def bundle(cert: bytes, key: bytes | None = None, passphrase: bytes | None = None) -> str:
    """Check a client certificate and its key, and join them into one PEM text.

    Args:
        cert: PEM text holding the certificate first (a chain may follow); it may hold the
            private key too.
        key: PEM text of the private key, when it is not in ``cert``.
        passphrase: decrypts an encrypted key.

    Returns:
        The certificates, then the key as unencrypted PKCS#8, all PEM.

    Raises:
        BadRequestError: no certificate, no key, a wrong or missing passphrase, or a key that
            does not belong to the certificate. The message never quotes the input.
    """
    from cryptography import x509  # noqa: PLC0415 - only set-cert and a cert set need it
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        certs = x509.load_pem_x509_certificates(cert)
    except ValueError:
        raise BadRequestError("the client certificate is not a PEM certificate") from None
    blocks = list(_KEY_BLOCK.finditer(cert if key is None else key))
    if len(blocks) != 1:
        found = "no" if not blocks else "more than one"
        if key is None:
            raise BadRequestError(
                f"the certificate file holds {found} PEM private key: give the key's file"
                " with --key"
            )
        raise BadRequestError(f"the key file holds {found} PEM private key")
    try:
        private = serialization.load_pem_private_key(blocks[0][0], passphrase)
    except TypeError:
        if passphrase is None:
            raise KeyPassphraseNeeded(
                "the private key is encrypted: give its passphrase with --key-passphrase-stdin"
            ) from None
        private = _unencrypted(blocks[0][0])
    except ValueError:
        # cryptography says the same for a wrong passphrase and for a damaged key.
        what = "a wrong passphrase" if passphrase is not None else "not a private key"
        raise BadRequestError(f"the private key cannot be read ({what})") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    mine = private.public_key().public_bytes(der, spki)
    if certs[0].public_key().public_bytes(der, spki) != mine:
        raise BadRequestError("the private key does not belong to the client certificate")
    pem = serialization.Encoding.PEM
    text = b"".join(c.public_bytes(pem) for c in certs) + private.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return text.decode("ascii")


def _unencrypted(block: bytes) -> PrivateKeyTypes:
    """A key that needs no passphrase although one was given (the passphrase is ignored)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        return serialization.load_pem_private_key(block, None)
    except (TypeError, ValueError):
        raise BadRequestError("the private key cannot be read") from None
