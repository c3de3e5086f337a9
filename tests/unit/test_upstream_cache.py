"""The upstream cache's rules: fresh within ttl, due after it, served until max_stale, then
refused naming the engine; local records shadow upstream ones of the same name and username."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from helperd_client.errors import StoreUnavailableError
from pydantic import SecretStr

from helperd.core.config import UpstreamSettings
from helperd.core.lookup import Query, find
from helperd.core.record import Kind, Record
from helperd.core.upstream_cache import RETRY, Freshness, Staleness, UpstreamCache, merge
from helperd.core.upstream_record import UpstreamRecord, UpstreamSecret, source_of

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ADDRESS = "https://bao.example:8200"
# The defaults users get: 300 s and 24 h.
RULE = Staleness.of(UpstreamSettings(address=ADDRESS, token_file=None))


def _upstream(name: str, username: str = "ci", kind: Kind = Kind.BASIC) -> UpstreamSecret:
    record = UpstreamRecord(
        name=name,
        username=username,
        kind=kind,
        urls=(f"https://{name}.example/simple",),
        created_at=T0,
        updated_at=T0,
    )
    return UpstreamSecret(record, SecretStr(f"up-{name}-{username}"))


def _local(name: str, username: str = "ci", kind: Kind = Kind.BASIC) -> Record:
    return Record(
        name=name,
        username=username,
        kind=kind,
        urls=(f"https://{name}.example/simple",),
        created_at=T0 - timedelta(days=1),
        updated_at=T0 - timedelta(days=1),
    )


def test_default_rule() -> None:
    """The defaults are ttl 300 s and max_stale 24 h."""
    assert (timedelta(seconds=300), timedelta(hours=24)) == (RULE.ttl, RULE.max_stale)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(0), Freshness.FRESH),
        (timedelta(seconds=299), Freshness.FRESH),
        (timedelta(seconds=300), Freshness.DUE),
        (timedelta(hours=23, minutes=59), Freshness.DUE),
        (timedelta(hours=24), Freshness.EXPIRED),
    ],
)
def test_freshness_by_age(age: timedelta, expected: Freshness) -> None:
    """Fresh within ttl, due from ttl on, expired from max_stale on."""
    cache = UpstreamCache().succeeded([_upstream("a")], T0)
    assert expected == RULE.freshness(cache, T0 + age)


def test_refresh_due_after_ttl_and_retry_after_failure() -> None:
    """A refresh is due at once before any, ttl after a success, and min(ttl, RETRY) after a
    failure."""
    empty = UpstreamCache()
    assert RULE.refresh_due(empty, T0)
    done = empty.succeeded([_upstream("a")], T0)
    assert not RULE.refresh_due(done, T0 + timedelta(seconds=299))
    assert RULE.refresh_due(done, T0 + timedelta(seconds=300))
    later = T0 + timedelta(seconds=400)
    failed = done.failed("engine down", later, "engine_down")
    assert later + RETRY == RULE.next_refresh(failed)
    assert not RULE.refresh_due(failed, later + RETRY - timedelta(seconds=1))


def test_cached_records_served_while_engine_down_until_max_stale() -> None:
    """While refreshes fail, the last successful read is served until max_stale after it;
    then refused with store_unavailable naming the engine's address and the last error."""
    cache = UpstreamCache().succeeded([_upstream("a")], T0)
    down = cache.failed("engine at https://bao.example:8200 is down", T0 + timedelta(hours=1))
    assert cache.records == RULE.serve(down, T0 + timedelta(hours=23))
    with pytest.raises(StoreUnavailableError) as caught:
        RULE.serve(down, T0 + timedelta(hours=24))
    message = caught.value.message
    assert ADDRESS in message
    assert "max_stale_seconds (86400 s)" in message
    assert message.endswith(": engine at https://bao.example:8200 is down")


def test_nothing_served_before_first_success() -> None:
    """Before any successful refresh there is nothing to serve: store_unavailable naming the
    engine."""
    failed = UpstreamCache().failed("denied", T0, "denied")
    with pytest.raises(
        StoreUnavailableError, match=r"bao\.example:8200 has not answered a refresh"
    ):
        RULE.serve(failed, T0)


def test_success_replaces_the_whole_set() -> None:
    """A successful refresh replaces every cached secret: one deleted upstream is gone, and
    a rotated password is the new one."""
    cache = UpstreamCache().succeeded([_upstream("a"), _upstream("b")], T0)
    rotated = UpstreamSecret(_upstream("a").record, SecretStr("rotated"))
    again = cache.succeeded([rotated], T0 + timedelta(minutes=5))
    assert ("a",) == tuple(r.name for r in again.records)
    assert "rotated" == again.password(again.records[0]).get_secret_value()
    with pytest.raises(KeyError):
        again.password(_upstream("b").record)


def test_failure_keeps_secrets_and_age() -> None:
    """A failed refresh keeps the secrets and the time of the last success."""
    cache = UpstreamCache().succeeded([_upstream("a")], T0)
    failed = cache.failed("down", T0 + timedelta(minutes=10), "engine_down")
    assert (cache.secrets, T0) == (failed.secrets, failed.refreshed_at)


def test_status_object() -> None:
    """status --json's upstream object: last refresh, its result, the cache's age; no
    password anywhere."""
    cache = UpstreamCache().succeeded([_upstream("a")], T0)
    failed = cache.failed("the engine is down", T0 + timedelta(minutes=6), "engine_down")
    expected = {
        "address": ADDRESS,
        "state": "due",
        "records": 1,
        "last_refresh": "2026-06-01T12:06:00+00:00",
        "result": "engine_down",
        "message": "the engine is down",
        "skipped": [],
        "warnings": [],
        "refreshed_at": "2026-06-01T12:00:00+00:00",
        "cache_age_seconds": 420.0,
    }
    status = RULE.status(failed, T0 + timedelta(minutes=7))
    assert expected == status
    assert "up-a-ci" not in repr(status)
    assert "up-a-ci" not in repr(failed)


def test_local_shadows_upstream_of_same_name_and_username() -> None:
    """A local record with the same name and username hides the upstream one; others stay,
    each tagged with its source."""
    local = [_local("a")]
    upstream = [_upstream("a").record, _upstream("a", "other").record, _upstream("b").record]
    merged = merge(local, upstream)
    expected = [
        ("a", "ci", "local"),
        ("a", "other", "upstream"),
        ("b", "ci", "upstream"),
    ]
    assert expected == [(r.name, r.username, source_of(r)) for r in merged]


def test_shadow_ignores_kind() -> None:
    """Shadowing is by (name, username) whatever the kinds: a local token hides an upstream
    basic record of the same username."""
    merged = merge([_local("a", "u", Kind.TOKEN)], [_upstream("a", "u").record])
    assert [("local", Kind.TOKEN)] == [(source_of(r), r.kind) for r in merged]


def test_basic_before_token_applies_after_shadowing() -> None:
    """A local token does not beat an upstream basic record of another username: after
    shadowing, the lookup's basic-before-token rule picks the upstream basic one."""
    merged = merge([_local("a", "__token__", Kind.TOKEN)], [_upstream("a", "ci").record])
    found = find(merged, Query(name="a"), T0)
    assert ("ci", "upstream") == (found.username, source_of(found))


def test_lookup_by_url_reaches_upstream_records() -> None:
    """Upstream records answer URL lookups like local ones."""
    merged = merge([], [_upstream("corp").record])
    found = find(merged, Query(url="https://corp.example/simple/pkg/"), T0)
    assert "corp" == found.name


def test_dump_and_load_round_trip() -> None:
    """A dumped cache (for the local store's encryption) loads back equal: its records,
    passwords, age and last result, through JSON."""
    cache = UpstreamCache().succeeded([_upstream("a"), _upstream("b")], T0, skipped=["x"])
    cache = cache.failed("down", T0 + timedelta(minutes=9), "engine_down")
    loaded = UpstreamCache.load(json.loads(json.dumps(cache.dump())))
    assert (cache.secrets, cache.refreshed_at, cache.last) == (
        loaded.secrets,
        loaded.refreshed_at,
        loaded.last,
    )
    assert "up-b-ci" == loaded.password(loaded.records[1]).get_secret_value()


@pytest.mark.parametrize(
    "data",
    [{}, {"version": 2}, {"version": 1, "secrets": [{"record": {}, "password": "up-x"}]}],
    ids=["empty", "version", "record"],
)
def test_load_refuses_what_is_no_dump(data: dict[str, object]) -> None:
    """Data that is not a dump of this version is refused, without quoting it."""
    with pytest.raises(ValueError, match=r"^not a saved upstream cache of this version$"):
        UpstreamCache.load(data)
