"""An error raised while reading something that holds secrets keeps nothing of it.

`raise X from None` only hides the error being handled: it stays on ``X.__context__``, and
json's error holds the whole document it failed on (``doc``), pydantic's quotes the input. A
tool that walks an exception's chain (an error reporter, a debugger, a log formatter of its
own) would find the secret there. So these errors are raised out of their except clause, with
no context at all; each case here feeds a secret (``LEAKME``) in input that fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from helperd_client.wire import decode_line

from helperd.core.protocol import parse_request
from helperd.core.provider import Format, ProviderSpec
from helperd.core.provider_output import parse_output
from helperd.core.upstream_cache import UpstreamCache

SECRET = "LEAKME"

JSON_SPEC = ProviderSpec(argv=("mint",), format=Format.JSON, token_field="token", username="u")

CASES: dict[str, Callable[[], object]] = {
    # An answer carrying a password, cut short on the wire.
    "wire line": lambda: decode_line(b'{"ok":true,"result":{"password":"' + SECRET.encode()),
    # A set request with its password, and a field of the wrong type.
    "request": lambda: parse_request(
        json.dumps(
            {"v": 1, "id": 1, "op": "set", "name": 5, "password": SECRET, "username": "u"}
        ).encode()
    ),
    # A provider printing its token, but not as the JSON it promised.
    "provider output": lambda: parse_output(
        JSON_SPEC, b'{"token": "' + SECRET.encode(), datetime.now(UTC)
    ),
    # The upstream cache saved in the store, its secret's record not valid.
    "upstream cache": lambda: UpstreamCache.load(
        {
            "version": 1,
            "secrets": [{"record": {"name": SECRET, "kind": 5}, "password": SECRET}],
            "refreshed_at": None,
            "last": None,
        }
    ),
}


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and every error it carries as its cause or context."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


@pytest.mark.parametrize("reads", CASES.values(), ids=CASES.keys())
def test_the_error_carries_no_context_and_no_secret(reads: Callable[[], object]) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - each reader raises its own kind
        reads()

    error = caught.value
    assert error.__context__ is None
    assert error.__cause__ is None
    for link in chain(error):
        assert SECRET not in str(link)
        assert SECRET not in repr(link)
