"""The pure core with an in-memory store: set semantics, idle lock, passphrase gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from helperd_client.errors import (
    BadPassphraseError,
    BadRequestError,
    NotFoundError,
)
from pydantic import SecretStr

from helperd.core.protocol import (
    DeleteRequest,
    GetRequest,
    HelloRequest,
    ListRequest,
    SetRequest,
    StatusRequest,
    UnlockRequest,
)
from helperd.core.record import Kind
from helperd.core.service import Service
from helperd.core.store import StoreState
from tests.support.core import MemoryStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def set_req(**kw: object) -> SetRequest:
    return SetRequest.model_validate({"v": 1, "id": 1, "op": "set", "password": "pw", **kw})


@pytest.fixture
def service() -> Service:
    return Service(MemoryStore(), store_reason="test", idle_lock=timedelta(minutes=15))


def test_set_defaults_usernames(service: Service) -> None:
    """A token defaults to __token__, a basic record to the empty username."""
    service.handle(set_req(name="a", kind="token"), T0)
    service.handle(set_req(name="b"), T0)
    names = {(r.name, r.username, r.kind) for r in service.store.records()}
    assert {("a", "__token__", Kind.TOKEN), ("b", "", Kind.BASIC)} == names


def test_replacing_keeps_urls_and_created_at(service: Service) -> None:
    """A set without urls keeps the replaced record's URLs and creation time."""
    service.handle(set_req(name="a", username="u", url="https://h.test/simple/"), T0)
    later = T0 + timedelta(minutes=1)
    result = service.handle(set_req(name="a", username="u", password="new"), later)
    assert result.replaced  # type: ignore[union-attr]
    [record] = service.store.records()
    assert (("https://h.test/simple/",), T0, later) == (
        record.urls,
        record.created_at,
        record.updated_at,
    )


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"name": "has space"}, id="bad-name"),
        pytest.param({"name": "a", "url": "https://h/", "urls": ["https://h/"]}, id="url-and-urls"),
        pytest.param({"name": "a", "url": "ftp://h/"}, id="ftp"),
        pytest.param(
            {"name": "svc", "kind": "generic", "username": "u", "url": "https://h/"},
            id="generic-with-url",
        ),
        pytest.param({"name": "a", "expires_at": "2025-01-01T00:00:00Z"}, id="past-expiry"),
    ],
)
def test_set_refusals(service: Service, fields: dict[str, object]) -> None:
    """Invalid sets are refused as bad requests and store nothing."""
    with pytest.raises(BadRequestError):
        service.handle(set_req(**fields), T0)
    assert () == service.store.records()


def test_generic_entry_may_have_any_service_name(service: Service) -> None:
    """A generic entry's name is a raw keyring service, spaces and all."""
    service.handle(set_req(name="my app: ü", kind="generic", username="me"), T0)
    get = GetRequest(v=1, id=1, op="get", service="my app: ü", username="me")
    assert "pw" == service.handle(get, T0).password.get_secret_value()  # type: ignore[union-attr]


def test_delete_unknown_is_not_found(service: Service) -> None:
    """Deleting a name that holds nothing answers not_found."""
    with pytest.raises(NotFoundError):
        service.handle(DeleteRequest(v=1, id=1, op="delete", name="nope"), T0)


def test_list_is_sorted_and_has_no_secret(service: Service) -> None:
    """list returns records sorted by (name, username), without passwords."""
    for name in ("b", "a"):
        service.handle(set_req(name=name, username="u", password="topsecret"), T0)
    result = service.handle(ListRequest(v=1, id=1, op="list"), T0)
    assert ["a", "b"] == [r.name for r in result.records]  # type: ignore[union-attr]
    assert "topsecret" not in result.model_dump_json()


def test_wrong_passphrases_close_the_gate_and_a_right_one_resets_it(service: Service) -> None:
    """Wrong unlocks close the gate for 1, 2, 4 s; refusals meanwhile leave n; success resets n."""
    service.store.lock()
    wrong = UnlockRequest.model_validate({"v": 1, "id": 1, "op": "unlock", "passphrase": "no"})
    right = UnlockRequest.model_validate({"v": 1, "id": 1, "op": "unlock", "passphrase": "right"})
    status = StatusRequest(v=1, id=1, op="status")
    waits = []
    now = T0
    with freeze_time(T0):
        for _ in range(3):
            with pytest.raises(BadPassphraseError):
                service.handle(wrong, now)
            waits.append(service.handle(status, now).passphrase_retry_in)  # type: ignore[union-attr]
            with pytest.raises(BadPassphraseError) as refused:
                service.handle(right, now)  # refused unchecked, even though it is right
            message = f"too many wrong passphrases: try again in {int(waits[-1])} s"
            assert message == str(refused.value)
            now += timedelta(seconds=waits[-1])
        service.handle(right, now)
        assert 0 == service.gate.failures
        service.store.lock()
        with pytest.raises(BadPassphraseError):
            service.handle(wrong, now)
    assert [1.0, 2.0, 4.0, 1.0] == [*waits, service.gate.retry_in(now)]


def test_idle_store_locks_after_the_configured_time(service: Service) -> None:
    """Fifteen minutes without use lock the store; status does not count as use."""
    with freeze_time(T0) as clock:
        service.handle(set_req(name="a", username="u"), datetime.now(UTC))
        clock.tick(timedelta(minutes=14))
        service.handle(StatusRequest(v=1, id=1, op="status"), datetime.now(UTC))
        assert not service.tick(datetime.now(UTC))
        clock.tick(timedelta(minutes=1))
        assert service.tick(datetime.now(UTC))
    assert StoreState.LOCKED == service.store.state


def test_status_counts_repositories_not_records(service: Service) -> None:
    """Two records under one name are one repository; generic entries are not repositories."""
    service.handle(set_req(name="a", username="u"), T0)
    service.handle(set_req(name="a", kind="token"), T0)
    service.handle(set_req(name="svc", kind="generic", username="x"), T0)
    status = service.handle(StatusRequest(v=1, id=1, op="status"), T0)
    assert (1, 3) == (status.repositories, status.records)  # type: ignore[union-attr]


def svc_set(service_name: str, username: str, password: str = "pw") -> SetRequest:
    return SetRequest.model_validate(
        {
            "v": 1,
            "id": 1,
            "op": "set",
            "service": service_name,
            "username": username,
            "password": password,
        }
    )


@pytest.mark.parametrize(
    ("service_name", "username", "expected"),
    [
        pytest.param(
            "poetry-repository-acme", "alice", ("acme", "alice", Kind.BASIC), id="poetry-basic"
        ),
        pytest.param(
            "poetry-repository-acme",
            "__token__",
            ("acme", "__token__", Kind.TOKEN),
            id="poetry-token",
        ),
        pytest.param("pdm-pypi-acme", "alice", ("acme", "alice", Kind.BASIC), id="pdm-basic"),
        pytest.param(
            "https://h.test/simple/pkg/", "bob", ("held", "bob", Kind.BASIC), id="owned-url"
        ),
        pytest.param("h.test", "aws", ("held", "aws", Kind.TOKEN), id="owned-host-keeps-token"),
        pytest.param("my-app", "me", ("my-app", "me", Kind.GENERIC), id="generic"),
    ],
)
def test_keyring_writes_land_where_the_service_says(
    service: Service, service_name: str, username: str, expected: tuple[str, str, Kind]
) -> None:
    """A write by keyring service lands on the repository it names or owns, else generic."""
    service.handle(
        set_req(name="held", username="aws", kind="token", url="https://h.test/simple/"), T0
    )
    service.handle(svc_set(service_name, username), T0)
    keys = {(r.name, r.username, r.kind) for r in service.store.records()}
    assert expected in keys


def test_keyring_delete_by_service(service: Service) -> None:
    """delete by poetry-repository-NAME and __token__ removes the token record only."""
    service.handle(svc_set("poetry-repository-acme", "alice"), T0)
    service.handle(svc_set("poetry-repository-acme", "__token__"), T0)
    request = DeleteRequest(
        v=1, id=1, op="delete", service="poetry-repository-acme", username="__token__"
    )
    assert 1 == service.handle(request, T0).deleted  # type: ignore[union-attr]
    assert [("acme", "alice")] == [r.key for r in service.store.records()]


class InMemory(MemoryStore):
    """A MemoryStore that says its reads never block, like an open file store."""

    @property
    def reads_block(self) -> bool:
        return False


class Foreign:
    """An OS keyring fallback that must not be reached on the event loop."""

    def __init__(self) -> None:
        self.calls = 0

    def foreign_password(self, service: str, username: str | None) -> tuple[str, SecretStr] | None:
        self.calls += 1
        return ("them", SecretStr("theirs"))

    def foreign_delete(self, service: str, username: str) -> bool:
        return False


def test_answer_now_only_when_nothing_blocks() -> None:
    """hello and in-memory gets are answered at once; a fallback to the OS keyring, or a store
    whose reads block, is left to a worker thread (None)."""
    foreign = Foreign()
    fast = Service(InMemory(), store_reason="test", foreign=foreign)
    fast.handle(set_req(name="acme", username="u", password="pw"), T0)
    hello = HelloRequest(v=1, id=1, op="hello")
    held = GetRequest(v=1, id=1, op="get", service="acme")
    other = GetRequest(v=1, id=1, op="get", service="someone-elses-app")
    assert None is not fast.answer_now(hello, T0)
    assert "pw" == fast.answer_now(held, T0).password.get_secret_value()  # type: ignore[union-attr]
    assert None is fast.answer_now(other, T0)
    assert 0 == foreign.calls
    assert "theirs" == fast.handle(other, T0).password.get_secret_value()  # type: ignore[union-attr]
    slow = Service(MemoryStore(), store_reason="test")
    slow.handle(set_req(name="acme", username="u"), T0)
    assert None is slow.answer_now(held, T0)
    assert None is fast.answer_now(ListRequest(v=1, id=1, op="list"), T0)
