"""The timeout ladder: each bound sits strictly inside the one above it, with margin.

    OS keyring call (0.5 s) < the daemon's answer to a read (1.5 s)
        < the client's timeout (2.0 s) < the keyring plugin's rest after a timeout (30 s)

So a hung OS keyring is reported by the daemon as such (``store_unavailable`` or ``locked``,
naming the OS keyring) before any client gives up on the daemon and calls it unreachable.
docs/stores.md shows the same ladder.
"""

from __future__ import annotations

from helperd_client.client import DEFAULT_TIMEOUT

__all__ = ["ANSWER_TIMEOUT", "CLIENT_TIMEOUT", "KEYRING_CALL_TIMEOUT"]

KEYRING_CALL_TIMEOUT = 0.5
"""Default bound of one OS keyring call (config.toml ``keyring_timeout``)."""

ANSWER_TIMEOUT = 1.5
"""Longest the daemon takes to answer a read (``get``, ``list``, ``status``), whatever waits."""

CLIENT_TIMEOUT = DEFAULT_TIMEOUT
"""The client's default timeout (``HELPERD_TIMEOUT``), 2.0 s."""
