"""What helperctl's commands print, and the messages they share.

Standard output carries only what was asked for; every text shown from a record goes through
`printable` (control characters could drive a terminal) and every URL through `shown_url`
(userinfo is never printed, SPEC.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from helperd_client import RecordInfo

__all__ = [
    "LOCKED",
    "NO_STORE",
    "emit_json",
    "iso",
    "printable",
    "record_json",
    "shown_url",
    "when",
]

NO_STORE = "no store exists yet: create it with `helperctl init`"
LOCKED = "the store is locked: `helperctl unlock` opens it"


def emit_json(data: object) -> None:
    """Print ``data`` as indented JSON, non-ASCII kept."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def record_json(info: RecordInfo) -> dict[str, Any]:
    """A record's facts as ``--json`` prints them (URLs without userinfo)."""
    urls = [shown_url(u) for u in info.urls]
    data: dict[str, Any] = {
        "name": info.name,
        "urls": urls,
        "url": urls[0] if urls else None,
        "username": info.username,
        "kind": info.kind,
        "expires_at": iso(info.expires_at),
        "expired": info.expired,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
        "source": info.source,
    }
    if info.provider is not None:  # a provider record: expires_at is its current token's
        data.update(provider=info.provider, provider_error=info.provider_error)
    return data


def iso(moment: datetime | None) -> str | None:
    """ISO 8601, or None."""
    return None if moment is None else moment.isoformat()


def when(moment: datetime) -> str:
    """A time as tables show it, in UTC to the minute."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def printable(text: str) -> str:
    """``text``, or its repr when it holds control characters (they could drive a terminal)."""
    return text if text.isprintable() else repr(text)


def shown_url(url: str) -> str:
    """``url`` without userinfo: SPEC.md says userinfo is never printed."""
    if "@" not in url:
        return url  # nothing to redact: spare the import
    from helperd.core.lookup import redact_url  # noqa: PLC0415 - it brings pydantic: load on demand

    return redact_url(url)
