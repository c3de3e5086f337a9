"""The refresh rule of provider records, with time as a parameter (and freezegun once, at the
wall-clock edge, to show the rule reads no clock of its own)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import freezegun
import pytest
from helperd_client.errors import StoreUnavailableError

from helperd.core.refresh import PROVIDER_WAIT, Action, Refresh, RefreshPolicy

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MIN10 = timedelta(seconds=600)


def s(seconds: float) -> timedelta:
    """Seconds as a timedelta."""
    return timedelta(seconds=seconds)


def fresh(lifetime: timedelta = HOUR, min_lifetime: timedelta = MIN10) -> Refresh:
    """A record holding a token minted at T0 that lives ``lifetime``."""
    state = Refresh("ca", min_lifetime)
    state.seed(T0 + lifetime, T0)
    return state


def test_defaults_users_get() -> None:
    """A get waits 1 s at most (inside the daemon's 1.5 s answer, inside the client's 2 s);
    records read in the last 10 min are refreshed ahead; retries back off from 5 s to 60 s."""
    policy = RefreshPolicy()
    assert 1.0 == PROVIDER_WAIT == policy.wait
    assert timedelta(minutes=10) == policy.read_recently
    expected = [s(5), s(10), s(20), s(40), s(60), s(60)]
    assert expected == [policy.backoff(n) for n in range(1, 7)]


def test_serves_while_more_than_min_life_left() -> None:
    """A token with more than its minimum life left is served, with no run."""
    state = fresh()
    decision = state.decide(T0 + s(1))
    assert (Action.SERVE, False) == (decision.action, decision.start_run)


def test_run_due_at_the_threshold() -> None:
    """At exactly the minimum life left, a get starts a run and waits at most the bound."""
    before = fresh().decide(T0 + HOUR - MIN10 - s(1))
    state = fresh()
    at = state.decide(T0 + HOUR - MIN10)
    assert Action.SERVE_AND_REFRESH_AHEAD == before.action  # served, not waited on
    assert (Action.WAIT_FOR_RUN, True, PROVIDER_WAIT) == (at.action, at.start_run, at.wait)
    assert state.running


def test_min_lifetime_capped_at_half() -> None:
    """A 60 s token with the default 600 s minimum is served for its first 30 s (refreshed
    ahead in its last 15 s before that), and a get waits on a run from then on."""
    assert Action.SERVE == fresh(lifetime=s(60)).decide(T0 + s(14)).action
    at_29 = fresh(lifetime=s(60)).decide(T0 + s(29))
    assert (Action.SERVE_AND_REFRESH_AHEAD, 0.0) == (at_29.action, at_29.wait)
    assert Action.WAIT_FOR_RUN == fresh(lifetime=s(60)).decide(T0 + s(30)).action


def test_single_flight() -> None:
    """While a run goes on, the next gets join it: none starts another."""
    state = fresh()
    first = state.decide(T0 + HOUR - s(1))
    others = [state.decide(T0 + HOUR - s(1)) for _ in range(49)]
    assert first.start_run
    assert [(Action.WAIT_FOR_RUN, False)] * 49 == [(d.action, d.start_run) for d in others]


def test_after_the_wait_the_old_token_while_valid() -> None:
    """A get that waited its bound gets the old token while it is valid, and is refused
    with "still running" once it has expired; it is never told to wait again."""
    state = fresh()
    state.decide(T0 + HOUR - s(5))
    assert Action.SERVE == state.decide(T0 + HOUR - s(4), waited=True).action
    refused = state.decide(T0 + HOUR, waited=True)
    assert Action.REFUSE_RUNNING == refused.action
    assert isinstance(refused.error, StoreUnavailableError)
    assert "provider for ca still running" == refused.error.message


def test_success_serves_the_new_token() -> None:
    """After a run succeeds, the new token is served without another run."""
    state = fresh()
    state.decide(T0 + HOUR - s(5))
    state.succeeded(T0 + 2 * HOUR, T0 + HOUR - s(4))
    assert Action.SERVE == state.decide(T0 + HOUR - s(3)).action
    assert not state.running


def test_failure_keeps_the_last_good_token_until_expiry() -> None:
    """A failed run keeps the old token served (without waiting) until it truly expires,
    then the get is refused with the failure, and the failure is in the health report."""
    state = fresh()
    state.decide(T0 + HOUR - s(100))
    state.failed(T0 + HOUR - s(99), "aws exited with status 255: Unable to locate credentials")
    assert Action.SERVE == state.decide(T0 + HOUR - s(98)).action
    retry = state.decide(T0 + HOUR - s(1))  # the backoff is over: served, retried behind
    assert (Action.SERVE_AND_REFRESH_AHEAD, True) == (retry.action, retry.start_run)
    health = state.health(T0 + HOUR - s(1))
    assert (1, False) == (health.failures, health.expired)
    assert "Unable to locate credentials" in (health.last_error or "")
    assert state.health(T0 + HOUR).expired


def test_expired_never_served() -> None:
    """At and after expiry no decision serves: with the last run failed and the retry not
    due, the get is refused with the failure and when the next try comes."""
    state = fresh(lifetime=s(60))
    state.decide(T0 + s(58))
    state.failed(T0 + s(59), "boom")
    refused = state.decide(T0 + s(60))
    assert Action.REFUSE_EXPIRED == refused.action
    assert refused.error is not None
    expected = "provider for ca failed: boom; its token expired at 2026-12-02T12:01:00Z"
    assert f"{expected}; next try in 4 s" == refused.error.message
    for t in (60, 61, 3600):
        for waited in (False, True):
            action = state.decide(T0 + s(t), waited=waited).action
            assert action not in (Action.SERVE, Action.SERVE_AND_REFRESH_AHEAD)
            state._running = False  # each decision stands alone here


def test_retries_with_backoff() -> None:
    """After a failure the next run starts only once the backoff is over: in the background
    while the old token is valid, by the get itself once it has expired."""
    state = fresh()
    state.decide(T0 + HOUR - s(100))
    state.failed(T0 + HOUR - s(100), "boom")
    assert not state.decide(T0 + HOUR - s(96)).start_run
    retry = state.decide(T0 + HOUR - s(95))
    assert (Action.SERVE_AND_REFRESH_AHEAD, True) == (retry.action, retry.start_run)
    state.failed(T0 + HOUR - s(5), "boom")  # the second failure: 10 s
    assert Action.REFUSE_EXPIRED == state.decide(T0 + HOUR + s(4)).action
    again = state.decide(T0 + HOUR + s(5))
    assert (Action.WAIT_FOR_RUN, True) == (again.action, again.start_run)


def test_refresh_ahead_once_per_token_for_recent_reads() -> None:
    """Near the minimum, a record read in the last 10 minutes is refreshed in the background,
    once per token; one not read lately is not."""
    state = fresh()
    lead = HOUR - MIN10 - timedelta(minutes=2)  # 2 min before the minimum
    assert state.next_ahead_at() == T0 + lead
    state.decide(T0 + lead - timedelta(minutes=10))  # a read, 10 min before
    assert not state.claim_ahead(T0 + lead - s(1))
    assert state.claim_ahead(T0 + lead)
    state.failed(T0 + lead, "boom")
    assert not state.claim_ahead(T0 + lead + s(6))  # at most once for this token
    state.succeeded(T0 + 2 * HOUR, T0 + HOUR - s(300))
    assert not state.claim_ahead(T0 + 2 * HOUR - MIN10)  # last read long ago


def test_get_in_the_ahead_window_serves_and_refreshes() -> None:
    """A get in the window before the minimum is served at once and starts one background
    run; the next get is served without starting another."""
    state = fresh()
    first = state.decide(T0 + HOUR - MIN10 - s(60))
    second = state.decide(T0 + HOUR - MIN10 - s(59))
    assert (Action.SERVE_AND_REFRESH_AHEAD, True) == (first.action, first.start_run)
    assert (Action.SERVE, False) == (second.action, second.start_run)


def test_no_token_yet_runs() -> None:
    """A record with no token known (a restart that lost it) starts a run on the first get."""
    state = Refresh("ca", MIN10)
    decision = state.decide(T0)
    assert (Action.WAIT_FOR_RUN, True) == (decision.action, decision.start_run)
    assert state.health(T0).expired


@pytest.mark.parametrize("frozen", ["2026-12-02 13:00:00", "1999-01-01 00:00:00"])
def test_rule_reads_no_clock(frozen: str) -> None:
    """With the wall clock frozen anywhere, the rule decides from the time it is given."""
    with freezegun.freeze_time(frozen):
        state = fresh()
        assert Action.SERVE == state.decide(T0 + s(1)).action


@pytest.mark.parametrize(
    ("lifetime", "min_lifetime"),
    [(HOUR, MIN10), (s(60), MIN10), (s(4), s(2)), (s(12 * 3600), MIN10)],
)
def test_serve_until_is_where_decide_still_serves(
    lifetime: timedelta, min_lifetime: timedelta
) -> None:
    """Before `serve_until`, decide answers SERVE (the hot path may skip it); from that
    instant on it no longer does for a record read lately; during a run or after a failure
    there is no such span."""
    until = fresh(lifetime, min_lifetime).serve_until()
    assert until is not None
    step = lifetime / 200
    times = [T0 + step * i for i in range(200)]
    served = [t < until for t in times]
    decided = []
    for t in times:
        state = fresh(lifetime, min_lifetime)
        state.read(t - s(1))  # read lately, as a hot record is
        decided.append(state.decide(t).action is Action.SERVE)
    assert served == decided
    running = fresh(lifetime, min_lifetime)
    running.decide(T0 + lifetime)  # claims a run
    failed = fresh(lifetime, min_lifetime)
    failed.decide(T0 + lifetime - s(0.5))
    failed.failed(T0 + lifetime - s(0.4), "denied")
    assert (None, None) == (running.serve_until(), failed.serve_until())
