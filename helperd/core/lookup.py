"""Repository lookup: which record answers a name, a URL, a ``host[:port]`` or a keyring service.

Pure: records and a query in, one record or an error out; ``now`` is a parameter.
The rules, with examples, are in ``docs/lookup.md``. A `Catalog` (`helperd.core.catalog`,
re-exported here) indexes one version of a store's records (names, URL origins and hosts as
dict keys), so that a lookup costs the same with 10 records as with 100,000; the service
builds one per store version and reuses it.
Messages name repositories, usernames and redacted URLs only: a record holds no password, and
URL userinfo is never shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from helperd_client.errors import BadRequestError, NotFoundError
from helperd_client.names import DEFAULT_PORTS, TOOL_PREFIXES

from helperd.core.catalog import Catalog, _Host, _parse_host, _parse_url, _Url
from helperd.core.record import NAME_PATTERN, TOKEN_USERNAME, Kind, Record

__all__ = ["Catalog", "Query", "check_url", "find", "owns", "redact_url", "write_target"]


@dataclass(frozen=True)
class Query:
    """What a ``get`` asks for: exactly one of ``name``, ``url`` or ``service``.

    Attributes:
        name: a repository name, compared exactly (case kept, as Poetry does).
        url: an index or upload URL.
        service: a raw keyring service, classified as a name, ``poetry-repository-NAME``,
            ``pdm-pypi-NAME``, a URL or ``host[:port]`` (see `find`).
        username: when given, must match the stored username (``__token__`` matches any token).
    """

    name: str | None = None
    url: str | None = None
    service: str | None = None
    username: str | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.name, self.url, self.service) if v is not None]
        if len(given) != 1:
            raise BadRequestError("give exactly one of name, url or service")
        if not given[0]:
            raise BadRequestError("name, url or service must not be empty")


def _catalog(records: Catalog | Iterable[Record]) -> Catalog:
    return records if isinstance(records, Catalog) else Catalog(records)


def find(records: Catalog | Iterable[Record], query: Query, now: datetime) -> Record:
    """The record that answers ``query`` at ``now``.

    Args:
        records: a `Catalog`, or records to index for this one lookup.
        query: what is asked.
        now: the time expiry is judged at.

    Raises:
        BadRequestError: ``query.url`` is not a URL with a scheme and a host.
        NotFoundError: nothing matches, every match has expired (the message says when),
            or a ``host[:port]`` matches several repositories (the message names them).
    """
    catalog = _catalog(records)
    target: str | _Url | _Host | None
    if query.name is not None:
        target, asked = query.name, query.name
    elif query.url is not None:
        target, asked = _parse_url(query.url), query.url
        if target is None:
            raise BadRequestError("url must be a URL with a scheme and a host")
    else:
        assert query.service is not None  # Query holds exactly one
        target, asked = _classify(catalog, query.service), query.service
        if target is None:
            return _generic(catalog.generic(asked), asked, query.username, now)
    if isinstance(target, str):
        return _by_name(catalog.named(target), target, query.username, now)
    if isinstance(target, _Url):
        return _by_url(catalog.under(target), asked, query.username, now)
    return _by_host(catalog.on_host(target), asked, query.username, now)


def owns(records: Catalog | Iterable[Record], service: str, now: datetime) -> bool:
    """Whether helperd owns the keyring ``service`` (SPEC.md, "Records").

    It does when ``service`` is a held repository name, ``poetry-repository-<held name>``,
    pdm's ``pdm-pypi-<held name>``, or a URL or ``host[:port]`` matching a URL of a held
    basic or token record.
    An expired record still owns its service, so that ``get`` says it expired rather than
    falling back to a generic entry; ``now`` is taken so that callers pass one clock everywhere.
    """
    del now  # ownership does not depend on expiry (see above)
    return _classify(_catalog(records), service) is not None


def write_target(
    records: Catalog | Iterable[Record], service: str, username: str
) -> tuple[str, Kind]:
    """Where a keyring write of (``service``, ``username``) lands: a record name and kind.

    ``poetry-repository-NAME`` and ``pdm-pypi-NAME`` always mean repository NAME (Poetry's
    write-through creates it); another owned service means the repository that owns it,
    expired or not (for a URL, the longest stored prefix); anything else is a generic entry
    named ``service``.
    A repository write is a token when ``username`` is ``__token__``, else basic.

    Raises:
        BadRequestError: a ``host[:port]`` or URL owned by several repositories.
    """
    catalog = _catalog(records)
    kind = Kind.TOKEN if username == TOKEN_USERNAME else Kind.BASIC
    named = _tool_name(service)
    if named and NAME_PATTERN.fullmatch(named):
        return named, kind
    target = _classify(catalog, service)
    if target is None:
        return service, Kind.GENERIC
    if isinstance(target, str):
        return target, kind
    if isinstance(target, _Url):
        scored = catalog.under(target)
        longest = max(scored.values())
        owners = {r.name for r, n in scored.items() if n == longest}
    else:
        owners = {r.name for r in catalog.on_host(target)}
    if len(owners) > 1:
        raise BadRequestError(
            f"{_shown(service)} belongs to several repositories ({', '.join(sorted(owners))}):"
            " store it by repository name instead"
        )
    return owners.pop(), kind


def _tool_name(service: str) -> str | None:
    """NAME when ``service`` is a tool's service for repository NAME (`TOOL_PREFIXES`)."""
    for prefix in TOOL_PREFIXES:
        if service.startswith(prefix):
            return service[len(prefix) :]
    return None


def _classify(catalog: Catalog, service: str) -> str | _Url | _Host | None:
    """What an owned ``service`` asks for: a name, a URL or a host; None when not owned."""
    named = _tool_name(service)
    if named and catalog.named(named):
        return named
    if "://" in service:
        url = _parse_url(service)
        return url if url is not None and catalog.under(url) else None
    if catalog.named(service):
        return service
    host = _parse_host(service)
    return host if host is not None and catalog.on_host(host) else None


def check_url(url: str) -> str:
    """Validate a URL for ``set``: http or https, a host, no password; return it unchanged.

    Messages never quote the URL, so they cannot leak its userinfo.

    Raises:
        BadRequestError: the URL is refused; the message says why.
    """
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise BadRequestError("a URL must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise BadRequestError("not a valid URL") from None
    if parts.password:
        raise BadRequestError(
            "a URL must not carry a password in its userinfo: give the password on stdin "
            "or at the prompt instead (nothing was stored)"
        )
    if parts.scheme not in DEFAULT_PORTS:
        got = f"{parts.scheme!r}" if parts.scheme else "none"
        raise BadRequestError(f"a URL's scheme must be http or https (got {got})")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise BadRequestError("a URL's port must be a number from 0 to 65535") from None
    if not parts.hostname:
        raise BadRequestError("a URL must name a host")
    return url


def redact_url(url: str) -> str:
    """``url`` with any userinfo (``user:password@``) removed, for messages and logs.

    Works on malformed input too: it never raises.
    """
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    end = next((i for i in range(start, len(url)) if url[i] in "/?#"), len(url))
    at = url.rfind("@", start, end)
    if at < 0:
        return url
    return url[:start] + url[at + 1 :]


# --- the rules ---------------------------------------------------------------------------------


def _by_name(named: list[Record], name: str, username: str | None, now: datetime) -> Record:
    if not named:
        raise NotFoundError(f"no record named {name!r}")
    matches = [r for r in named if _username_ok(r, username)]
    if not matches:
        raise NotFoundError(f"no record named {name!r} with username {username!r}")
    return _select(_live(matches, now))


# The messages below show the asked URL or host through _shown, built only when one fails.


def _by_url(scored: dict[Record, int], url: str, username: str | None, now: datetime) -> Record:
    if not scored:
        raise NotFoundError(f"no record matches URL {_shown(url)}")
    matches = [r for r in scored if _username_ok(r, username)]
    if not matches:
        raise NotFoundError(f"no record matching URL {_shown(url)} has username {username!r}")
    live = _live(matches, now, lambda: f"URL {_shown(url)}")
    longest = max(scored[r] for r in live)
    return _select([r for r in live if scored[r] == longest])


def _by_host(on_host: list[Record], host: str, username: str | None, now: datetime) -> Record:
    if not on_host:
        raise NotFoundError(f"no record matches host {_shown(host)}")
    matches = [r for r in on_host if _username_ok(r, username)]
    if not matches:
        raise NotFoundError(f"no record on host {_shown(host)} has username {username!r}")
    live = _live(matches, now, lambda: f"host {_shown(host)}")
    names = sorted({r.name for r in live})
    if len(names) > 1:
        hint = "give the URL" if username is not None else "give --username or the URL"
        raise NotFoundError(
            f"no record chosen: host {_shown(host)} is ambiguous, repositories"
            f" {', '.join(names)} match; {hint}"
        )
    return _select(live)


def _generic(entries: list[Record], service: str, username: str | None, now: datetime) -> Record:
    matches = [r for r in entries if username is None or r.username == username]
    if not matches:
        who = "" if username is None else f" with username {username!r}"
        raise NotFoundError(f"no record for service {_shown(service)!r}{who}")
    return _select(_live(matches, now))


def _username_ok(record: Record, username: str | None) -> bool:
    if username is None:
        return True
    if username == TOKEN_USERNAME:
        # Poetry asks for __token__ whatever the token's own username (CodeArtifact: aws);
        # a basic record never answers it, so that Poetry goes on to the basic username.
        return record.kind is Kind.TOKEN
    return record.username == username


def _live(
    matches: Sequence[Record], now: datetime, subject: Callable[[], str] | None = None
) -> list[Record]:
    live = [r for r in matches if not r.expired(now)]
    if not live:
        gone = "; ".join(
            f"{'entry' if r.kind is Kind.GENERIC else 'repository'} {r.name!r} "
            f"(username {r.username!r}) expired at {_iso(r.expires_at)}"
            for r in sorted(matches, key=lambda r: r.key)
        )
        raise NotFoundError(
            f"no record still valid for {subject()}: {gone}"
            if subject
            else f"no record still valid: {gone}"
        )
    return live


def _select(candidates: Sequence[Record]) -> Record:
    # Basic before token (SPEC), then the most recently updated; the rest only makes ties stable.
    return max(
        candidates,
        key=lambda r: (r.kind is Kind.BASIC, r.updated_at, r.created_at, r.name, r.username),
    )


def _iso(when: datetime | None) -> str:
    return "never" if when is None else when.astimezone(UTC).isoformat()


def _shown(url: str) -> str:
    """A URL fit for a message: no userinfo, no query or fragment (tokens hide there too)."""
    redacted = redact_url(url)
    scheme_end = redacted.find("://")
    cut = [i for i in (redacted.find("?", scheme_end + 1), redacted.find("#")) if i >= 0]
    return redacted[: min(cut)] if cut else redacted
