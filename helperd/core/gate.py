"""The daemon-wide gate on passphrase guesses (SPEC.md, "Security invariants").

After the n-th wrong passphrase in a row, no passphrase is checked for min(2^(n-1), 30)
seconds. While one check runs, or before the gate opens, every other check is refused at once
(`BadPassphraseError`, ``too many wrong passphrases: try again in N s``) without running the
KDF, and the refusal leaves n alone. So parallel connections gain nothing: the KDF runs at most
once per interval, whatever the number of clients. A right passphrase resets n.

n and the opening time are kept by a `GateFile` (the daemon's, `helperd.stores.guess_gate`, is a
small 0600 file beside the store, written atomically and durably), so that restarting the
daemon does not reset the count. The opening time is a
wall-clock time (a monotonic clock does not survive a restart); a clock set back cannot keep
the gate closed longer than the interval n allows.

Time is a parameter (``now``) everywhere, as in `helperd.core.service`, so the rule is tested
without waiting.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime
from typing import Protocol

from helperd_client.errors import BadPassphraseError

__all__ = ["MAX_INTERVAL", "GateFile", "GuessGate", "interval"]

log = logging.getLogger(__name__)

MAX_INTERVAL = 30.0
"""Longest time, in seconds, the gate stays closed after a wrong passphrase."""


class GateFile(Protocol):
    """Where the gate's state outlives the process."""

    def load(self) -> tuple[int, float] | None:
        """The kept (n, opening time in epoch seconds), or None when there is none to use."""
        ...  # pragma: no cover - protocol

    def save(self, failures: int, opens_at: float) -> None:
        """Keep (n, opening time); never raises (a failed write is logged)."""
        ...  # pragma: no cover - protocol


def interval(failures: int) -> float:
    """Seconds the gate stays closed after the n-th wrong passphrase in a row: min(2^(n-1), 30)."""
    if failures <= 0:
        return 0.0
    return min(2.0 ** min(failures - 1, 16), MAX_INTERVAL)


class GuessGate:
    """Admits one passphrase check at a time, and none while closed.

    Use: `admit` before the KDF; then exactly one of `wrong` (the passphrase was wrong),
    `right` (it opened the store) or `release` (the check ended otherwise, e.g. a damaged
    file). Thread-safe: the service calls it from worker threads. The state file is written
    with no lock held, so `retry_in` never waits on the disk; no other check is admitted
    until it is written.

    Args:
        file: where the state is kept (None: in memory only, for unit tests).
    """

    def __init__(self, file: GateFile | None = None) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._failures = 0
        self._opens_at = 0.0  # seconds since the epoch
        self._running = False
        kept = None if file is None else file.load()
        if kept is not None:
            self._failures, self._opens_at = max(0, kept[0]), kept[1]
        if self._failures:
            wait = self._retry_in(datetime.now(UTC))
            n = self._failures
            log.info("%d wrong passphrase(s) in a row; the gate opens in %g s", n, wait)

    @property
    def failures(self) -> int:
        """Wrong passphrases in a row (n)."""
        with self._lock:
            return self._failures

    def retry_in(self, now: datetime) -> float:
        """Seconds until the gate opens (0.0 when it is open), rounded to milliseconds."""
        with self._lock:
            return self._retry_in(now)

    def admit(self, now: datetime) -> None:
        """Let one passphrase check through, or refuse it at once.

        Raises:
            BadPassphraseError: a check is running or the gate is closed; n is unchanged.
        """
        with self._lock:
            wait = self._retry_in(now)
            if self._running or wait > 0:
                seconds = max(1, math.ceil(wait))
                raise BadPassphraseError(f"too many wrong passphrases: try again in {seconds} s")
            self._running = True

    def wrong(self, now: datetime) -> float:
        """Record a wrong passphrase: n rises and the gate closes; returns the interval."""
        with self._lock:
            self._failures += 1
            closed_for = interval(self._failures)
            self._opens_at = now.timestamp() + closed_for
            state = self._failures, self._opens_at
        self._save(*state)
        self.release()
        return closed_for

    def right(self) -> None:
        """Record a passphrase that opened the store: n goes back to 0."""
        with self._lock:
            changed = bool(self._failures or self._opens_at)
            self._failures, self._opens_at = 0, 0.0
        if changed:
            self._save(0, 0.0)
        self.release()

    def release(self) -> None:
        """End a check that told nothing about the passphrase (n unchanged)."""
        with self._lock:
            self._running = False

    def _retry_in(self, now: datetime) -> float:
        # Never longer than the interval n allows, even when the clock was set back.
        wait = min(self._opens_at - now.timestamp(), interval(self._failures))
        return round(wait, 3) if wait > 0 else 0.0

    def _save(self, failures: int, opens_at: float) -> None:
        # Lock not held: the check stays "running" until the state is kept.
        if self.file is not None:
            self.file.save(failures, opens_at)
