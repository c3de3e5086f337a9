"""What a provider record keeps beside its token, and the rules of setting one.

A provider record is a `token` record whose password is minted by a command (see
`helperd.core.provider`). Its non-secret facts, stored with the record, are the spec and the
times of the token last minted (`ProviderFacts`); the token itself is stored like any secret.
Nothing here runs a provider: the daemon does (`helperd.integrations.providers`).
"""

from __future__ import annotations

from datetime import datetime

from helperd_client.errors import BadRequestError, StoreUnavailableError
from pydantic import AwareDatetime, BaseModel, ConfigDict, SecretStr

from helperd.core.provider import ProviderSpec
from helperd.core.provider_output import Minted

__all__ = ["ProviderFacts", "check_provider_set", "no_valid_token"]


class ProviderFacts(BaseModel):
    """A provider record's spec and the times of its current token. Holds no secret.

    Attributes:
        spec: how the token is minted.
        minted_at: when the run that printed the current token ended.
        expires_at: when the current token stops working.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: ProviderSpec
    minted_at: AwareDatetime
    expires_at: AwareDatetime

    @classmethod
    def of(cls, spec: ProviderSpec, minted: Minted) -> ProviderFacts:
        """The facts of ``minted``, a token that ``spec`` printed."""
        return cls(spec=spec, minted_at=minted.minted_at, expires_at=minted.expires_at)

    def minted(self, token: SecretStr) -> Minted:
        """The stored ``token`` with these times, to seed the daemon's refresher."""
        return Minted(token=token, expires_at=self.expires_at, minted_at=self.minted_at)

    def valid(self, now: datetime) -> bool:
        """Whether the stored token may still be handed out at ``now``."""
        return now < self.expires_at


def check_provider_set(
    spec: ProviderSpec, *, kind: str | None, username: str | None, expires_at: datetime | None
) -> ProviderSpec:
    """The spec a ``set`` with a provider stores, its username the record's.

    Args:
        spec: the spec sent.
        kind: the kind asked for (None or ``token``).
        username: the username asked for; None takes the spec's (the preset's default).
        expires_at: the record's expiry asked for; a provider record has none.

    Raises:
        BadRequestError: the kind is not ``token``, or an expiry is given.
    """
    if kind not in (None, "token"):
        raise BadRequestError("a provider record is a token record")
    if expires_at is not None:
        raise BadRequestError("a provider record has no expires_at: its tokens expire")
    if username is not None and username != spec.username:
        return spec.replace(username=username)
    return spec


def no_valid_token(name: str) -> StoreUnavailableError:
    """The error for a provider record whose stored token has expired, no run having helped."""
    return StoreUnavailableError(f"provider for {name} has no valid token")
