"""Protocol v1 models: parsing, rendering, and secrets kept off logs and errors."""

from __future__ import annotations

import json

import pytest
from helperd_client.errors import NotFoundError
from pydantic import SecretStr

from helperd.core.protocol import (
    GetRequest,
    GetResult,
    RequestError,
    SetRequest,
    parse_request,
    render_error,
    render_ok,
)
from helperd.core.record import Kind


def line(**message: object) -> bytes:
    return json.dumps(message).encode()


def test_parses_a_set_request() -> None:
    """A set request becomes a SetRequest whose password is a SecretStr."""
    request_id, request = parse_request(
        line(v=1, id="a", op="set", name="foo", password="pw", url="https://h/")
    )
    assert "a" == request_id
    assert isinstance(request, SetRequest)
    assert "pw" == request.password.get_secret_value()
    assert "pw" not in repr(request)
    assert None is request.kind, "the service decides: basic for a name"


@pytest.mark.parametrize(
    ("message", "code", "request_id"),
    [
        pytest.param({"v": 1, "id": 7, "op": "nope"}, "unknown_op", 7, id="unknown-op"),
        pytest.param({"v": True, "id": 7, "op": "hello"}, "unsupported_version", 7, id="bool-v"),
        pytest.param({"v": "1", "id": 7, "op": "hello"}, "unsupported_version", 7, id="str-v"),
        pytest.param({"v": 1, "id": [1], "op": "hello"}, "bad_request", None, id="list-id"),
        pytest.param({"v": 1, "id": 1, "op": "get", "name": 1}, "bad_request", 1, id="int-name"),
        pytest.param({"v": 1, "id": 1, "op": "set", "name": "x"}, "bad_request", 1, id="no-pw"),
        pytest.param(
            {"v": 1, "id": 1, "op": "set", "name": "x", "password": "p", "kind": "x"},
            "bad_request",
            1,
            id="bad-kind",
        ),
    ],
)
def test_refusals_carry_code_and_id(
    message: dict[str, object], code: str, request_id: object
) -> None:
    """Each malformed request is refused with its code, under the id it carried when valid."""
    with pytest.raises(RequestError) as caught:
        parse_request(line(**message))
    assert (code, request_id) == (caught.value.error.code, caught.value.request_id)


def test_validation_error_names_field_not_value() -> None:
    """The bad_request message names the field and never quotes the offending value."""
    with pytest.raises(RequestError) as caught:
        parse_request(line(v=1, id=1, op="set", name="x", password=["hunter2"]))
    assert "password" in caught.value.error.message
    assert "hunter2" not in caught.value.error.message


def test_secret_revealed_only_for_the_wire() -> None:
    """GetResult shows its password in render_ok's line and nowhere else."""
    result = GetResult(
        name="foo",
        username="u",
        password=SecretStr("pw-x"),
        kind=Kind.BASIC,
        urls=[],
        expires_at=None,
        created_at=None,
        updated_at=None,
    )
    assert "pw-x" not in repr(result)
    assert "pw-x" not in str(result)
    assert "pw-x" not in result.model_dump_json()
    wire = json.loads(render_ok(5, result))
    assert {"v": 1, "id": 5, "ok": True} == {k: wire[k] for k in ("v", "id", "ok")}
    assert "pw-x" == wire["result"]["password"]


def test_render_error_envelope() -> None:
    """An error response has v, id, ok false and the error's code and message."""
    wire = json.loads(render_error("x", NotFoundError("no record named 'foo'")))
    assert {
        "v": 1,
        "id": "x",
        "ok": False,
        "error": {"code": "not_found", "message": "no record named 'foo'"},
    } == wire


def test_get_takes_username() -> None:
    """get carries an optional username beside exactly one target."""
    _, request = parse_request(line(v=1, id=1, op="get", service="h:8080", username="u"))
    assert GetRequest(v=1, id=1, op="get", service="h:8080", username="u") == request


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"v": 1, "id": "\\ud800", "op": "hello"}', id="surrogate-id"),
        pytest.param(
            b'{"v": 1, "id": 1, "op": "set", "name": "x", "password": "a\\udfffb"}',
            id="surrogate-password",
        ),
    ],
)
def test_lone_surrogates_are_refused(payload: bytes) -> None:
    """A lone surrogate, which no UTF-8 answer could carry, is a bad request with no id echoed."""
    with pytest.raises(RequestError) as caught:
        parse_request(payload)
    assert ("bad_request", None) == (caught.value.error.code, caught.value.request_id)


def test_overlong_id_is_refused_and_not_echoed() -> None:
    """An id longer than 256 characters is refused, and not copied into the answer."""
    with pytest.raises(RequestError) as caught:
        parse_request(line(v=1, id="x" * 257, op="hello"))
    assert ("bad_request", None) == (caught.value.error.code, caught.value.request_id)
