"""The timeout ladder: each bound sits strictly inside the one above it, with margin.

    OS keyring call (0.5 s) < the daemon's answer to a read (1.5 s)
        < the client's timeout (2.0 s) < the keyring plugin's rest after a timeout (30 s)

So a hung OS keyring is reported by the daemon as such (``store_unavailable`` or ``locked``,
naming the OS keyring) before any client gives up on the daemon and calls it unreachable.
docs/stores.md shows the same ladder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from helperd_client.transport import DEFAULT_TIMEOUT, MAX_TIMEOUT

__all__ = [
    "ANSWER_TIMEOUT",
    "CLIENT_TIMEOUT",
    "KEYRING_CALL_TIMEOUT",
    "STARTUP_PROBE_TIMEOUT",
    "timeout_warning",
]

KEYRING_CALL_TIMEOUT = 0.5
"""Default bound of one OS keyring call (config.toml ``keyring_timeout``)."""

ANSWER_TIMEOUT = 1.5
"""Longest the daemon takes to answer a read (``get``, ``list``, ``status``), whatever waits."""

CLIENT_TIMEOUT = DEFAULT_TIMEOUT
"""The client's default timeout (``HELPERD_TIMEOUT``), 2.0 s."""

STARTUP_PROBE_TIMEOUT = 2.0
"""Not a rung: the bound of the OS keyring probe at start, when no client waits for it."""


def timeout_warning(env: Mapping[str, str]) -> str | None:
    """What is wrong with ``HELPERD_TIMEOUT`` in ``env`` as a rung of the ladder, or None.

    A timeout below the daemon's answer bound is allowed (not clamped), but then a hung OS
    keyring shows as "helperd did not answer" rather than by name: helperctl and doctor say so.
    """
    raw = env.get("HELPERD_TIMEOUT")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0:  # not a number, nan, zero or less: the clients ignore it
        return (
            f"HELPERD_TIMEOUT={raw!r} is not a positive number of seconds: clients use the"
            f" default of {CLIENT_TIMEOUT:g} s"
        )
    if value > MAX_TIMEOUT:
        return (
            f"HELPERD_TIMEOUT={raw} is more than {MAX_TIMEOUT:g} s: clients use {MAX_TIMEOUT:g} s"
        )
    if value < ANSWER_TIMEOUT:
        return (
            f"HELPERD_TIMEOUT={raw} is below the daemon's answer bound of {ANSWER_TIMEOUT:g} s:"
            " a slow or hung OS keyring will show as 'helperd did not answer'"
            f" (the default is {CLIENT_TIMEOUT:g} s)"
        )
    return None
