"""One KV version 2 secret is one repository: its fields, their defaults and clear refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helperd.core.record import Kind, Record
from helperd.core.upstream_record import (
    SecretFormatError,
    UpstreamRecord,
    parse_secret,
    source_of,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SECRET = "pw-do-not-show"


def test_basic_secret() -> None:
    """username, password and one URL make a basic repository named after the secret."""
    parsed = parse_secret(
        "corp", {"username": "ci", "password": SECRET, "urls": "https://pypi.corp/simple/"}, WHEN
    )
    expected = UpstreamRecord(
        name="corp",
        username="ci",
        kind=Kind.BASIC,
        urls=("https://pypi.corp/simple/",),
        created_at=WHEN,
        updated_at=WHEN,
    )
    assert expected == parsed.record
    assert SECRET == parsed.password.get_secret_value()
    assert "upstream" == source_of(parsed.record)
    assert SECRET not in repr(parsed)


def test_password_is_kept_exactly() -> None:
    """A password's spaces are part of it: nothing is stripped."""
    parsed = parse_secret("corp", {"username": "ci", "password": " a b "}, WHEN)
    assert " a b " == parsed.password.get_secret_value()


def test_token_secret_defaults_username() -> None:
    """A token without a username answers as ``__token__``; expires_at is read with its zone."""
    parsed = parse_secret(
        "tok", {"kind": "token", "password": SECRET, "expires_at": "2027-01-31T00:00:00Z"}, WHEN
    )
    assert ("__token__", Kind.TOKEN, datetime(2027, 1, 31, tzinfo=UTC)) == (
        parsed.record.username,
        parsed.record.kind,
        parsed.record.expires_at,
    )


@pytest.mark.parametrize(
    "urls",
    [
        "https://a.example/simple https://b.example/simple",
        "https://a.example/simple,https://b.example/simple",
        " https://a.example/simple ,\n https://b.example/simple ",
        '["https://a.example/simple", "https://b.example/simple"]',
        ["https://a.example/simple", "https://b.example/simple", "https://a.example/simple"],
    ],
    ids=["spaces", "commas", "mixed", "json-text", "json-list"],
)
def test_urls_forms(urls: object) -> None:
    """urls is one URL, several separated by spaces or commas, or a JSON list (text or list)."""
    parsed = parse_secret("corp", {"username": "ci", "password": SECRET, "urls": urls}, WHEN)
    assert ("https://a.example/simple", "https://b.example/simple") == parsed.record.urls


def test_local_record_is_local() -> None:
    """A plain record is ``local``."""
    record = Record(name="x", username="u", kind=Kind.BASIC, created_at=WHEN, updated_at=WHEN)
    assert "local" == source_of(record)


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        ("a/b", {"username": "u", "password": SECRET}, "its name is the repository name"),
        ("corp", SECRET, "its data is not a set of fields"),
        ("corp", {"username": "u"}, "field password is missing"),
        ("corp", {"username": "u", "password": ""}, "field password is missing"),
        ("corp", {"username": "u", "password": 7}, "not text"),
        ("corp", {"password": SECRET}, "field username is missing"),
        ("corp", {"username": "u", "password": SECRET, "kind": SECRET}, "basic or token"),
        ("corp", {"username": "u", "password": SECRET, "kind": "generic"}, "basic or token"),
        ("corp", {"username": "u", "password": SECRET, "url": "https://x"}, "unknown field 'url'"),
        (
            "corp",
            {"username": "u", "password": SECRET, "urls": f"https://u:{SECRET}@x/simple"},
            "field urls: a URL must not carry a password",
        ),
        ("corp", {"username": "u", "password": SECRET, "urls": "ftp://x"}, "http or https"),
        ("corp", {"username": "u", "password": SECRET, "urls": "[nope"}, "no JSON list"),
        ("corp", {"username": "u", "password": SECRET, "urls": 3}, "text or a list"),
        ("corp", {"username": "u", "password": SECRET, "urls": [3]}, "as text"),
        ("corp", {"username": "u", "password": SECRET, "expires_at": SECRET}, "ISO 8601"),
        (
            "corp",
            {"username": "u", "password": SECRET, "expires_at": "2027-01-31T00:00:00"},
            "time zone",
        ),
        ("corp", {"username": SECRET, "password": SECRET, SECRET + " x": 1}, "(unprintable)"),
    ],
)
def test_bad_secret_is_refused_without_its_values(name: str, fields: object, expected: str) -> None:
    """A bad secret is refused with a message naming the secret and the field; no value, and
    above all no password, is ever in it."""
    with pytest.raises(SecretFormatError) as caught:
        parse_secret(name, fields, WHEN)
    assert expected in caught.value.message
    assert caught.value.message.startswith(f"upstream secret {name!r}: ")
    assert SECRET not in caught.value.message
    assert SECRET not in str(caught.value)
