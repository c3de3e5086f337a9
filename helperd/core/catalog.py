"""The lookup index: a `Catalog` of one store version's records, and the URL parsing it keys on.

Pure. Names, URL origins and hosts are dict keys, so that a lookup costs the same with 10
records as with 100,000; `helperd.core.lookup` holds the rules that query it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from helperd.core.record import Kind, Record

__all__ = ["Catalog"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_PORT = re.compile(
    r"(?:\[(?P<v6>[^]]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::(?P<port>[0-9]{1,5}))?"
)
_Host = tuple[str, int | None]  # (normalised host, port or None for "the scheme's default")
_Origin = tuple[str, str, int | None]  # (scheme, normalised host, port)


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    port: int | None  # explicit, else the scheme's default, else None
    path: str  # without trailing slashes: "" is the root

    @property
    def default_port(self) -> bool:
        return self.port == _DEFAULT_PORTS.get(self.scheme)


class Catalog:
    """The records of one store version, indexed for lookups: build once, query often.

    Repository names, generic services, URL origins (scheme, host, port) and hosts are dict
    keys; a lookup compares only the records on the origin or host it asks for.

    Args:
        records: the store's records.
        previous: the catalog of the store's previous version. When the two differ by a
            few record objects, the new catalog copies the previous one's tables and changes
            only the entries of those records (a write to a big store then creates a handful
            of objects, not several per record, which keeps the garbage collector's pauses
            off the event loop); otherwise the parsed URLs of every record object the two
            share are taken from it rather than parsed again.

    Attributes:
        records: the records it was built from, in their order (the very tuple it was given).
    """

    def __init__(self, records: Iterable[Record], previous: Catalog | None = None) -> None:
        self.records = records if isinstance(records, tuple) else tuple(records)
        self._named: dict[str, list[Record]] = {}
        self._generic: dict[str, list[Record]] = {}
        self._origins: dict[_Origin, list[tuple[str, Record]]] = {}
        self._hosts: dict[str, list[tuple[_Url, Record]]] = {}
        # id(record) -> (record, its parsed URLs); the record is kept so that an id is
        # trusted only for the very object it was taken from.
        self._parsed: dict[int, tuple[Record, list[_Url]]] = {}
        # id(record) -> record, for every record: how the next version finds what changed.
        self._ids: dict[int, Record] = dict(zip(map(id, self.records), self.records, strict=True))
        if previous is not None and self._follow(previous):
            return
        known = {} if previous is None else previous._parsed
        for record in self.records:
            if record.kind is Kind.CERT:
                continue  # a certificate is never a password: no lookup finds it (certs.py)
            if record.kind is Kind.GENERIC:
                self._generic.setdefault(record.name, []).append(record)
                continue
            self._named.setdefault(record.name, []).append(record)
            held = known.get(id(record))
            urls = held[1] if held is not None and held[0] is record else _urls(record)
            self._parsed[id(record)] = (record, urls)
            for url in urls:
                origin = (url.scheme, url.host, url.port)
                self._origins.setdefault(origin, []).append((url.path, record))
                self._hosts.setdefault(url.host, []).append((url, record))

    def _follow(self, previous: Catalog) -> bool:
        """Build from ``previous`` by its differences, when they are few; tell whether it did."""
        # Set operations on the id tables run in C: no Python loop over every record. An id
        # in both is the same object, as both catalogs hold their records alive.
        ids, before = self._ids, previous._ids
        added_ids, removed_ids = ids.keys() - before.keys(), before.keys() - ids.keys()
        if len(added_ids) + len(removed_ids) > _FOLLOW_AT_MOST:
            return False
        added = sorted((ids[i] for i in added_ids), key=lambda record: record.key)
        removed = [before[i] for i in removed_ids]
        named, generic = dict(previous._named), dict(previous._generic)
        origins, hosts = dict(previous._origins), dict(previous._hosts)
        parsed = dict(previous._parsed)
        for record in removed:
            if record.kind is Kind.CERT:
                continue  # never indexed (see above)
            if record.kind is Kind.GENERIC:
                _drop(generic, record.name, record, _itself)
                continue
            _drop(named, record.name, record, _itself)
            for url in parsed.pop(id(record))[1]:
                origin = (url.scheme, url.host, url.port)
                _drop(origins, origin, record, _item_record)
                _drop(hosts, url.host, record, _item_record)
        for record in added:
            if record.kind is Kind.CERT:
                continue
            if record.kind is Kind.GENERIC:
                _add(generic, record.name, [record], _itself)
                continue
            _add(named, record.name, [record], _itself)
            urls = _urls(record)
            parsed[id(record)] = (record, urls)
            for url in urls:
                origin = (url.scheme, url.host, url.port)
                _add(origins, origin, [(url.path, record)], _item_record)
                _add(hosts, url.host, [(url, record)], _item_record)
        self._named, self._generic, self._origins, self._hosts = named, generic, origins, hosts
        self._parsed = parsed
        return True

    def named(self, name: str) -> list[Record]:
        """The repository records named ``name``."""
        return self._named.get(name, [])

    def generic(self, service: str) -> list[Record]:
        """The generic entries of keyring service ``service``."""
        return self._generic.get(service, [])

    def under(self, asked: _Url) -> dict[Record, int]:
        """The repositories with a URL that prefixes ``asked`` at a path boundary, each with
        the length of its longest such URL path."""
        scored: dict[Record, int] = {}
        for path, record in self._origins.get((asked.scheme, asked.host, asked.port), ()):
            if asked.path == path or asked.path.startswith(path + "/"):
                scored[record] = max(scored.get(record, -1), len(path))
        return scored

    def on_host(self, host: _Host) -> list[Record]:
        """The repositories with a URL on ``host`` (no port: on the scheme's default port)."""
        name, port = host
        found = {
            record: None
            for url, record in self._hosts.get(name, ())
            if (url.port == port if port is not None else url.default_port)
        }
        return list(found)


_FOLLOW_AT_MOST = 64
"""Changed records up to which a catalog follows its previous version (else it is rebuilt)."""

_K = TypeVar("_K")
_V = TypeVar("_V")


def _itself(record: Record) -> Record:
    return record


def _item_record(item: tuple[object, Record]) -> Record:
    return item[1]


def _drop(
    table: dict[_K, list[_V]], key: _K, gone: Record, record_of: Callable[[_V], Record]
) -> None:
    """Replace ``table[key]`` by a copy without the items of ``gone`` (never in place)."""
    kept = [item for item in table.get(key, ()) if record_of(item) is not gone]
    if kept:
        table[key] = kept
    else:
        table.pop(key, None)


def _add(
    table: dict[_K, list[_V]], key: _K, items: list[_V], record_of: Callable[[_V], Record]
) -> None:
    """Replace ``table[key]`` by a copy with ``items``, in record order as a full build has it."""
    table[key] = sorted([*table.get(key, ()), *items], key=lambda item: record_of(item).key)


# --- URLs and hosts ----------------------------------------------------------------------------


_PLAIN_URL = re.compile(
    r"(https?)://([a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*)(?::([0-9]{1,5}))?(/[A-Za-z0-9._~/-]*)?"
)
"""The common index URL (lower-case name host, no userinfo, query or fragment), which
`_parse_url` reads without `urlsplit`: a catalog of 100,000 records parses 100,000 URLs."""


def _parse_url(url: str) -> _Url | None:
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:
        scheme, host, port, path = plain.groups()
        number = _DEFAULT_PORTS[scheme] if port is None else int(port)
        if number <= 65535:
            return _Url(scheme, host, number, (path or "").rstrip("/"))
    return _split_url(url)


def _split_url(url: str) -> _Url | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return _Url(scheme, _normal_host(parts.hostname), port, parts.path.rstrip("/"))


def _parse_host(service: str) -> _Host | None:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address, or None."""
    bare_v6 = _ipv6(service)
    if bare_v6 is not None:
        return (bare_v6, None)
    match = _HOST_PORT.fullmatch(service)
    if match is None or int(match["port"] or 0) > 65535:
        return None
    port = int(match["port"]) if match["port"] else None
    if match["v6"] is None:
        return (_normal_host(match["name"]), port)
    v6 = _ipv6(match["v6"])
    return None if v6 is None else (v6, port)


def _ipv6(text: str) -> str | None:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    host = host.lower()
    if not (host[:1].isdigit() or ":" in host):
        return host  # not an IP address: spare ipaddress its exception (catalogs parse many)
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _urls(record: Record) -> list[_Url]:
    return [u for u in map(_parse_url, record.urls) if u is not None]
