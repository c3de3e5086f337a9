"""The refresh rule of a provider record: serve, refresh, wait or refuse. Time is a parameter.

One `Refresh` per provider record holds what the rule needs (the token's expiry, not the
token), and answers the daemon's question "what now?" without any I/O:

- a token with more than its minimum life left is served (``SERVE``); shortly before that
  minimum, a get also starts one run in the background (``SERVE_AND_REFRESH_AHEAD``), at most
  once per token, so that no client waits on a cloud CLI;
- below the minimum a run is due: the get starts it, or joins the one running, and waits at
  most `RefreshPolicy.wait` (``WAIT_FOR_RUN``, single flight: one run per record at a time);
- after that wait the old token is served while it is still valid, else the get is refused
  with ``store_unavailable`` "provider for NAME still running" (``REFUSE_RUNNING``);
- a failed run keeps the last good token served until it truly expires, retries with
  backoff, and is reported by `Refresh.health`; with no valid token and the next try not yet
  due the get is refused (``REFUSE_EXPIRED``). An expired token is never served.

`Refresh.claim_ahead` is the background side: records read in the last 10 minutes are
refreshed ahead of the minimum once per token, without waiting for a get.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from helperd_client.errors import HelperdError, StoreUnavailableError

__all__ = ["PROVIDER_WAIT", "Action", "Decision", "Health", "Refresh", "RefreshPolicy"]

PROVIDER_WAIT = 1.0
"""Seconds a get waits on a provider run: inside the daemon's answer bound (the timeout ladder:
an OS keyring call or a provider wait < the daemon's answer < the client's 2.0 s)."""


class Action(StrEnum):
    """What the daemon does with a get of a provider record."""

    SERVE = "serve"
    """Answer with the cached token."""
    SERVE_AND_REFRESH_AHEAD = "serve_and_refresh_ahead"
    """Answer with the cached token and start a run in the background."""
    WAIT_FOR_RUN = "wait_for_run"
    """Wait for the run (started by this get if `Decision.start_run`) up to `Decision.wait`."""
    REFUSE_RUNNING = "refuse_running"
    """Refuse: a run is going on and no valid token is left (`Decision.error`)."""
    REFUSE_EXPIRED = "refuse_expired"
    """Refuse: no valid token, the last run failed, the next try not due (`Decision.error`)."""


@dataclass(frozen=True)
class Decision:
    """The answer to "what now?".

    Attributes:
        action: what to do.
        start_run: the caller must start a run now (the state already counts it as running).
        wait: seconds to wait for the run, for ``WAIT_FOR_RUN``.
        error: the error to answer with, for the two refusals.
    """

    action: Action
    start_run: bool = False
    wait: float = 0.0
    error: HelperdError | None = None


@dataclass(frozen=True)
class RefreshPolicy:
    """The rule's bounds; the defaults are what users get.

    Attributes:
        wait: seconds a get waits on a run (`PROVIDER_WAIT`).
        read_recently: a record read this recently is refreshed ahead in the background.
        ahead_lead: how long before the minimum life a run ahead starts, capped at a quarter
            of the token's life.
        backoff_first: wait before the first retry after a failed run; doubles per failure.
        backoff_max: longest wait between retries.
    """

    wait: float = PROVIDER_WAIT
    read_recently: timedelta = timedelta(minutes=10)
    ahead_lead: timedelta = timedelta(minutes=2)
    backoff_first: timedelta = timedelta(seconds=5)
    backoff_max: timedelta = timedelta(seconds=60)

    def backoff(self, failures: int) -> timedelta:
        """Wait before the next try after ``failures`` failed runs in a row (n >= 1)."""
        doubled: timedelta = self.backoff_first * 2 ** min(failures - 1, 30)
        return min(doubled, self.backoff_max)


@dataclass(frozen=True)
class Health:
    """A provider record's state, for ``status``, ``list`` and ``doctor``. No secret in it.

    Attributes:
        expires_at: when the cached token expires, or None when there is none.
        running: whether a run is going on.
        failures: failed runs in a row (0 after a success).
        last_error: the last failure's scrubbed message, or None.
        retry_at: when a failed run is tried again, or None.
        expired: whether no valid token is left at the time asked.
    """

    expires_at: datetime | None
    running: bool
    failures: int
    last_error: str | None
    retry_at: datetime | None
    expired: bool


class Refresh:
    """The refresh state of one provider record (its name, the token's times, the runs).

    Not thread-safe: the daemon's event loop owns it. Every method takes ``now`` (aware).
    """

    def __init__(self, name: str, min_lifetime: timedelta, policy: RefreshPolicy | None = None):
        """Start with no token known.

        Args:
            name: the record's name, for messages.
            min_lifetime: the spec's minimum life (capped at half each token's life here).
            policy: the bounds; None is the defaults.
        """
        self.name = name
        self.policy = policy or RefreshPolicy()
        self._min_lifetime = min_lifetime
        self._expires_at: datetime | None = None
        self._minted_at: datetime | None = None
        # Where the window of a run ahead opens (see serve_until): fixed per token, so kept.
        self._ahead_from: datetime | None = None
        self._generation = 0  # one per token; refresh-ahead is tried at most once per value
        self._ahead_tried = -1
        self._running = False
        self._last_read: datetime | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._retry_at: datetime | None = None

    @property
    def running(self) -> bool:
        """Whether a run is going on (claimed by a decision and not yet reported back)."""
        return self._running

    def seed(self, expires_at: datetime, minted_at: datetime) -> None:
        """Know a token minted before: the stored one at start-up, or the one ``set`` minted."""
        self._expires_at, self._minted_at = expires_at, minted_at
        self._generation += 1
        self._ahead_from = expires_at - self._min_left() - self._lead()

    def decide(self, now: datetime, *, waited: bool = False) -> Decision:  # noqa: PLR0911 - one per case
        """What a get does at ``now``. Counts as a read; a decision to run claims the run.

        Args:
            now: the time of the get.
            waited: the get has already waited its `RefreshPolicy.wait` on a run: it is
                answered now, with the old token while valid, never told to wait again.
        """
        self._last_read = now
        valid = self._valid(now)
        due = not valid or self._left(now) <= self._min_left()
        backing_off = self._retry_at is not None and now < self._retry_at
        if not due:
            if self._ahead_now(now) and not waited:
                return self._claim(Action.SERVE_AND_REFRESH_AHEAD, ahead=True)
            return Decision(Action.SERVE)
        if valid and (waited or backing_off or (self._failures and not self._running)):
            # Below the minimum but still valid: better an old token than none. After a
            # failure the retry runs in the background; the client does not wait on it.
            if self._failures and not self._running and not backing_off:
                return self._claim(Action.SERVE_AND_REFRESH_AHEAD, ahead=False)
            return Decision(Action.SERVE)
        if self._running:
            if waited:
                return self._refuse(
                    Action.REFUSE_RUNNING, f"provider for {self.name} still running"
                )
            return Decision(Action.WAIT_FOR_RUN, wait=self.policy.wait)
        if backing_off or waited:
            return self._refuse_expired(now)
        return self._claim(Action.WAIT_FOR_RUN, ahead=False)

    def serve_until(self) -> datetime | None:
        """Before this instant `decide` answers ``SERVE`` (no run, no failure pending, the
        token well above its minimum and the lead of a run ahead); None when there is no such
        span. A get before it may skip `decide` and call `read` instead: the hot path.
        It is never after the token's expiry (the minimum and the lead are never negative).
        """
        if self._running or self._failures:
            return None
        return self._ahead_from

    def read(self, now: datetime) -> None:
        """Count a get at ``now`` that was served without `decide` (see `serve_until`)."""
        self._last_read = now

    def claim_ahead(self, now: datetime) -> bool:
        """Whether to start a background run now, without a get; True claims the run.

        Only for a record read in the last `RefreshPolicy.read_recently`, whose token is
        within `RefreshPolicy.ahead_lead` of its minimum life, once per token.
        """
        if self._ahead_now(now):
            self._claim(Action.SERVE_AND_REFRESH_AHEAD, ahead=True)
            return True
        return False

    def next_ahead_at(self) -> datetime | None:
        """When `claim_ahead` may next say yes, or None when it will not for this token."""
        if self._ahead_tried == self._generation:
            return None
        return self._ahead_from

    def succeeded(self, expires_at: datetime, minted_at: datetime) -> None:
        """A run printed a token: it is the one served from now on; failures are forgotten."""
        self._running = False
        self._failures, self._last_error, self._retry_at = 0, None, None
        self.seed(expires_at, minted_at)

    def failed(self, now: datetime, message: str) -> None:
        """A run failed with ``message`` (already scrubbed): keep the old token, back off."""
        self._running = False
        self._failures += 1
        self._last_error = message
        self._retry_at = now + self.policy.backoff(self._failures)

    def health(self, now: datetime) -> Health:
        """The state to report at ``now``."""
        return Health(
            expires_at=self._expires_at,
            running=self._running,
            failures=self._failures,
            last_error=self._last_error,
            retry_at=self._retry_at,
            expired=not self._valid(now),
        )

    def _valid(self, now: datetime) -> bool:
        return self._expires_at is not None and now < self._expires_at

    def _left(self, now: datetime) -> timedelta:
        assert self._expires_at is not None
        return self._expires_at - now

    def _lifetime(self) -> timedelta:
        if self._expires_at is None or self._minted_at is None:
            return timedelta(0)
        return max(self._expires_at - self._minted_at, timedelta(0))

    def _min_left(self) -> timedelta:
        return min(self._min_lifetime, self._lifetime() / 2)

    def _lead(self) -> timedelta:
        return min(self.policy.ahead_lead, self._lifetime() / 4)

    def _ahead_now(self, now: datetime) -> bool:
        recent = self._last_read is not None and now - self._last_read <= self.policy.read_recently
        backing_off = self._retry_at is not None and now < self._retry_at
        return (
            recent
            and not self._running
            and not backing_off
            and self._valid(now)
            and self._ahead_tried != self._generation
            and self._left(now) <= self._min_left() + self._lead()
        )

    def _claim(self, action: Action, *, ahead: bool) -> Decision:
        self._running = True
        if ahead:
            self._ahead_tried = self._generation
        wait = self.policy.wait if action is Action.WAIT_FOR_RUN else 0.0
        return Decision(action, start_run=True, wait=wait)

    def _refuse(self, action: Action, message: str) -> Decision:
        return Decision(action, error=StoreUnavailableError(message))

    def _refuse_running(self) -> Decision:
        return self._refuse(Action.REFUSE_RUNNING, f"provider for {self.name} still running")

    def _refuse_expired(self, now: datetime) -> Decision:
        if self._last_error is None:
            return self._refuse_running()
        retry = ""
        if self._retry_at is not None and now < self._retry_at:
            seconds = max(1, round((self._retry_at - now).total_seconds()))
            retry = f"; next try in {seconds} s"
        expired = ""
        if self._expires_at is not None:
            expired = f"; its token expired at {_iso(self._expires_at)}"
        message = f"provider for {self.name} failed: {self._last_error}{expired}{retry}"
        return self._refuse(Action.REFUSE_EXPIRED, message)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
