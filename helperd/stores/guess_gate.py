"""The passphrase gate's state on disk: a small 0600 file beside the store.

The rule itself is `helperd.core.gate.GuessGate`; this file is what lets it survive a restart.
Written atomically and durably; a damaged file is ignored (anyone able to write it can also
delete it, so failing closed would protect nothing).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from helperd_client.errors import HelperdError

from helperd.stores import durable

__all__ = ["GATE_FILE", "GateFile"]

log = logging.getLogger(__name__)

GATE_FILE = "passphrase-gate.json"
"""The gate's state, in the data folder beside the store."""


class GateFile:
    """`helperd.core.gate.GateFile` kept in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, failures: int, opens_at: float) -> None:
        """Write the state; a failed write is logged (the gate still holds in memory)."""
        data = {"failures": failures, "opens_at": opens_at}
        try:
            durable.write_atomic(self.path, json.dumps(data, sort_keys=True).encode("ascii"))
        except HelperdError as exc:
            log.warning("could not keep the passphrase gate: %s", exc.message)

    def load(self) -> tuple[int, float] | None:
        """The kept state, or None when there is none or it is unreadable or damaged."""
        try:
            raw = durable.read_private(self.path)
        except HelperdError as exc:
            log.warning("ignoring the passphrase gate: %s", exc.message)
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            failures, opens_at = data["failures"], data["opens_at"]
            if not isinstance(failures, int) or not isinstance(opens_at, int | float):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring the passphrase gate %s: it is damaged", self.path)
            return None
        return failures, float(opens_at)
