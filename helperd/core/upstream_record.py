"""Upstream records: one KV version 2 secret of a secret engine (OpenBao, Vault) is one
repository, parsed here into a `Record` that says where it came from.

Pure: a secret's fields in, an `UpstreamSecret` (record and password) or a `SecretFormatError`
out. The fields are fixed (docs/fleet.md): ``username``, ``password``, ``urls``, ``kind`` and
``expires_at``; the secret's name under the prefix is the repository name. A message names the
secret and the field, never a value: the password, or a password typed into the wrong field,
stays out of every message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from helperd_client.errors import BadRequestError
from pydantic import SecretStr

from helperd.core.lookup import check_url
from helperd.core.record import NAME_PATTERN, TOKEN_USERNAME, Kind, Record

__all__ = [
    "FIELDS",
    "SecretFormatError",
    "Source",
    "UpstreamRecord",
    "UpstreamSecret",
    "parse_secret",
    "parse_urls",
    "source_of",
]

Source = Literal["local", "upstream"]
"""Where a served record comes from: what ``list --json`` shows as ``source``."""

FIELDS = ("username", "password", "urls", "kind", "expires_at")
"""The fields of an upstream secret; any other field is refused (a typo is never ignored)."""

_KINDS = {"basic": Kind.BASIC, "token": Kind.TOKEN}
_URL_SEPARATORS = re.compile(r"[\s,]+")
_SHOWN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,40}")


class UpstreamRecord(Record):
    """A repository record read from the secret engine: a `Record` whose ``source`` is
    ``upstream``. The lookup rules treat it like any record; the service asks the upstream
    cache, not the local store, for its password."""

    source: Literal["upstream"] = "upstream"


def source_of(record: Record) -> Source:
    """``upstream`` for a record read from the secret engine, else ``local``."""
    return "upstream" if isinstance(record, UpstreamRecord) else "local"


@dataclass(frozen=True)
class UpstreamSecret:
    """One parsed upstream secret: its record and its password (hidden from ``repr``)."""

    record: UpstreamRecord
    password: SecretStr = field(repr=False)


class SecretFormatError(ValueError):
    """An upstream secret that is not a valid repository; the message names the secret and
    the field, never a value.

    Attributes:
        name: the secret's name under the prefix.
        message: what is wrong and how to fix it.
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.message = f"upstream secret {name!r}: {problem}"
        super().__init__(self.message)


def parse_secret(name: str, fields: object, updated_at: datetime) -> UpstreamSecret:
    """Parse the fields of the upstream secret ``name`` into a repository record.

    Args:
        name: the secret's name under the prefix: the repository name.
        fields: the secret's data (KV version 2's ``data.data``).
        updated_at: when the secret's current version was written (its ``created_time``);
            the record's ``created_at`` and ``updated_at``.

    Raises:
        SecretFormatError: the secret is not a valid repository; the message says which
            field and how, never a value.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise SecretFormatError(
            name, "its name is the repository name: use letters, digits, '.', '_' or '-'"
        )
    if not isinstance(fields, Mapping):
        raise SecretFormatError(name, "its data is not a set of fields")
    unknown = sorted(str(k) for k in fields if k not in FIELDS)
    if unknown:
        shown = ", ".join(repr(k) if _SHOWN_KEY.fullmatch(k) else "(unprintable)" for k in unknown)
        raise SecretFormatError(name, f"unknown field {shown}: the fields are {', '.join(FIELDS)}")
    kind_text = _text(name, fields, "kind") or "basic"
    kind = _KINDS.get(kind_text)
    if kind is None:
        raise SecretFormatError(name, "field kind must be basic or token")
    password = fields.get("password")  # kept exactly: spaces may be part of a password
    if not isinstance(password, str) or not password:
        raise SecretFormatError(name, "field password is missing, empty or not text")
    username = _text(name, fields, "username") or (TOKEN_USERNAME if kind is Kind.TOKEN else "")
    if not username:
        raise SecretFormatError(name, "field username is missing (a basic repository needs one)")
    record = UpstreamRecord(
        name=name,
        username=username,
        kind=kind,
        urls=parse_urls(name, fields.get("urls")),
        expires_at=_expires_at(name, _text(name, fields, "expires_at")),
        created_at=updated_at,
        updated_at=updated_at,
    )
    return UpstreamSecret(record, SecretStr(password))


def parse_urls(name: str, value: object) -> tuple[str, ...]:
    """A secret's ``urls``: one URL, several separated by spaces or commas, or a JSON list
    (as a list, or as text starting with ``[``). Each must be an http or https URL without a
    password; duplicates are dropped, the order kept.

    Raises:
        SecretFormatError: a URL is refused or the list is not valid.
    """
    if value is None:
        return ()
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise SecretFormatError(
                name, "field urls starts with '[' but is no JSON list"
            ) from None
    if isinstance(value, str):
        items: list[object] = [u for u in _URL_SEPARATORS.split(value.strip()) if u]
    elif isinstance(value, list):
        items = value
    else:
        raise SecretFormatError(name, "field urls must be text or a list of URLs")
    urls: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise SecretFormatError(name, "field urls must list URLs as text")
        try:
            urls[check_url(item)] = None
        except BadRequestError as exc:  # its message never quotes the URL
            raise SecretFormatError(name, f"field urls: {exc.message}") from None
    return tuple(urls)


def _text(name: str, fields: Mapping[object, object], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SecretFormatError(name, f"field {key} must be text")
    return value.strip()


def _expires_at(name: str, text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SecretFormatError(
            name, "field expires_at must be an ISO 8601 time, e.g. 2027-01-31T00:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise SecretFormatError(
            name, "field expires_at must name its time zone, e.g. 2027-01-31T00:00:00Z"
        )
    return when
