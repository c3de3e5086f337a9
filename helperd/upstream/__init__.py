"""The upstream secret engine (OpenBao, Vault): the daemon's client for it (docs/fleet.md).

Runs in the daemon, in worker threads: `Engine.fetch` does blocking HTTP through hvac, and
`refresh` folds its outcome into core's `UpstreamCache`. The pure rules (parsing a secret,
staleness, the merge with local records) are in `helperd.core.upstream_record` and
`helperd.core.upstream_cache`.
"""

from __future__ import annotations

from helperd.upstream.engine import DEFAULT_TIMEOUT, Engine, Fetched, refresh

__all__ = ["DEFAULT_TIMEOUT", "Engine", "Fetched", "refresh"]
