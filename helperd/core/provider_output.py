"""Reading what a provider command printed, and saying what went wrong without the token.

`parse_output` turns stdout into a `Minted` token and its expiry; `scrub` takes anything that
looks like a token out of a text (the command's stderr, before it reaches an error message).
Every `ProviderError` message is built from field names, counts and scrubbed stderr only:
never from stdout, which holds the token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from helperd_client.errors import StoreUnavailableError
from pydantic import SecretStr

from helperd.core.provider import Format, ProviderSpec

__all__ = ["MAX_TOKEN", "Minted", "ProviderError", "parse_output", "printed_secrets", "scrub"]

MAX_TOKEN = 16_384
"""Longest token accepted, in characters (CodeArtifact's are about 1,100; JWTs a few thousand)."""

_REDACTED = "[redacted]"
# Long runs of token-like characters (base64, base64url, JWT parts, hex): a credential in
# stderr looks like this, and a real message rarely does.
_TOKENISH = re.compile(r"[A-Za-z0-9+/=_.~-]{24,}")
_STDERR_SHOWN = 1000  # characters of scrubbed stderr kept for a message
# Between the pieces of stdout that could be a token: spaces, quotes and JSON's punctuation.
_BETWEEN = re.compile(r"[\s\"'{}\[\],]+")
_SHORTEST_PIECE = 8  # a shorter piece of stdout is a word, a number or a field name
_SHORTEST_VALUE = 4  # a JSON string value is taken out from this length up


class ProviderError(StoreUnavailableError):
    """A provider run failed: it could not start, timed out, failed, or printed no token.

    The message never holds the token; stderr in it has been through `scrub`.
    """


@dataclass(frozen=True)
class Minted:
    """A token a provider minted, and when it stops working.

    Attributes:
        token: the token (`SecretStr`: never in a repr or a log).
        expires_at: when the token stops working (UTC).
        minted_at: when the run that printed it ended (UTC).
    """

    token: SecretStr = field(repr=False)
    expires_at: datetime
    minted_at: datetime

    @property
    def lifetime(self) -> timedelta:
        """How long the token lives, from minting to expiry."""
        return self.expires_at - self.minted_at


def parse_output(
    spec: ProviderSpec, stdout: bytes, now: datetime, local: tzinfo | None = None
) -> Minted:
    """Read the token and its expiry from what the command printed.

    Args:
        spec: how to read it.
        stdout: the command's whole standard output.
        now: when the run ended (aware); a text token lives ``spec.lifetime`` from then.
        local: the zone of an expiry printed without an offset (old ``az`` prints local
            time); None is this machine's zone.

    Raises:
        ProviderError: the output holds no token, or no valid expiry, or one in the past.
    """
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ProviderError("the provider's output is not UTF-8") from None
    if spec.format is Format.TEXT:
        token = _check_token(text.strip(), "the provider's output")
        expires = now + timedelta(seconds=spec.lifetime)
    else:
        try:
            data = json.loads(text)
            readable = True
        except ValueError:
            readable = False
        if not readable:
            # Out of the except clause, so it keeps no context: json's error holds the output.
            raise ProviderError("the provider's output is not JSON")
        assert spec.token_field is not None  # the spec's own rule
        raw = _field(data, spec.token_field)
        if not isinstance(raw, str):
            raise ProviderError(f"the provider's output has no text field {spec.token_field!r}")
        token = _check_token(raw.strip(), f"field {spec.token_field!r}")
        if spec.expiry_field is None:
            expires = now + timedelta(seconds=spec.lifetime)
        else:
            expires = _expiry(_field(data, spec.expiry_field), spec.expiry_field, local)
    if expires <= now:
        raise ProviderError(f"the provider printed a token that expired at {_iso(expires)}")
    return Minted(SecretStr(token), expires.astimezone(UTC), now.astimezone(UTC))


def printed_secrets(stdout: bytes) -> list[str]:
    """What in a provider's stdout could be its token, longest first, for `scrub` to take out
    of its stderr: every JSON string value when stdout is JSON (as decoded, escapes and all),
    and every piece of at least 8 characters between spaces, quotes and JSON's punctuation
    (so ``{"token":"tok:Zq$9!"}`` gives ``tok:Zq$9!`` whatever the format)."""
    text = stdout.decode("utf-8", "replace")
    found = {piece for piece in _BETWEEN.split(text) if len(piece) >= _SHORTEST_PIECE}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None  # not JSON: the pieces above are all there is
    stack = [data]
    while stack:  # not recursive: the nesting is the command's to choose
        item = stack.pop()
        if isinstance(item, str) and len(item) >= _SHORTEST_VALUE:
            found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret in ``secrets`` and anything token-like replaced, and shortened.

    Used on a provider's stderr before it goes into an error message: a CLI that echoes its
    token, a signed URL or a credential in a traceback leaves no secret behind.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    text = _TOKENISH.sub(_REDACTED, text)
    text = " ".join(text.split())  # one line: stderr can hold any control character
    text = "".join(c if c.isprintable() else "?" for c in text)
    if len(text) > _STDERR_SHOWN:
        text = text[:_STDERR_SHOWN] + " [...]"
    return text


def _check_token(token: str, where: str) -> str:
    if not token:
        raise ProviderError(f"{where} holds no token")
    if len(token) > MAX_TOKEN:
        raise ProviderError(f"{where} is longer than {MAX_TOKEN} characters: not a token")
    # A token goes into an HTTP header: one line of printable ASCII, no spaces.
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ProviderError(f"{where} is not a token (one word of printable ASCII)")
    return token


def _field(data: object, path: str) -> object:
    """The value at the first of the ``|``-separated dotted paths present, or None."""
    for alternative in path.split("|"):
        value = data
        for key in alternative.split("."):
            if not isinstance(value, dict) or key not in value:
                value = None
                break
            value = value[key]
        if value is not None:
            return value
    return None


def _expiry(value: object, name: str, local: tzinfo | None) -> datetime:
    if isinstance(value, bool) or value is None:
        raise ProviderError(f"the provider's output has no expiry field {name!r}")
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        value = float(value)
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ProviderError(f"field {name!r} is not a time (epoch seconds)") from None
    if not isinstance(value, str):
        raise ProviderError(f"field {name!r} is not a time (ISO-8601 or epoch seconds)")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ProviderError(f"field {name!r} is not a time (ISO-8601 or epoch seconds)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=local) if local is not None else when.astimezone()
    return when


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
