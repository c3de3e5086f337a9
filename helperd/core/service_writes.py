"""The service's writes: ``set`` (a provider's token too) and ``delete``.

`WriteOps` is a part of `helperd.core.service.Service`, kept in a module of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from helperd_client.errors import BadRequestError, NotFoundError

from helperd.core.certs import check_cert_record
from helperd.core.lookup import Catalog, check_url, write_target
from helperd.core.protocol import DeleteRequest, DeleteResult, RecordInfo, SetRequest, SetResult
from helperd.core.provider import ProviderSpec
from helperd.core.provider_output import Minted
from helperd.core.provider_record import ProviderFacts
from helperd.core.record import (
    CERT_USERNAME,
    NAME_PATTERN,
    TOKEN_USERNAME,
    Kind,
    Record,
    RecordKey,
)
from helperd.core.store import ForeignKeyring, Store

__all__ = ["WriteOps"]


class WriteOps:
    """``set``, a provider's ``set`` and token, and ``delete`` of `helperd.core.service.Service`."""

    store: Store
    _foreign: ForeignKeyring | None
    _mutex: threading.Lock
    _writes: threading.Lock
    _last_use: datetime | None

    if TYPE_CHECKING:

        def tick(self, now: datetime) -> bool: ...

        def _prime_catalog(self) -> None: ...

        def _current_catalog(self) -> Catalog: ...

    def _set(
        self, request: SetRequest, now: datetime, provider: ProviderFacts | None = None
    ) -> SetResult:
        if request.provider is not None and provider is None:
            raise BadRequestError("a provider record is set through the daemon")
        if request.password is None:
            raise BadRequestError("set needs a password (or a provider)")
        catalog = self._current_catalog()
        name, username, kind = self._set_target(request, catalog.records)
        if request.url is not None and request.urls is not None:
            raise BadRequestError("give either url or urls, not both")
        asked = [request.url] if request.url is not None else request.urls
        if asked and kind is Kind.GENERIC:
            raise BadRequestError("a generic keyring entry has no URLs")
        urls = None if asked is None else tuple(check_url(u) for u in asked)
        if request.expires_at is not None and request.expires_at <= now:
            raise BadRequestError("expires_at is in the past")
        # From the catalog, not a map of every record: a write creates few objects (GC pauses).
        same_name = [*catalog.named(name), *catalog.generic(name)]
        existing = next((r for r in same_name if r.key == (name, username)), None)
        if existing is None and username == CERT_USERNAME:
            # Lookups skip certificates, so the catalog never holds one: ask the store.
            existing = next((r for r in self.store.records() if r.key == (name, username)), None)
        if Kind.CERT in (kind, existing.kind if existing is not None else None):
            check_cert_record(kind, existing, urls, request.password)
        if urls is None:
            urls = existing.urls if existing is not None else ()
        record = Record(
            name=name,
            username=username,
            kind=kind,
            urls=urls,
            expires_at=request.expires_at,
            created_at=existing.created_at if existing is not None else now,
            updated_at=now,
            provider=provider,
        )
        self.store.put(record, request.password)
        return SetResult(record=RecordInfo.of(record, now), replaced=existing is not None)

    def set_provided(self, request: SetRequest, facts: ProviderFacts, now: datetime) -> SetResult:
        """Store a provider record: ``request`` carries the token the daemon just minted.

        Like `handle` for a ``set`` (in a worker thread), with the provider's facts stored
        beside the record.
        """
        try:
            self.tick(now)
            with self._mutex:
                self._last_use = now
            with self._writes:
                return self._set(request, now, facts)
        finally:
            self._prime_catalog()

    def store_minted(self, key: RecordKey, spec: ProviderSpec, minted: Minted) -> bool:
        """Store a token the daemon's refresher minted for the provider record ``key``.

        Returns False, storing nothing, when the record is gone or its provider changed since.
        Runs in a worker thread: the store may write to disk or the OS keyring.
        """
        try:
            with self._writes:
                record = next((r for r in self.store.records() if r.key == key), None)
                if record is None or record.provider is None or record.provider.spec != spec:
                    return False
                facts = ProviderFacts.of(spec, minted)
                self.store.put(record.model_copy(update={"provider": facts}), minted.token)
                return True
        finally:
            self._prime_catalog()

    @staticmethod
    def _set_target(request: SetRequest, records: Sequence[Record]) -> tuple[str, str, Kind]:
        """The (name, username, kind) a set writes, from a name or a keyring service."""
        if (request.name is None) == (request.service is None):
            raise BadRequestError("give exactly one of name or service")
        if request.service is not None:
            username = request.username or ""
            name, kind = write_target(records, request.service, username)
            existing = next((r for r in records if r.key == (name, username)), None)
            if existing is not None and Kind.GENERIC not in (kind, existing.kind):
                kind = existing.kind  # a token stays a token whatever its username
            return name, username, kind
        assert request.name is not None
        kind = request.kind or Kind.BASIC
        if kind is not Kind.GENERIC and not NAME_PATTERN.fullmatch(request.name):
            raise BadRequestError(
                "a repository name may hold only letters, digits, '.', '_' and '-'"
            )
        default = {Kind.TOKEN: TOKEN_USERNAME, Kind.CERT: CERT_USERNAME}.get(kind, "")
        if kind is Kind.CERT and request.username not in (None, CERT_USERNAME):
            raise BadRequestError(f"a certificate record's username is {CERT_USERNAME}")
        return request.name, default if request.username is None else request.username, kind

    def _delete(self, request: DeleteRequest) -> DeleteResult:
        if (request.name is None) == (request.service is None):
            raise BadRequestError("give exactly one of name or service")
        records = self.store.records()
        username = request.username
        if request.service is not None:
            name, kind = write_target(records, request.service, username or "")
        else:
            assert request.name is not None
            name, kind = request.name, None
        keys = [
            r.key
            for r in records
            if r.name == name
            and (
                username in (None, r.username)
                or (
                    username == TOKEN_USERNAME and r.kind is Kind.TOKEN and kind is not Kind.GENERIC
                )
            )
        ]
        if not keys:
            if self._foreign_delete(request, kind, username):
                return DeleteResult(deleted=1)
            who = "" if username is None else f" with username {username!r}"
            raise NotFoundError(f"no record named {name!r}{who}")
        self.store.remove(keys)
        return DeleteResult(deleted=len(keys))

    def _foreign_delete(
        self, request: DeleteRequest, kind: Kind | None, username: str | None
    ) -> bool:
        """Delete a generic entry helperd does not hold from the OS keyring, if one is usable."""
        if request.service is None or kind is not Kind.GENERIC or username is None:
            return False
        return self._foreign is not None and self._foreign.foreign_delete(request.service, username)
