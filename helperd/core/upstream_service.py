"""The service's upstream answers: the ``upstream`` op, ``set --upstream``, and the staleness
rule applied to a get (docs/fleet.md, docs/lookup.md).

Pure of I/O itself: it calls the daemon's `helperd.core.upstream_view.Upstream`, whose
``refresh``, ``test`` and ``write`` block on the network, so the service calls these from a
worker thread only (the server never answers the ``upstream`` op or a set on its event loop).
"""

from __future__ import annotations

from datetime import datetime

from helperd_client.errors import BadRequestError, StoreUnavailableError
from pydantic import SecretStr

from helperd.core.lookup import check_url
from helperd.core.protocol import (
    RecordInfo,
    SetRequest,
    SetResult,
    UpstreamRequest,
    UpstreamResult,
    UpstreamSettingsInfo,
    UpstreamState,
    UpstreamTest,
)
from helperd.core.record import NAME_PATTERN, TOKEN_USERNAME, Kind
from helperd.core.upstream_cache import UpstreamCache
from helperd.core.upstream_record import UpstreamRecord
from helperd.core.upstream_view import Upstream, UpstreamWrite

__all__ = ["answer", "password", "refuse_missing", "state", "write"]

NOT_CONFIGURED = (
    "no upstream secret engine is configured: add an [upstream] table to config.toml"
    " (see docs/fleet.md) and restart helperd"
)


def answer(upstream: Upstream | None, request: UpstreamRequest, now: datetime) -> UpstreamResult:
    """Serve the ``upstream`` op: ``show``, ``test`` or ``refresh``.

    Raises:
        BadRequestError: ``test`` or ``refresh`` with no ``[upstream]`` configured.
        StoreUnavailableError: ``refresh`` failed; the message says why and what to fix.
    """
    if upstream is None:
        if request.action == "show":
            return UpstreamResult(configured=False)
        raise BadRequestError(NOT_CONFIGURED)
    tested = None
    if request.action == "test":
        tested = UpstreamTest.model_validate(upstream.test())
    elif request.action == "refresh":
        cache = upstream.refresh()
        last = cache.last
        if last is not None and not last.ok:
            raise StoreUnavailableError(last.message)
        if last is not None:
            now = max(now, last.at)
    cache = upstream.cache
    return UpstreamResult(
        configured=True,
        settings=UpstreamSettingsInfo.model_validate(upstream.settings()),
        status=state(upstream, now),
        test=tested,
    )


def state(upstream: Upstream, now: datetime) -> UpstreamState:
    """The upstream's state at ``now``, for ``status`` and ``upstream show``."""
    return UpstreamState.model_validate(upstream.staleness.status(upstream.cache, now))


def password(
    upstream: Upstream | None, cache: UpstreamCache | None, record: UpstreamRecord, now: datetime
) -> SecretStr:
    """The cached password of the upstream ``record`` a get found in ``cache``.

    Raises:
        StoreUnavailableError: the cache is past ``max_stale``; the message names the
            engine's address.
    """
    assert upstream is not None  # only an upstream cache holds an upstream record
    assert cache is not None
    refused = upstream.staleness.refusal(cache, now)
    if refused is not None:
        raise refused
    return cache.password(record)


def refuse_missing(upstream: Upstream | None, cache: UpstreamCache | None, now: datetime) -> None:
    """Before answering "no record": when the upstream cannot be served (never read, or past
    ``max_stale``), say so instead, since the record may well be upstream.

    Raises:
        StoreUnavailableError: the upstream's cache cannot be served; names the engine.
    """
    if upstream is None or cache is None:
        return
    refused = upstream.staleness.refusal(cache, now)
    if refused is not None:
        raise refused


def write(upstream: Upstream | None, request: SetRequest, now: datetime) -> SetResult:
    """``set --upstream``: write one repository secret to the engine, then refresh, so that
    the next get serves it.

    Raises:
        BadRequestError: no upstream, or a request an upstream secret cannot hold.
        StoreUnavailableError: the engine refused the write (the policy's error names the
            path and the capability) or did not answer.
    """
    if upstream is None:
        raise BadRequestError(NOT_CONFIGURED)
    name = request.name
    if name is None or request.service is not None:
        raise BadRequestError("an upstream secret is written by repository name, not service")
    kind = request.kind or Kind.BASIC
    if kind is Kind.GENERIC:
        raise BadRequestError("an upstream secret is a repository: kind basic or token")
    if not NAME_PATTERN.fullmatch(name):
        raise BadRequestError("a repository name may hold only letters, digits, '.', '_' and '-'")
    if request.url is not None and request.urls is not None:
        raise BadRequestError("give either url or urls, not both")
    asked = [request.url] if request.url is not None else (request.urls or [])
    urls = tuple(dict.fromkeys(check_url(u) for u in asked))
    if request.expires_at is not None and request.expires_at <= now:
        raise BadRequestError("expires_at is in the past")
    username = request.username or (TOKEN_USERNAME if kind is Kind.TOKEN else "")
    if not username:
        raise BadRequestError("an upstream basic secret needs a username")
    if request.password is None:  # a provider record's token is minted locally, not upstream
        raise BadRequestError("an upstream secret needs a password; providers are local only")
    fields = {"username": username, "password": request.password.get_secret_value()}
    fields["kind"] = kind.value
    if urls:
        fields["urls"] = " ".join(urls)
    if request.expires_at is not None:
        fields["expires_at"] = request.expires_at.isoformat()
    replaced = any(r.key == (name, username) for r in upstream.cache.records)
    upstream.write(UpstreamWrite(name, fields))
    upstream.refresh()  # serve it at once; a failed refresh is in status, the write stands
    record = UpstreamRecord(
        name=name,
        username=username,
        kind=kind,
        urls=urls,
        expires_at=request.expires_at,
        created_at=now,
        updated_at=now,
    )
    return SetResult(record=RecordInfo.of(record, now), replaced=replaced)
