"""What every protocol model shares: strict frozen pydantic models, secrets shown on the wire only.

`helperd.core.protocol` (requests) and `helperd.core.results` (results) both build on this.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr, SerializationInfo

__all__ = ["_REVEAL", "_Model", "_reveal"]

_REVEAL = "reveal_secrets"


def _reveal(value: SecretStr, info: SerializationInfo) -> str:
    """Show a secret only when the server renders a response line for the wire."""
    if isinstance(info.context, dict) and info.context.get(_REVEAL):
        return value.get_secret_value()
    return str(value)


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
