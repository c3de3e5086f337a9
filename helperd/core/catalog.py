"""The lookup index: a `Catalog` of one store version's records, and the URL parsing it keys on.

Pure. Names, URL origins and hosts are dict keys, so that a lookup costs the same with 10
records as with 100,000; `helperd.core.lookup` holds the rules that query it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from helperd_client.names import DEFAULT_PORTS

from helperd.core.record import Kind, Record, RecordKey

__all__ = ["Catalog", "Delta"]

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
        return self.port == DEFAULT_PORTS.get(self.scheme)


class Catalog:
    """The records of one store version, indexed for lookups: build once, query often.

    Repository names, generic services, URL origins (scheme, host, port) and hosts are dict
    keys; a lookup compares only the records on the origin or host it asks for.

    Args:
        records: the store's records.
        previous: the catalog of the store's previous version. When the two differ by a
            few record objects, the new catalog shares the previous one's tables and keeps
            only the entries of those records in a small layer of its own (`_Table`): a
            write to a big store then copies nothing in proportion to the store, which keeps
            the writer's hold on the interpreter, and the garbage collector's pauses, short.
            Otherwise the parsed URLs of every record object the two share are taken from it
            rather than parsed again.
        delta: the records removed from and added to ``previous``'s records to make
            ``records``, when the store knows them (`helperd.core.store.Store.records_delta`);
            None: found by comparing the two versions' record objects.

    Attributes:
        records: the records it was built from, in their order (the very sequence it was given,
            unless a mutable one, which is copied).
    """

    _named: _Table[str, list[Record]]
    _generic: _Table[str, list[Record]]
    _origins: _Table[_Origin, list[tuple[str, Record]]]
    _hosts: _Table[str, list[tuple[_Url, Record]]]
    _parsed: _Table[int, tuple[Record, list[_Url]]]
    _specials: dict[RecordKey, Record]

    def __init__(
        self,
        records: Iterable[Record],
        previous: Catalog | None = None,
        delta: Delta | None = None,
    ) -> None:
        # Kept as given when immutable (a file store's version may build its tuple later).
        if isinstance(records, Sequence) and not isinstance(records, MutableSequence):
            self.records: Sequence[Record] = records
        else:
            self.records = tuple(records)
        self._ids_cache: dict[int, Record] | None = None
        if previous is not None and self._follow(previous, delta):
            return
        named: dict[str, list[Record]] = {}
        generic: dict[str, list[Record]] = {}
        origins: dict[_Origin, list[tuple[str, Record]]] = {}
        hosts: dict[str, list[tuple[_Url, Record]]] = {}
        # id(record) -> (record, its parsed URLs); the record is kept so that an id is
        # trusted only for the very object it was taken from.
        parsed: dict[int, tuple[Record, list[_Url]]] = {}
        specials: dict[RecordKey, Record] = {}
        known = _Table[int, tuple[Record, list[_Url]]]() if previous is None else previous._parsed
        for record in self.records:
            if _special(record):
                specials[record.key] = record
            if record.kind is Kind.CERT:
                continue  # a certificate is never a password: no lookup finds it (certs.py)
            if record.kind is Kind.GENERIC:
                generic.setdefault(record.name, []).append(record)
                continue
            named.setdefault(record.name, []).append(record)
            held = known.get(id(record))
            urls = held[1] if held is not None and held[0] is record else _urls(record)
            parsed[id(record)] = (record, urls)
            for url in urls:
                origins.setdefault((url.scheme, url.host, url.port), []).append((url.path, record))
                hosts.setdefault(url.host, []).append((url, record))
        self._named, self._generic = _Table(named), _Table(generic)
        self._origins, self._hosts = _Table(origins), _Table(hosts)
        self._parsed, self._specials = _Table(parsed), specials

    @property
    def _ids(self) -> dict[int, Record]:
        """id(record) -> record, for every record: how a version finds what changed when its
        store cannot say (built on first use: a store that knows its deltas never needs it)."""
        if self._ids_cache is None:
            self._ids_cache = dict(zip(map(id, self.records), self.records, strict=True))
        return self._ids_cache

    def _follow(self, previous: Catalog, delta: Delta | None) -> bool:
        """Build from ``previous`` by its differences, when they are few; tell whether it did."""
        if delta is None:
            # Set operations on the id tables run in C: no Python loop over every record. An
            # id in both is the same object, as both catalogs hold their records alive.
            ids, before = self._ids, previous._ids
            added_ids, removed_ids = ids.keys() - before.keys(), before.keys() - ids.keys()
            if len(added_ids) + len(removed_ids) > _FOLLOW_AT_MOST:
                return False
            delta = ([before[i] for i in removed_ids], [ids[i] for i in added_ids])
        removed, added = delta
        if len(removed) + len(added) > _FOLLOW_AT_MOST:
            return False
        edit = _Edit(previous, specials=_special_in(removed, added))
        for record in removed:
            edit.remove(record)
        for record in sorted(added, key=_key_of):
            edit.add(record)
        edit.apply(self)
        return True

    @property
    def specials(self) -> Mapping[RecordKey, Record]:
        """The certificate records and the provider records, by key: what the daemon's
        certificate files and token refresher follow, without a loop over every record."""
        return self._specials

    def named(self, name: str) -> list[Record]:
        """The repository records named ``name``."""
        return self._named.get(name) or []

    def generic(self, service: str) -> list[Record]:
        """The generic entries of keyring service ``service``."""
        return self._generic.get(service) or []

    def under(self, asked: _Url) -> dict[Record, int]:
        """The repositories with a URL that prefixes ``asked`` at a path boundary, each with
        the length of its longest such URL path."""
        scored: dict[Record, int] = {}
        for path, record in self._origins.get((asked.scheme, asked.host, asked.port)) or ():
            if asked.path == path or asked.path.startswith(path + "/"):
                scored[record] = max(scored.get(record, -1), len(path))
        return scored

    def on_host(self, host: _Host) -> list[Record]:
        """The repositories with a URL on ``host`` (no port: on the scheme's default port)."""
        name, port = host
        found = {
            record: None
            for url, record in self._hosts.get(name) or ()
            if (url.port == port if port is not None else url.default_port)
        }
        return list(found)


Delta = tuple[Sequence[Record], Sequence[Record]]
"""The records removed from a version, and those added to it, to make the next one."""

_FOLLOW_AT_MOST = 64
"""Changed records up to which a catalog follows its previous version (else it is rebuilt)."""

_FOLD_AT = 4096
"""Keys a catalog's layer holds at most; past it, the next version folds the layer into a
new base (one copy of each table, every few thousand writes)."""

_K = TypeVar("_K")
_V = TypeVar("_V")
_I = TypeVar("_I")


class _Table(Generic[_K, _V]):
    """A dict shared between catalog versions: a base no version changes, under a small
    layer of the keys changed since (None: removed). Each version has its own layer."""

    __slots__ = ("_base", "_layer")

    def __init__(self, base: dict[_K, _V] | None = None, layer: dict[_K, _V | None] | None = None):
        self._base: dict[_K, _V] = {} if base is None else base
        self._layer: dict[_K, _V | None] = {} if layer is None else layer

    def get(self, key: _K) -> _V | None:
        layer = self._layer
        if key in layer:
            return layer[key]
        return self._base.get(key)

    def changed(self, changes: dict[_K, _V | None]) -> _Table[_K, _V]:
        """This table with ``changes`` on top, as a new table (this one stays as it is)."""
        if not changes:
            return self
        layer = {**self._layer, **changes}
        if len(layer) <= _FOLD_AT:
            return _Table(self._base, layer)
        base = dict(self._base)
        for key, value in layer.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        return _Table(base)

    def flat(self) -> dict[_K, _V]:
        """Every key and its value, as one dict (what a full build would hold)."""
        merged = {**self._base, **self._layer}
        return {key: value for key, value in merged.items() if value is not None}


class _Changes(Generic[_K, _V]):
    """The changes one version makes to a `_Table`, read through as they are made."""

    __slots__ = ("_changes", "_table")

    def __init__(self, table: _Table[_K, _V]) -> None:
        self._table = table
        self._changes: dict[_K, _V | None] = {}

    def get(self, key: _K) -> _V | None:
        if key in self._changes:
            return self._changes[key]
        return self._table.get(key)

    def set(self, key: _K, value: _V | None) -> None:
        self._changes[key] = value

    def table(self) -> _Table[_K, _V]:
        return self._table.changed(self._changes)


class _Edit:
    """The tables of a catalog that follows ``previous``, as its changes are made."""

    def __init__(self, previous: Catalog, *, specials: bool) -> None:
        self.named, self.generic = _Changes(previous._named), _Changes(previous._generic)
        self.origins, self.hosts = _Changes(previous._origins), _Changes(previous._hosts)
        self.parsed = _Changes(previous._parsed)
        # Copied only when a certificate or provider record changes: most writes share it.
        self.specials = dict(previous._specials) if specials else previous._specials

    def remove(self, record: Record) -> None:
        if _special(record):
            self.specials.pop(record.key, None)
        if record.kind is Kind.CERT:
            return  # never indexed (a certificate is never a password)
        if record.kind is Kind.GENERIC:
            _drop(self.generic, record.name, record, _itself)
            return
        _drop(self.named, record.name, record, _itself)
        held = self.parsed.get(id(record))
        self.parsed.set(id(record), None)
        for url in _urls(record) if held is None else held[1]:
            _drop(self.origins, (url.scheme, url.host, url.port), record, _item_record)
            _drop(self.hosts, url.host, record, _item_record)

    def add(self, record: Record) -> None:
        if _special(record):
            self.specials[record.key] = record
        if record.kind is Kind.CERT:
            return
        if record.kind is Kind.GENERIC:
            _add(self.generic, record.name, record, _itself)
            return
        _add(self.named, record.name, record, _itself)
        urls = _urls(record)
        self.parsed.set(id(record), (record, urls))
        for url in urls:
            _add(self.origins, (url.scheme, url.host, url.port), (url.path, record), _item_record)
            _add(self.hosts, url.host, (url, record), _item_record)

    def apply(self, catalog: Catalog) -> None:
        catalog._named, catalog._generic = self.named.table(), self.generic.table()
        catalog._origins, catalog._hosts = self.origins.table(), self.hosts.table()
        catalog._parsed, catalog._specials = self.parsed.table(), self.specials


def _key_of(record: Record) -> RecordKey:
    return record.key


def _special(record: Record) -> bool:
    """A certificate or provider record (see `Catalog.specials`)."""
    return record.kind is Kind.CERT or record.provider is not None


def _special_in(*groups: Sequence[Record]) -> bool:
    return any(_special(record) for group in groups for record in group)


def _itself(record: Record) -> Record:
    return record


def _item_record(item: tuple[object, Record]) -> Record:
    return item[1]


def _drop(
    table: _Changes[_K, list[_I]], key: _K, gone: Record, record_of: Callable[[_I], Record]
) -> None:
    """Set ``table[key]`` to a copy without the items of ``gone`` (never in place)."""
    kept = [item for item in table.get(key) or () if record_of(item) is not gone]
    table.set(key, kept or None)


def _add(
    table: _Changes[_K, list[_I]], key: _K, item: _I, record_of: Callable[[_I], Record]
) -> None:
    """Set ``table[key]`` to a copy with ``item``, in record order as a full build has it."""
    table.set(key, sorted([*(table.get(key) or ()), item], key=lambda i: record_of(i).key))


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
        number = DEFAULT_PORTS[scheme] if port is None else int(port)
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
        port = DEFAULT_PORTS.get(scheme)
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
