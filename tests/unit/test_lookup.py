"""The lookup rules of docs/lookup.md, one table row per behaviour; time is fixed, never read."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from helperd_client.errors import BadRequestError, NotFoundError

from helperd.core import catalog as catalog_module
from helperd.core.lookup import Catalog, Query, check_url, find, owns, redact_url
from helperd.core.record import TOKEN_USERNAME, Kind, Record

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def rec(
    name: str,
    username: str,
    kind: Kind = Kind.BASIC,
    *urls: str,
    day: int = 0,
    expires: datetime | None = None,
) -> Record:
    """A record created at EPOCH and updated ``day`` days later."""
    return Record(
        name=name,
        username=username,
        kind=kind,
        urls=urls,
        expires_at=expires,
        created_at=EPOCH,
        updated_at=EPOCH + timedelta(days=day),
    )


PKGS = "https://pkgs.example.test/simple/"
WORLD = (
    # One name with two basics and a newer token: a name-only get picks the newest basic.
    rec("foo", "alice", Kind.BASIC, PKGS, day=1),
    rec("foo", "bob", Kind.BASIC, PKGS, day=2),
    rec("foo", TOKEN_USERNAME, Kind.TOKEN, PKGS, day=3),
    rec("codeartifact", "aws", Kind.TOKEN, "https://ca.example.test:8443/pypi/repo/simple/"),
    rec("local", "carol", Kind.BASIC, "http://127.0.0.1:8080/simple/"),
    rec("v6", "dave", Kind.BASIC, "http://[::1]:3141/root/pypi/"),
    # Two repositories on one host, told apart by path or username.
    rec("team-a", "erin", Kind.BASIC, "https://shared.example.test/a/simple/"),
    rec("team-b", "frank", Kind.BASIC, "https://shared.example.test/b/simple/"),
    # Nested paths on one host: the longest stored prefix wins.
    rec("corp", "gina", Kind.BASIC, "https://corp.example.test/"),
    rec("corp-simple", "hank", Kind.BASIC, "https://corp.example.test/simple"),
    rec("MyRepo", "ivan", Kind.BASIC, "HTTPS://Mixed.Example.TEST/Path/"),
    rec("def", "max", Kind.BASIC, "https://def.example.test:443/simple/"),
    rec("plain", "nina", Kind.BASIC, "http://plain.example.test/simple"),
    rec("old", "jack", Kind.TOKEN, "https://old.example.test/simple/", expires=NOW),
    # A name with an expired basic and a live token: the token is served.
    rec("mix", "olga", Kind.BASIC, "https://mix.example.test/", day=9, expires=NOW - timedelta(1)),
    rec("mix", TOKEN_USERNAME, Kind.TOKEN, "https://mix.example.test/", day=1),
    rec("later", "pat", Kind.BASIC, "https://later.example.test/", expires=NOW + timedelta(1)),
    # Generic keyring entries: name is the raw service.
    rec("my-app", "kim", Kind.GENERIC, day=1),
    rec("my-app", "kim2", Kind.GENERIC, day=2),
    rec("foo", "lee", Kind.GENERIC),
    rec("pkgs.example.test", "zed", Kind.GENERIC),
    rec("https://other.example.test/x", "quinn", Kind.GENERIC),
)

FOUND = [
    # rule 2: names
    pytest.param(Query(name="foo"), ("foo", "bob"), id="name-default-picks-latest-basic"),
    pytest.param(Query(name="foo", username="alice"), ("foo", "alice"), id="name-username"),
    pytest.param(Query(name="foo", username="__token__"), ("foo", "__token__"), id="name-token"),
    pytest.param(Query(name="MyRepo"), ("MyRepo", "ivan"), id="name-case-kept"),
    pytest.param(Query(name="codeartifact"), ("codeartifact", "aws"), id="name-token-only"),
    pytest.param(
        Query(name="codeartifact", username="__token__"),
        ("codeartifact", "aws"),
        id="token-username-matches-any-token",
    ),
    pytest.param(Query(name="mix"), ("mix", "__token__"), id="name-skips-expired-basic"),
    pytest.param(Query(name="later"), ("later", "pat"), id="name-expires-in-future"),
    # rule 3: services
    pytest.param(
        Query(service="poetry-repository-foo", username="alice"),
        ("foo", "alice"),
        id="service-poetry-prefix",
    ),
    pytest.param(
        Query(service="poetry-repository-foo", username="__token__"),
        ("foo", "__token__"),
        id="service-poetry-prefix-token",
    ),
    pytest.param(
        Query(service="pdm-pypi-foo", username="alice"), ("foo", "alice"), id="service-pdm-prefix"
    ),
    pytest.param(Query(service="foo"), ("foo", "bob"), id="service-held-name-beats-generic"),
    pytest.param(Query(service=PKGS), ("foo", "bob"), id="service-url"),
    pytest.param(Query(service="my-app"), ("my-app", "kim2"), id="generic-latest"),
    pytest.param(Query(service="my-app", username="kim"), ("my-app", "kim"), id="generic-user"),
    pytest.param(
        Query(service="https://other.example.test/x", username="quinn"),
        ("https://other.example.test/x", "quinn"),
        id="generic-url-not-owned",
    ),
    # rule 4: URLs
    pytest.param(Query(url=PKGS), ("foo", "bob"), id="url-exact"),
    pytest.param(Query(url=PKGS.rstrip("/")), ("foo", "bob"), id="url-asked-without-slash"),
    pytest.param(Query(url=PKGS + "pkg/"), ("foo", "bob"), id="url-below-stored"),
    pytest.param(
        Query(url="http://plain.example.test/simple/"), ("plain", "nina"), id="url-stored-no-slash"
    ),
    pytest.param(
        Query(url="HTTPS://PKGS.Example.Test/simple/"), ("foo", "bob"), id="url-scheme-host-case"
    ),
    pytest.param(
        Query(url="https://mixed.example.test/Path/x"), ("MyRepo", "ivan"), id="url-stored-upper"
    ),
    pytest.param(
        Query(url="https://pkgs.example.test:443/simple/"), ("foo", "bob"), id="url-default-port"
    ),
    pytest.param(
        Query(url="https://def.example.test/simple/x/"), ("def", "max"), id="url-stored-port-443"
    ),
    pytest.param(
        Query(url="https://u:secret@pkgs.example.test/simple/?q=1#f"),
        ("foo", "bob"),
        id="url-userinfo-query-fragment-ignored",
    ),
    pytest.param(
        Query(url="https://corp.example.test/simple/pkg/"),
        ("corp-simple", "hank"),
        id="url-longest-prefix",
    ),
    pytest.param(
        Query(url="https://corp.example.test/simplex/"), ("corp", "gina"), id="url-segment-boundary"
    ),
    pytest.param(Query(url="https://corp.example.test"), ("corp", "gina"), id="url-root"),
    pytest.param(
        Query(url="https://corp.example.test/simple/", username="gina"),
        ("corp", "gina"),
        id="url-username-before-longest",
    ),
    pytest.param(
        Query(url="https://shared.example.test/b/simple/pkg"),
        ("team-b", "frank"),
        id="url-shared-host-by-path",
    ),
    pytest.param(Query(url="http://[::1]:3141/root/pypi/+simple/"), ("v6", "dave"), id="url-ipv6"),
    pytest.param(
        Query(url="https://ca.example.test:8443/pypi/repo/simple/", username="__token__"),
        ("codeartifact", "aws"),
        id="url-token-username",
    ),
    # rule 5: host[:port]
    pytest.param(Query(service="pkgs.example.test"), ("foo", "bob"), id="host-unique"),
    pytest.param(Query(service="PKGS.example.test"), ("foo", "bob"), id="host-case"),
    pytest.param(Query(service="pkgs.example.test:443"), ("foo", "bob"), id="host-default-port"),
    pytest.param(Query(service="def.example.test"), ("def", "max"), id="host-stored-port-443"),
    pytest.param(Query(service="plain.example.test:80"), ("plain", "nina"), id="host-http-80"),
    pytest.param(Query(service="127.0.0.1:8080"), ("local", "carol"), id="host-ipv4-port"),
    pytest.param(
        Query(service="ca.example.test:8443"), ("codeartifact", "aws"), id="host-explicit-port"
    ),
    pytest.param(Query(service="[::1]:3141"), ("v6", "dave"), id="host-ipv6-port"),
    pytest.param(Query(service="[0:0::1]:3141"), ("v6", "dave"), id="host-ipv6-normalised"),
    pytest.param(
        Query(service="shared.example.test", username="erin"),
        ("team-a", "erin"),
        id="host-ambiguous-resolved-by-username",
    ),
    pytest.param(
        Query(service="pkgs.example.test", username="alice"),
        ("foo", "alice"),
        id="host-username",
    ),
]


SHARED = Catalog(WORLD)
"""One catalog for every query, as the service keeps one per store version."""


@pytest.mark.parametrize(("query", "expected"), FOUND)
def test_finds(query: Query, expected: tuple[str, str]) -> None:
    """The query is answered by the (name, username) record the rules pick, whether the
    records come as they are or as a catalog built once and queried again and again."""
    assert expected == find(WORLD, query, NOW).key
    assert expected == find(SHARED, query, NOW).key


NOT_FOUND = [
    pytest.param(Query(name="nope"), "no record named 'nope'", id="name-unknown"),
    pytest.param(Query(name="myrepo"), "no record named 'myrepo'", id="name-case-sensitive"),
    pytest.param(Query(name="my-app"), "no record named", id="name-never-generic"),
    pytest.param(Query(name="foo", username="zoe"), "with username 'zoe'", id="name-user-unknown"),
    pytest.param(
        Query(name="local", username="__token__"), "'__token__'", id="basic-never-answers-token"
    ),
    pytest.param(
        Query(name="old"),
        "'old' (username 'jack') expired at 2025-06-01T12:00:00+00:00",
        id="expired-at-now",
    ),
    pytest.param(
        Query(name="mix", username="olga"),
        "expired at 2025-05-31T12:00:00+00:00",
        id="expired-username",
    ),
    pytest.param(
        Query(url="https://old.example.test/simple/pkg/"), "expired at", id="expired-by-url"
    ),
    pytest.param(Query(service="old.example.test"), "expired at", id="expired-by-host"),
    pytest.param(
        Query(service="poetry-repository-old"), "expired at", id="expired-owned-no-generic"
    ),
    pytest.param(
        Query(url="https://mixed.example.test/path/"),
        "no record matches URL",
        id="url-path-case-sensitive",
    ),
    pytest.param(
        Query(url="http://pkgs.example.test/simple/"), "no record matches", id="url-scheme"
    ),
    pytest.param(
        Query(url="https://pkgs.example.test:8443/simple/"), "no record", id="url-other-port"
    ),
    pytest.param(
        Query(url="https://pkgs.example.test/simplex/"), "no record", id="url-not-segment"
    ),
    pytest.param(Query(url="https://pkgs.example.test/"), "no record", id="url-above-stored"),
    pytest.param(Query(url=PKGS, username="zoe"), "has username 'zoe'", id="url-username-unknown"),
    pytest.param(
        Query(service="shared.example.test"),
        "host shared.example.test is ambiguous, repositories team-a, team-b match; give --username",
        id="host-ambiguous",
    ),
    pytest.param(
        Query(service="corp.example.test"), "repositories corp, corp-simple", id="host-ambiguous-2"
    ),
    pytest.param(
        Query(service="pkgs.example.test:8443"), "no record for service", id="host-other-port"
    ),
    pytest.param(
        Query(service="ca.example.test"), "no record for service", id="host-needs-its-port"
    ),
    pytest.param(
        Query(service="plain.example.test:443"), "no record for service", id="host-wrong-default"
    ),
    pytest.param(
        Query(service="foo", username="lee"),
        "no record named 'foo' with username 'lee'",
        id="owned-name-no-generic-fallback",
    ),
    pytest.param(
        Query(service="pkgs.example.test", username="zed"),
        "has username 'zed'",
        id="owned-host-no-generic-fallback",
    ),
    pytest.param(
        Query(service="my-app", username="nobody"),
        "no record for service 'my-app' with username",
        id="generic-user-unknown",
    ),
    pytest.param(
        Query(service="poetry-repository-nope"), "no record for service", id="poetry-prefix-unheld"
    ),
    pytest.param(
        Query(service="pdm-pypi-old"), "expired at", id="pdm-prefix-expired-owned-no-generic"
    ),
    pytest.param(
        Query(service="https://u:hunter2@nowhere.example.test/?token=t0ps3cret"),
        "no record for service 'https://nowhere.example.test/'",
        id="generic-message-redacted",
    ),
    pytest.param(
        Query(url="https://u:hunter2@nowhere.example.test/x?token=t0ps3cret"),
        "no record matches URL https://nowhere.example.test/x",
        id="url-message-redacted",
    ),
]


@pytest.mark.parametrize(("query", "message"), NOT_FOUND)
def test_not_found(query: Query, message: str) -> None:
    """Nothing is served; the message starts "no record", explains why and never shows
    userinfo or a query."""
    with pytest.raises(NotFoundError) as caught:
        find(WORLD, query, NOW)
    assert caught.value.message.startswith("no record"), caught.value.message
    assert message in caught.value.message
    assert "hunter2" not in caught.value.message
    assert "t0ps3cret" not in caught.value.message
    with pytest.raises(NotFoundError) as again:
        find(SHARED, query, NOW)
    assert caught.value.message == again.value.message


def test_latest_basic_among_several_names() -> None:
    """Records of one URL under several names: the most recently updated basic wins."""
    records = [
        rec("a", "x", Kind.BASIC, PKGS, day=1),
        rec("b", "y", Kind.BASIC, PKGS, day=5),
        rec("c", "z", Kind.TOKEN, PKGS, day=9),
    ]
    assert find(records, Query(url=PKGS), NOW).key == ("b", "y")


def test_host_unique_once_others_expired() -> None:
    """An expired repository on a host does not make the host ambiguous."""
    records = [
        rec("a", "x", Kind.BASIC, PKGS, expires=NOW - timedelta(1)),
        rec("b", "y", Kind.BASIC, PKGS),
    ]
    assert find(records, Query(service="pkgs.example.test"), NOW).key == ("b", "y")


OWNS = [
    pytest.param("foo", True, id="held-name"),
    pytest.param("poetry-repository-foo", True, id="poetry-prefix"),
    pytest.param("poetry-repository-MyRepo", True, id="poetry-prefix-case"),
    pytest.param("poetry-repository-myrepo", False, id="poetry-prefix-case-differs"),
    pytest.param("poetry-repository-my-app", False, id="poetry-prefix-generic-name"),
    pytest.param("pdm-pypi-foo", True, id="pdm-prefix"),
    pytest.param("pdm-pypi-my-app", False, id="pdm-prefix-generic-name"),
    pytest.param("my-app", False, id="generic-name"),
    pytest.param(PKGS + "pkg/", True, id="url"),
    pytest.param("https://files.pythonhosted.org/packages/", False, id="url-unheld"),
    pytest.param("https://pkgs.example.test:bad/", False, id="url-bad-port"),
    pytest.param("pkgs.example.test", True, id="host"),
    pytest.param("shared.example.test", True, id="host-ambiguous"),
    pytest.param("127.0.0.1:8080", True, id="host-port"),
    pytest.param("127.0.0.1", False, id="host-missing-port"),
    pytest.param("[::1]:3141", True, id="ipv6"),
    pytest.param("::1", False, id="bare-ipv6-default-port"),
    pytest.param("old.example.test", True, id="expired-still-owned"),
    pytest.param("Docker Credentials", False, id="not-host-shaped"),
    pytest.param("alice@pkgs.example.test", False, id="userinfo-not-a-host"),
]


@pytest.mark.parametrize(("service", "owned"), OWNS)
def test_owns(service: str, owned: bool) -> None:
    """helperd owns held names, poetry-repository-NAME, pdm-pypi-NAME and held URLs and
    hosts, nothing else."""
    assert owned == owns(WORLD, service, NOW)


ACCEPTED_URLS = [
    pytest.param("https://pkgs.example.test/simple/", id="https"),
    pytest.param("http://127.0.0.1:8080/simple", id="http-port"),
    pytest.param("HTTPS://Host.Example.Test", id="upper-case"),
    pytest.param("http://[::1]:3141/root/", id="ipv6"),
    pytest.param("https://alice@pkgs.example.test/simple/", id="username-only"),
]


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_check_url_accepts(url: str) -> None:
    """An http(s) URL with a host and no password is returned unchanged."""
    assert url == check_url(url)


REFUSED_URLS = [
    pytest.param("ftp://pkgs.example.test/", "http or https (got 'ftp')", id="ftp"),
    pytest.param("pkgs.example.test/simple", "http or https (got none)", id="no-scheme"),
    pytest.param("https:///simple/", "must name a host", id="no-host"),
    pytest.param("https://:8080/", "must name a host", id="port-no-host"),
    pytest.param("https://pkgs.example.test:99999/", "port", id="port-too-big"),
    pytest.param("https://pkgs.example.test:x/", "port", id="port-not-number"),
    pytest.param("https://h.example.test/\nx", "whitespace", id="newline"),
    pytest.param("https://alice:hunter2@pkgs.example.test/", "password", id="password"),
    pytest.param("https://alice:hunter2@h:bad/", "password", id="password-and-bad-port"),
    pytest.param("ftp://alice:hunter2@h/", "password", id="password-and-ftp"),
    pytest.param("https://[::1/", "not a valid URL", id="broken-ipv6"),
]


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_check_url_refuses(url: str, message: str) -> None:
    """A refused URL is a bad request whose message never quotes the URL's userinfo."""
    with pytest.raises(BadRequestError) as caught:
        check_url(url)
    assert message in caught.value.message
    assert "hunter2" not in caught.value.message
    assert "hunter2" not in repr(caught.value)


REDACTED = [
    pytest.param("https://alice:hunter2@h.test/simple/", "https://h.test/simple/", id="user-pass"),
    pytest.param("https://alice@h.test:8443/x", "https://h.test:8443/x", id="user-only"),
    pytest.param("https://h.test/a@b", "https://h.test/a@b", id="at-in-path-kept"),
    pytest.param("https://a:p@ss@h.test/", "https://h.test/", id="at-in-password"),
    pytest.param("https://h.test/?q=x", "https://h.test/?q=x", id="no-userinfo"),
    pytest.param("alice:hunter2@h.test:80", "h.test:80", id="no-scheme"),
    pytest.param("https://u:p@[::1", "https://[::1", id="malformed"),
]


@pytest.mark.parametrize(("url", "expected"), REDACTED)
def test_redact_url(url: str, expected: str) -> None:
    """Userinfo is removed and nothing else changes, even for malformed URLs."""
    assert expected == redact_url(url)


BAD_QUERIES = [
    pytest.param({}, id="none"),
    pytest.param({"name": "foo", "url": PKGS}, id="name-and-url"),
    pytest.param({"url": PKGS, "service": "foo"}, id="url-and-service"),
    pytest.param({"name": ""}, id="empty-name"),
    pytest.param({"username": "alice"}, id="username-alone"),
]


@pytest.mark.parametrize("fields", BAD_QUERIES)
def test_query_needs_exactly_one_target(fields: dict[str, str]) -> None:
    """A query names exactly one of name, url or service, not empty."""
    with pytest.raises(BadRequestError):
        Query(**fields)


@pytest.mark.parametrize("url", ["pkgs.example.test/simple", "https:///simple"], ids=str)
def test_query_url_must_be_a_url(url: str) -> None:
    """A url query without a scheme or a host is a bad request, not a miss."""
    with pytest.raises(BadRequestError):
        find(WORLD, Query(url=url), NOW)


def test_catalog_keeps_the_tuple_it_was_given() -> None:
    """The service tells a stale catalog by the identity of the store's records tuple."""
    assert SHARED.records is WORLD
    assert Catalog(list(WORLD)).records == WORLD


def test_catalog_of_the_next_version_reuses_parsed_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a change, only the records the previous catalog did not hold are parsed, and the
    new catalog answers as one built from nothing."""
    parsed: list[Record] = []
    urls_of = catalog_module._urls

    def counting(record: Record) -> object:
        parsed.append(record)
        return urls_of(record)

    monkeypatch.setattr(catalog_module, "_urls", counting)
    added = rec("added", "zoe", Kind.BASIC, "https://added.example.test/simple/")
    changed = rec("corp", "gina", Kind.BASIC, "https://elsewhere.example.test/")
    records = (*(r for r in WORLD if r.key != changed.key), added, changed)

    catalog = Catalog(records, previous=SHARED)

    assert [added, changed] == parsed
    url = "https://elsewhere.example.test/simple/"
    assert ("corp", "gina") == find(catalog, Query(url=url), NOW).key
    assert ("added", "zoe") == find(catalog, Query(service="added.example.test"), NOW).key
    with pytest.raises(NotFoundError):
        find(catalog, Query(url="https://corp.example.test/x/"), NOW)


def _tables(catalog: Catalog) -> tuple[object, ...]:
    """Everything a catalog answers from, comparable with another catalog's."""
    parsed = {key: (record.key, urls) for key, (record, urls) in catalog._parsed.flat().items()}
    tables = (catalog._named, catalog._generic, catalog._origins, catalog._hosts)
    return (*(table.flat() for table in tables), parsed, dict(catalog.specials))


def test_a_catalog_that_follows_its_previous_version_equals_one_built_from_nothing() -> None:
    """Built from the previous version's tables by its few differences (records added,
    removed, replaced, generic or not), a catalog holds exactly what a full build holds, in
    the same order, and leaves the previous catalog as it was. Records come sorted by key,
    as stores hand them out."""
    world = tuple(sorted(WORLD, key=lambda r: r.key))
    previous = Catalog(world)
    before = _tables(previous)
    added = rec("added", "zoe", Kind.BASIC, "https://pkgs.example.test/simple/")
    changed = rec("corp", "gina", Kind.BASIC, "https://elsewhere.example.test/")
    generic = rec("someapp", "sam", Kind.GENERIC)
    gone = world[0]
    kept = [r for r in world if r.key not in (changed.key, gone.key)]
    records = tuple(sorted([*kept, added, changed, generic], key=lambda r: r.key))

    followed = Catalog(records, previous=previous)

    assert _tables(Catalog(records)) == _tables(followed)
    assert before == _tables(previous)


def test_accepts_any_iterable() -> None:
    """find and owns read the records once, so a generator will do."""
    assert find((r for r in WORLD), Query(service="foo"), NOW).key == ("foo", "bob")
    assert owns((r for r in WORLD), PKGS, NOW)


def test_catalogs_that_follow_many_versions_fold_their_layers_and_stay_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through 200 versions of a few random changes each (with and without the store's
    delta), a catalog that follows the one before, whose layers fold every few keys, holds
    what a full build holds, and earlier catalogs stay as they were."""
    monkeypatch.setattr(catalog_module, "_FOLD_AT", 5)
    rng = random.Random(5)
    current = {r.key: r for r in WORLD}
    catalog = Catalog(tuple(sorted(current.values(), key=lambda r: r.key)))
    kept: list[tuple[Catalog, tuple[object, ...]]] = []
    for step in range(200):
        before = dict(current)
        for _ in range(rng.randrange(1, 4)):
            if current and rng.random() < 0.4:
                del current[rng.choice(sorted(current))]
                continue
            host = rng.choice(["pkgs.example.test", "corp.example.test", f"h{step}.test"])
            kind = rng.choice([Kind.BASIC, Kind.TOKEN, Kind.GENERIC])
            urls = () if kind is Kind.GENERIC else (f"https://{host}/simple/",)
            new = rec(f"n{rng.randrange(30)}", "u", kind, *urls)
            current[new.key] = new
        removed = [r for k, r in before.items() if current.get(k) is not r]
        added = [r for k, r in current.items() if before.get(k) is not r]
        records = tuple(sorted(current.values(), key=lambda r: r.key))
        delta = (removed, added) if step % 2 else None
        catalog = Catalog(records, previous=catalog, delta=delta)
        assert _tables(Catalog(records)) == _tables(catalog)
        if step % 50 == 0:
            kept.append((catalog, _tables(catalog)))
    assert all(tables == _tables(old) for old, tables in kept)
