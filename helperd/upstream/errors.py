"""What can go wrong talking to the upstream secret engine, one typed error per thing a person
can fix. Each is a `StoreUnavailableError` (wire code ``store_unavailable``, exit 1) with a
``reason`` code for ``status --json``; messages name the engine's address, paths, files and
capabilities, never a token, a secret_id or a password.
"""

from __future__ import annotations

from typing import ClassVar

from helperd_client.errors import StoreUnavailableError

__all__ = [
    "AppRoleLoginError",
    "EngineDownError",
    "EngineTLSError",
    "KVVersionError",
    "PolicyDeniedError",
    "SecretFileError",
    "TokenNotRenewableError",
    "TokenRejectedError",
    "UpstreamError",
]


class UpstreamError(StoreUnavailableError):
    """Base of the upstream's errors.

    Attributes:
        reason: a short code for ``status --json``'s ``upstream.result``.
    """

    reason: ClassVar[str] = "error"


class EngineDownError(UpstreamError):
    """The engine refused the connection, did not answer in time, or is sealed."""

    reason = "engine_down"


class EngineTLSError(UpstreamError):
    """The engine's certificate could not be verified (or ``ca_file`` is unusable)."""

    reason = "tls"


class PolicyDeniedError(UpstreamError):
    """The engine's policy denies a capability helperd needs on a path.

    Attributes:
        path: the API path denied, as a policy names it (``secret/data/helperd/corp``).
        capability: the missing capability, ``read`` or ``list``.
    """

    reason = "denied"

    def __init__(self, message: str, *, path: str, capability: str) -> None:
        super().__init__(message)
        self.path = path
        self.capability = capability


class AppRoleLoginError(UpstreamError):
    """AppRole login was refused: the secret_id expired, was used up or is wrong, or the
    role_id is wrong (the engine does not say which)."""

    reason = "approle"


class TokenRejectedError(UpstreamError):
    """The engine refused the token of ``token_file``: expired, revoked or mistyped."""

    reason = "token"


class TokenNotRenewableError(UpstreamError):
    """The token of ``token_file`` needs renewing and the engine refused to renew it."""

    reason = "not_renewable"


class KVVersionError(UpstreamError):
    """The mount is not a KV version 2 engine (KV version 1, another engine, or none)."""

    reason = "kv_version"


class SecretFileError(UpstreamError):
    """A token, role_id or secret_id file is missing, unsafe or empty."""

    reason = "secret_file"
