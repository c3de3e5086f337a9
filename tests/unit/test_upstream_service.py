"""The service with an upstream (a fake one: the real engine is tested in
tests/integration/test_upstream_daemon.py): lookup order, staleness at get time, the
``upstream`` op, and the lookup index the event loop may use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helperd_client.errors import BadRequestError, NotFoundError, StoreUnavailableError
from pydantic import SecretStr

from helperd.core.protocol import (
    GetRequest,
    GetResult,
    ListRequest,
    ListResult,
    SetRequest,
    StatusRequest,
    StatusResult,
    UpstreamRequest,
    UpstreamResult,
)
from helperd.core.record import Kind, Record
from helperd.core.service import Service
from helperd.core.upstream_cache import Staleness, UpstreamCache
from helperd.core.upstream_record import UpstreamRecord, UpstreamSecret
from helperd.core.upstream_view import CACHE_KEY, UpstreamWrite
from tests.unit.test_service import MemoryStore

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
ADDRESS = "https://bao.example.test:8200"
URL = "https://pkgs.example.test/simple/"
SETTINGS: dict[str, Any] = {
    "address": ADDRESS,
    "mount": "secret",
    "prefix": "helperd",
    "namespace": None,
    "auth": "token",
    "token_file": "/etc/helperd/bao-token",
    "role_id_file": None,
    "secret_id_file": None,
    "ca_file": None,
    "ttl_seconds": 300.0,
    "max_stale_seconds": 86400.0,
}


def secret(name: str, username: str, password: str, kind: Kind = Kind.BASIC) -> UpstreamSecret:
    """One upstream secret with ``URL``."""
    record = UpstreamRecord(
        name=name, username=username, kind=kind, urls=(URL,), created_at=T0, updated_at=T0
    )
    return UpstreamSecret(record, SecretStr(password))


class InMemory(MemoryStore):
    """A memory store whose reads never block: the event loop may answer from it."""

    @property
    def reads_block(self) -> bool:
        return False


class FakeUpstream:
    """An upstream whose refresh returns what the test put in ``next``."""

    def __init__(self, *secrets: UpstreamSecret) -> None:
        self.staleness = Staleness(ADDRESS)  # the defaults users get: 300 s, 86,400 s
        self.cache = UpstreamCache().succeeded(secrets, T0)
        self.next: tuple[UpstreamSecret, ...] = secrets
        self.written: list[UpstreamWrite] = []

    def settings(self) -> dict[str, Any]:
        return SETTINGS

    def refresh(self) -> UpstreamCache:
        self.cache = self.cache.succeeded(self.next, T0 + timedelta(seconds=1))
        return self.cache

    def test(self) -> dict[str, Any]:
        return {"ok": True, "reason": None, "message": "read", "secrets": 1}

    def write(self, request: UpstreamWrite) -> None:
        self.written.append(request)
        self.next = (
            *self.next,
            secret(request.name, request.fields["username"], request.fields["password"]),
        )


def service(*secrets: UpstreamSecret) -> tuple[Service, FakeUpstream, InMemory]:
    """A service over an empty unlocked memory store, with a fake upstream."""
    store = InMemory()
    upstream = FakeUpstream(*secrets)
    return Service(store, store_reason="test", upstream=upstream), upstream, store


def get(svc: Service, now: datetime = T0, **query: str) -> GetResult:
    """Serve a get."""
    result = svc.handle(GetRequest(v=1, id=1, op="get", **query), now)
    assert isinstance(result, GetResult)
    return result


def test_upstream_record_served_by_name_and_url() -> None:
    """An upstream secret is served by its name and by a URL under its URL."""
    svc, _, _ = service(secret("corp", "alice", "up-pw"))

    assert ("up-pw", "up-pw") == (
        get(svc, name="corp").password.get_secret_value(),
        get(svc, url=URL + "pkg/").password.get_secret_value(),
    )


def test_local_record_shadows_the_upstream_one_of_the_same_name_and_username() -> None:
    """A local record of the same (name, username) wins; list shows it once, as local."""
    svc, _, _ = service(secret("corp", "alice", "up-pw"), secret("corp", "bob", "bob-pw"))
    svc.handle(
        SetRequest(v=1, id=1, op="set", name="corp", username="alice", password=SecretStr("loc")),
        T0,
    )

    listed = svc.handle(ListRequest(v=1, id=2, op="list"), T0)

    assert "loc" == get(svc, name="corp", username="alice").password.get_secret_value()
    assert isinstance(listed, ListResult)
    assert [("alice", "local"), ("bob", "upstream")] == [
        (r.username, r.source) for r in listed.records
    ]


def test_basic_before_token_after_shadowing() -> None:
    """After shadowing, a basic upstream record is chosen before a local token of that name."""
    svc, _, _ = service(secret("corp", "alice", "basic-pw"))
    svc.handle(
        SetRequest(v=1, id=1, op="set", name="corp", kind=Kind.TOKEN, password=SecretStr("tok")),
        T0,
    )

    assert "basic-pw" == get(svc, name="corp").password.get_secret_value()


def test_past_max_stale_refused_naming_the_engine_but_local_still_served() -> None:
    """Past the default max_stale (24 h) an upstream record is refused with store_unavailable
    naming the engine; a local record is still served; a name found nowhere is refused too
    (it may be upstream)."""
    svc, _, _ = service(secret("corp", "alice", "up-pw"))
    svc.handle(SetRequest(v=1, id=1, op="set", name="mine", password=SecretStr("m")), T0)
    late = T0 + timedelta(seconds=86_400)

    with pytest.raises(StoreUnavailableError) as refused:
        get(svc, late, name="corp")
    with pytest.raises(StoreUnavailableError):
        get(svc, late, name="nowhere")

    assert ADDRESS in refused.value.message
    assert "m" == get(svc, late, name="mine").password.get_secret_value()
    assert "up-pw" == get(svc, late - timedelta(seconds=1), name="corp").password.get_secret_value()


def test_deleted_upstream_disappears_at_the_next_refresh() -> None:
    """A refresh that no longer reads a secret removes it: the next get answers not_found."""
    svc, upstream, _ = service(secret("corp", "alice", "up-pw"))
    get(svc, name="corp")
    upstream.next = ()

    svc.handle(UpstreamRequest(v=1, id=1, op="upstream", action="refresh"), T0)

    with pytest.raises(NotFoundError):
        get(svc, name="corp")


def test_event_loop_answers_only_once_the_new_snapshot_is_indexed() -> None:
    """After a swap, answer_now hands a get to a thread until the index is built (prime)."""
    svc, upstream, _ = service(secret("corp", "alice", "up-pw"))
    request = GetRequest(v=1, id=1, op="get", name="corp")
    svc.prime()
    assert svc.answer_now(request, T0) is not None

    upstream.refresh()

    assert svc.answer_now(request, T0) is None
    svc.prime()
    assert svc.answer_now(request, T0) is not None


def test_status_and_show() -> None:
    """status carries the upstream object; upstream show its settings and status."""
    svc, _, _ = service(secret("corp", "alice", "up-pw"))

    status = svc.handle(StatusRequest(v=1, id=1, op="status"), T0 + timedelta(seconds=5))
    shown = svc.handle(UpstreamRequest(v=1, id=2, op="upstream", action="show"), T0)

    assert isinstance(status, StatusResult)
    assert status.upstream is not None
    assert ("ok", "fresh", 5.0) == (
        status.upstream.result,
        status.upstream.state,
        status.upstream.cache_age_seconds,
    )
    assert isinstance(shown, UpstreamResult)
    assert shown.settings is not None
    assert (True, SETTINGS) == (shown.configured, shown.settings.model_dump())


def test_without_upstream_show_says_so_and_refresh_is_refused() -> None:
    """With no [upstream], show answers configured false; refresh is a bad request."""
    svc = Service(MemoryStore(), store_reason="test")

    shown = svc.handle(UpstreamRequest(v=1, id=1, op="upstream", action="show"), T0)

    assert UpstreamResult(configured=False) == shown
    with pytest.raises(BadRequestError):
        svc.handle(UpstreamRequest(v=1, id=2, op="upstream", action="refresh"), T0)


def test_set_upstream_writes_to_the_engine_not_the_store() -> None:
    """set with upstream writes the fields to the engine and refreshes; the store is untouched."""
    svc, upstream, store = service()
    request = SetRequest(
        v=1,
        id=1,
        op="set",
        name="new",
        username="bob",
        password=SecretStr("pw"),
        url=URL,
        upstream=True,
    )

    svc.handle(request, T0)

    assert [("new", {"username": "bob", "password": "pw", "kind": "basic", "urls": URL})] == [
        (w.name, w.fields) for w in upstream.written
    ]
    assert () == store.records()
    assert "pw" == get(svc, name="new").password.get_secret_value()
    assert "pw" not in repr(upstream.written[0])


def test_the_kept_cache_record_is_hidden_from_lookup_and_list() -> None:
    """The generic record that keeps the cache in the store is neither listed nor served."""
    svc, _, store = service()
    name, username = CACHE_KEY
    svc.keep_upstream(
        lambda s: s.put(
            Record(name=name, username=username, kind=Kind.GENERIC, created_at=T0, updated_at=T0),
            SecretStr("{}"),
        )
    )

    listed = svc.handle(ListRequest(v=1, id=1, op="list"), T0)

    assert 1 == len(store.records())
    assert isinstance(listed, ListResult)
    assert [] == listed.records
    with pytest.raises((NotFoundError, StoreUnavailableError)):
        get(svc, service=name, username=username)


def test_a_failed_refresh_is_answered_with_its_message() -> None:
    """upstream refresh that fails answers store_unavailable with the refresh's message."""
    svc, upstream, _ = service(secret("corp", "alice", "up-pw"))
    broken = upstream.cache.failed(f"upstream secret engine {ADDRESS} is down", T0, "engine_down")
    upstream.refresh = lambda: broken  # type: ignore[method-assign]

    with pytest.raises(StoreUnavailableError) as refused:
        svc.handle(UpstreamRequest(v=1, id=1, op="upstream", action="refresh"), T0)

    assert f"upstream secret engine {ADDRESS} is down" == refused.value.message
