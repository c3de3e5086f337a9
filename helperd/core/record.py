"""What helperd stores: one `Record` per (name, username), without its secret.

The secret travels separately as a `pydantic.SecretStr`, so that lookups, listings and logs
handle records freely and only the code that must read a password ever holds one.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from helperd_client.names import NAME_REGEX, TOKEN_USERNAME
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from helperd.core.provider_record import ProviderFacts

__all__ = ["CERT_USERNAME", "NAME_PATTERN", "TOKEN_USERNAME", "Kind", "Record", "RecordKey"]

NAME_PATTERN = re.compile(NAME_REGEX)
"""A repository name as Poetry knows it (`helperd_client.names.NAME_REGEX`)."""

CERT_USERNAME = "__cert__"
"""Username of a certificate record: one name may hold a password, a token and a certificate."""

RecordKey = tuple[str, str]
"""(name, username): what identifies a record."""


class Kind(StrEnum):
    """What a record is for."""

    BASIC = "basic"
    TOKEN = "token"  # noqa: S105 - a kind name, not a secret
    GENERIC = "generic"
    CERT = "cert"
    """A client certificate and its private key (PEM); never served by ``get``."""


class Record(BaseModel):
    """A stored credential's public facts: everything but the password.

    ``name`` is a repository name for `Kind.BASIC` and `Kind.TOKEN`, and the raw keyring
    service for `Kind.GENERIC`. A `Kind.CERT` record's secret is the PEM of a client
    certificate and its unencrypted private key; the daemon writes it to a private file
    (helperd.core.certs) and never hands it out over the wire.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    username: str
    kind: Kind
    urls: tuple[str, ...] = ()
    expires_at: AwareDatetime | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    provider: ProviderFacts | None = None
    """Set for a token minted by a provider (see `helperd.core.provider_record`)."""

    @model_serializer(mode="wrap")
    def _without_no_provider(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # A record without a provider is stored as before: no "provider": null in the files.
        data: dict[str, object] = handler(self)
        if self.provider is None:
            data.pop("provider", None)
        return data

    @field_validator("name")
    @classmethod
    def _name_not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("name must not be empty")
        return value

    @property
    def key(self) -> RecordKey:
        """The (name, username) pair that identifies this record."""
        return (self.name, self.username)

    def expired(self, now: datetime) -> bool:
        """Whether the record must no longer be served at ``now``."""
        return self.expires_at is not None and self.expires_at <= now
