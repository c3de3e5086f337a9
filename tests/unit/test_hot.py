"""The hot path (helperd.core.hot): hand-checked requests and kept answers, never stale."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from helperd.core import service_hot
from helperd.core.hot import quick_request, render_cached
from helperd.core.protocol import DeleteRequest, LockRequest, parse_request, render_ok
from helperd.core.service import Service
from helperd.stores.file_store import FileStore
from tests.unit.test_service import T0, InMemory, set_req

GET = b'{"v":1,"id":7,"op":"get","service":"acme","username":"u"}\n'


def full_answer(service: Service, line: bytes) -> bytes:
    """The answer the full path gives (parse_request, answer_now, render_ok)."""
    request_id, request = parse_request(line)
    result = service.answer_now(request, T0)
    assert result is not None
    return render_ok(request_id, result)


def hot_answer(service: Service, line: bytes, when: object = T0) -> bytes | None:
    """The answer the hot path gives, or None when it leaves the request to the full path."""
    quick = quick_request(line)
    assert quick is not None
    body = service.answer_hot(quick, when)  # type: ignore[arg-type]
    return None if body is None else render_cached(quick.request_id, body)


@pytest.fixture
def service() -> Service:
    served = Service(InMemory(), store_reason="test", idle_lock=timedelta(minutes=15))
    served.handle(set_req(name="acme", username="u", password="pw1"), T0)
    return served


@pytest.mark.parametrize(
    "line",
    [
        b'{"v":1,"id":1,"op":"get","service":"a","extra":1}',
        b'{"v":true,"id":1,"op":"get","service":"a"}',
        b'{"v":2,"id":1,"op":"get","service":"a"}',
        b'{"v":1,"id":true,"op":"get","service":"a"}',
        b'{"v":1,"id":9223372036854775808,"op":"get","service":"a"}',
        b'{"v":1,"id":1,"op":"get","service":1}',
        b'{"v":1,"id":1,"op":"get","service":"' + b"a" * 4097 + b'"}',
        b'{"v":1,"id":1,"op":"list"}',
        b'{"v":1,"id":1,"op":"hello","x":1}',
        b"not json",
    ],
)
def test_anything_but_a_plain_get_or_hello_goes_the_full_way(line: bytes) -> None:
    """A line the models would refuse, or another op, is not taken by the hand checks."""
    assert None is quick_request(line)


def test_kept_answer_is_the_full_paths_bytes_under_each_id(service: Service) -> None:
    """The first get is served the full way and kept; the next one, under another id, gets the
    very bytes the full path would render."""
    assert None is hot_answer(service, GET)
    first = full_answer(service, GET)
    again = GET.replace(b'"id":7', b'"id":"x"')
    assert full_answer(service, again) == hot_answer(service, again)
    assert first == hot_answer(service, GET)
    hello = b'{"v":1,"id":3,"op":"hello"}'
    assert full_answer(service, hello) == hot_answer(service, hello)


@pytest.mark.parametrize("request_id", [0, -1, 2**63 - 1, -(2**63), "", 'é\u2028"x"', "\\u0041"])
def test_kept_answer_renders_every_id_as_the_full_path_does(
    service: Service, request_id: int | str
) -> None:
    """Integer ids are written without the JSON encoder; every id gives render_ok's bytes."""
    full_answer(service, GET)
    line = GET.replace(b'"id":7', b'"id":' + json.dumps(request_id).encode())
    assert full_answer(service, line) == hot_answer(service, line)


def test_a_change_or_a_lock_drops_the_kept_answers(service: Service) -> None:
    """After a set the old password is never served; after a lock nothing is served."""
    full_answer(service, GET)
    service.handle(set_req(name="acme", username="u", password="pw2"), T0)
    assert None is hot_answer(service, GET)
    assert b'"password":"pw2"' in full_answer(service, GET)
    assert b'"password":"pw2"' in (hot_answer(service, GET) or b"")
    service.handle(LockRequest(v=1, id=1, op="lock"), T0)
    assert None is hot_answer(service, GET)
    service.store.unlock(SecretStr("right"))
    assert None is hot_answer(service, GET)


def test_an_expired_record_and_a_due_idle_lock_leave_the_hot_path(service: Service) -> None:
    """A kept answer whose record expires, or a store due for its idle lock, is not served."""
    service.handle(
        set_req(name="acme", username="u", password="pw", expires_at=T0 + timedelta(minutes=1)),
        T0,
    )
    full_answer(service, GET)
    assert None is not hot_answer(service, GET, T0 + timedelta(seconds=30))
    assert None is hot_answer(service, GET, T0 + timedelta(minutes=2))
    assert None is hot_answer(service, GET, T0 + timedelta(minutes=20))


@pytest.fixture(params=["checked-by-the-write", "checked-on-first-request"])
def on_file(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """A service on a real key-file store (which says what each write changed), holding
    ``acme`` (by service name) and ``corp`` (by URL); kept answers are checked after each
    write by the writer, or (as past 64 of them) on their first request."""
    if request.param == "checked-on-first-request":
        monkeypatch.setattr(service_hot, "_CHECKED_AT_ONCE", 0)
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    key = tmp_path / "helperd.key"
    key.write_bytes(b"K" * 32)
    key.chmod(0o600)
    store = FileStore(folder / "store.enc", key_file=key)
    served = Service(store, store_reason="test")
    served.handle(set_req(name="acme", username="u", password="pw1"), T0)
    served.handle(set_req(name="corp", password="c1", urls=["https://corp.test/simple/"]), T0)
    yield served
    store.close()


BY_URL = b'{"v":1,"id":8,"op":"get","url":"https://corp.test/simple/team/pkg/"}\n'


def test_answers_a_write_did_not_touch_stay_hot_after_it(on_file: Service) -> None:
    """After a write of another record, kept answers are served again, byte for byte what the
    full path gives; the record written is not, until served once."""
    full_answer(on_file, GET)
    full_answer(on_file, BY_URL)
    on_file.handle(set_req(name="other", password="o1"), T0)

    hot = [hot_answer(on_file, GET), hot_answer(on_file, BY_URL)]  # before any full path
    assert [full_answer(on_file, GET), full_answer(on_file, BY_URL)] == hot
    on_file.handle(set_req(name="acme", username="u", password="pw2"), T0)
    assert None is hot_answer(on_file, GET)
    hot = [hot_answer(on_file, BY_URL)]
    assert b'"password":"pw2"' in full_answer(on_file, GET)
    assert [full_answer(on_file, BY_URL)] == hot


def test_a_write_that_changes_what_a_request_finds_drops_its_answer(on_file: Service) -> None:
    """A new record with a longer URL prefix now answers the URL: the kept answer of the
    record it shadows is not served; a deleted record's answer neither."""
    full_answer(on_file, BY_URL)
    full_answer(on_file, GET)
    on_file.handle(set_req(name="team", password="t1", urls=["https://corp.test/simple/team/"]), T0)
    assert None is hot_answer(on_file, BY_URL)
    assert b'"password":"t1"' in full_answer(on_file, BY_URL)
    on_file.handle(DeleteRequest(v=1, id=1, op="delete", name="acme", username="u"), T0)
    assert None is hot_answer(on_file, GET)


def test_a_record_put_again_as_the_same_object_is_not_served_hot(on_file: Service) -> None:
    """Even a record object the store keeps, put again with a new password, counts as
    replaced: its kept answer is not served with the old password."""
    full_answer(on_file, GET)
    earlier = on_file._hot
    (record,) = [r for r in on_file.store.records() if r.name == "acme"]
    on_file.store.put(record, SecretStr("pw9"))
    on_file._prime_catalog()
    on_file._hot = on_file._carry_hot(earlier, T0)
    assert None is hot_answer(on_file, GET)
    assert b'"password":"pw9"' in full_answer(on_file, GET)


def test_a_lock_after_writes_serves_nothing_kept(on_file: Service) -> None:
    """A kept answer carried through a write is gone after a lock (key-file stores cannot
    lock: the carried cache is dropped when the store cannot be read)."""
    full_answer(on_file, GET)
    on_file.handle(set_req(name="other", password="o1"), T0)
    earlier = on_file._hot
    assert None is not hot_answer(on_file, GET)
    on_file.store.close()
    assert None is hot_answer(on_file, GET)
    assert None is on_file._carry_hot(earlier, T0).records
