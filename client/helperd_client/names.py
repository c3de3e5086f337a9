"""The names helperd and the tools it serves agree on, each defined here and nowhere else.

The daemon's lookup rules, helperctl, Poetry's import code, the keyring plugin and the keyring
shim all import these; a test (tests/unit/test_one_rule.py) fails when one of the literals
below appears as a string in any other module of helperd or helperd_client.

Stdlib only and import-free: the keyring shim loads it on every call.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PORTS",
    "EMPTY_USERNAME",
    "HANDED_OUT_PREFIXES",
    "LOCKED_HINT",
    "NAME_REGEX",
    "PDM_PREFIX",
    "POETRY_CHECK",
    "POETRY_PREFIX",
    "TOKEN_USERNAME",
    "TOOL_PREFIXES",
    "keyring_username",
]

TOKEN_USERNAME = "__token__"  # noqa: S105 - a username, not a secret
"""Username of a token record unless another is given (and what Poetry asks for tokens)."""

NAME_REGEX = r"[A-Za-z0-9._-]+"
"""A repository name as Poetry knows it (``re.fullmatch``; compiled where it is used)."""

DEFAULT_PORTS = {"http": 80, "https": 443}
"""The schemes a record's URL may have, and the port each means when a URL gives none."""

POETRY_PREFIX = "poetry-repository-"
"""Poetry's keyring service for repository NAME is ``poetry-repository-NAME``."""

PDM_PREFIX = "pdm-pypi-"
"""pdm's keyring service for its source NAME is ``pdm-pypi-NAME``."""

TOOL_PREFIXES = (POETRY_PREFIX, PDM_PREFIX)
"""The keyring services tools use for repository NAME."""

POETRY_CHECK = "python-poetry-check"
"""Poetry's availability probe: the plugin and the shim answer it "not found" at once."""

EMPTY_USERNAME = "__poetry_source_empty_username__"
"""Poetry's username for a source configured without one."""

LOCKED_HINT = (
    "helperd: the credential store is locked, so no password was handed out;"
    " `helperctl unlock` opens it"
)
"""What the plugin and the shim print on stderr when a locked store answers a read."""


def keyring_username(username: str | None) -> str | None:
    """The username to ask helperd for when a keyring caller asks for ``username``.

    Poetry's `EMPTY_USERNAME` means "none configured": only a record stored without a
    username answers it.
    """
    return "" if username == EMPTY_USERNAME else username


HANDED_OUT_PREFIXES = (
    "POETRY_HTTP_BASIC_",
    "POETRY_PYPI_TOKEN_",
    "UV_INDEX_",
    "UV_PUBLISH_",
    "TWINE_",
)
"""Prefixes of the variables ``helperctl exec`` puts secrets in (and tools read them from)."""
