"""list in pages: every record exactly once, in key order, and the old form bounded."""

from __future__ import annotations

import pytest
from helperd_client.errors import TooLargeError

from helperd.core import paging
from helperd.core.protocol import ListRequest, RequestError, parse_request
from helperd.core.service import Service
from tests.unit.test_service import T0, InMemory, set_req


@pytest.fixture
def service() -> Service:
    served = Service(InMemory(), store_reason="test")
    for name in ("a", "b", "c", "d", "e"):
        for user in ("u1", "u2"):
            served.handle(set_req(name=name, username=user), T0)
    return served


def listed(service: Service, **args: object) -> tuple[list[tuple[str, str]], object]:
    request = ListRequest.model_validate({"v": 1, "id": 1, "op": "list", **args})
    result = service.handle(request, T0).model_dump()
    return [(r["name"], r["username"]) for r in result["records"]], result["next"]


def test_pages_add_up_to_the_whole_list(service: Service) -> None:
    """Following next from page to page yields every record once, in order; next ends null."""
    whole, end = listed(service)
    assert (10, None) == (len(whole), end)
    seen: list[tuple[str, str]] = []
    after = None
    for _ in range(10):
        args: dict[str, object] = {"limit": 3}
        if after is not None:
            args["after"] = after
        found, after = listed(service, **args)
        seen += found
        if after is None:
            break
    assert whole == seen
    assert ([("c", "u1"), ("c", "u2")], {"name": "c", "username": "u2"}) == listed(
        service, limit=2, after={"name": "b", "username": "u3"}
    )
    assert ([], None) == listed(service, limit=5, after={"name": "z", "username": ""})


def test_the_form_without_limit_is_refused_past_its_bound(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list without limit answers too_large rather than a cut list, past MAX_UNPAGED."""
    monkeypatch.setattr(paging, "MAX_UNPAGED", 9)
    with pytest.raises(TooLargeError):
        listed(service)
    assert 8 == len(listed(service, after={"name": "a", "username": "u2"})[0])


@pytest.mark.parametrize("limit", [0, paging.MAX_PAGE + 1, "5", True])
def test_a_limit_out_of_bounds_is_a_bad_request(limit: object) -> None:
    """limit is an integer from 1 to MAX_PAGE."""
    line = b'{"v":1,"id":1,"op":"list","limit":%s}' % str(limit).lower().encode()
    if isinstance(limit, str):
        line = b'{"v":1,"id":1,"op":"list","limit":"5"}'
    with pytest.raises(RequestError) as raised:
        parse_request(line)
    assert "bad_request" == raised.value.error.code
