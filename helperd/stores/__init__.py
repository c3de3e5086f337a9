"""Where secrets live: the OS keyring or an encrypted file."""

from __future__ import annotations

from helperd.core.store import Store, StoreState

__all__ = ["Store", "StoreState"]
