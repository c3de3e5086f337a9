"""The daemon's provider records: minted at ``set``, served and kept fresh by one `Refresher`.

`ProviderDesk` sits beside the `Service` on the event loop. Before a request, it handles a
``set`` with a provider (the command runs once here, never in helperctl; nothing is stored when
it fails). After a request, it swaps the stored token of a provider record's ``get`` for the
refresher's (cached, or minted waiting at most the rule's bound), adds each provider record's
health to ``list`` and ``status``, and after a write loads the store's provider records again
(dropping them all while the store is locked). Its own task starts the runs ahead and drops the
records when the idle lock has closed the store. New tokens are stored from a worker thread.

A get of a provider record is answered from memory the next time (`ProviderDesk.answer_hot`),
as the service answers a plain one (`helperd.core.hot`): its rendered answer is kept for the
store's version it was found in and the token the refresher handed out, and served again only
while both are still current (the token within the span its rule serves it as is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime

from helperd_client.errors import HelperdError

from helperd.core.hot import MAX_ENTRIES, GetKey, QuickRequest, render_body
from helperd.core.protocol import (
    GetRequest,
    GetResult,
    HelloRequest,
    ListRequest,
    ListResult,
    Request,
    Result,
    SetRequest,
    StatusRequest,
    StatusResult,
    result_json,
)
from helperd.core.provider import ProviderSpec
from helperd.core.provider_output import Minted
from helperd.core.provider_record import ProviderFacts, check_provider_set, no_valid_token
from helperd.core.record import Kind, Record, RecordKey
from helperd.core.service import Service
from helperd.core.store import StoreState
from helperd.daemon.workers import Workers
from helperd.integrations.providers.refresher import AHEAD_INTERVAL, Refresher, RunProvider
from helperd.integrations.providers.runner import run_provider

__all__ = ["ProviderDesk"]

log = logging.getLogger("helperd.provider")

_READS = (HelloRequest, GetRequest, ListRequest, StatusRequest)

Loaded = dict[RecordKey, tuple[str, ProviderFacts, Minted | None]]


class _Warm:
    """Rendered answers of gets of provider records, for one version of the store's records.

    Each is kept with its record's key and the token in it (`ProviderDesk.answer_hot`). No
    repr of its own: the bodies hold tokens.
    """

    __slots__ = ("answers", "records")

    def __init__(self, records: Sequence[Record] | None) -> None:
        self.records = records
        self.answers: dict[GetKey, tuple[RecordKey, Minted, bytes]] = {}


class ProviderDesk:
    """Provider records for one `Service`: their set, their gets, their health, their refresh.

    Args:
        service: the service whose store holds the records.
        workers: the worker threads for store calls.
        run: runs a provider once (None: `run_provider`, the real commands; a fake in tests).
        clock: the time now (aware).
    """

    def __init__(
        self,
        service: Service,
        workers: Workers,
        *,
        run: RunProvider | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._service = service
        self._workers = workers
        self._clock = clock or (lambda: datetime.now(UTC))
        self.refresher = Refresher(
            run=run or run_provider, clock=self._clock, on_minted=self._store_minted
        )
        self._kept: dict[RecordKey, ProviderFacts] = {}
        self._warm = _Warm(None)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Load the store's provider records, then refresh ahead, in a task of the daemon.

        Loading does not hold up serving: until a record is loaded, its get is answered with
        the stored token while that is valid.
        """
        self._task = asyncio.get_running_loop().create_task(self._ahead())

    async def aclose(self) -> None:
        """Stop refreshing ahead and every run under way."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.refresher.aclose()

    async def before(self, request: Request) -> Result | None:
        """Serve a ``set`` with a provider here (None for any other request).

        Raises:
            HelperdError: the provider failed (``store_unavailable``, its scrubbed stderr),
                or the request is wrong.
        """
        if not isinstance(request, SetRequest) or request.provider is None:
            return None
        spec = check_provider_set(
            request.provider,
            kind=request.kind,
            username=request.username,
            expires_at=request.expires_at,
        )
        minted = await self.refresher.mint(spec)  # ProviderError: nothing is stored
        stored = request.model_copy(
            update={
                "password": minted.token,
                "kind": Kind.TOKEN,
                "username": spec.username,
                "provider": spec,
            }
        )
        facts = ProviderFacts.of(spec, minted)
        return await self._workers.submit(self._service.set_provided, stored, facts, self._clock())

    def answer_hot(self, request: QuickRequest, now: datetime) -> bytes | None:
        """The rendered answer of a get of a provider record served before, or None when it
        must be served the full way (`after`).

        Served only while the store's records are those it was found in (nothing written,
        not locked, the idle lock not due: `Service.hot_usable`) and the refresher still
        serves the very token in it as is (`Refresher.cached`: no run due, the token well
        before its expiry). Called on the event loop.
        """
        warm = self._warm
        found = warm.answers.get(request.key) if request.op == "get" else None
        if found is None:
            return None
        if not self._service.hot_usable(warm.records, now):
            self._warm = _Warm(None)  # another version, or locked: its tokens go now
            return None
        key, minted, body = found
        if self.refresher.cached(key, now) is not minted:
            return None  # a new token, a run due, or gone: the full way decides
        return body

    async def after(
        self, request: Request, result: Result, version: Sequence[Record] | None = None
    ) -> Result:
        """The answer to ``request`` with the provider records' part put in.

        Args:
            request: the request served.
            result: the service's answer.
            version: the store's records taken before the service looked the request up
                (`Service.hot_version`), under which a get's answer may be kept for
                `answer_hot`; None keeps nothing.
        """
        if isinstance(result, GetResult):
            served, minted = await self._get(result)
            if minted is not None and version is not None and isinstance(request, GetRequest):
                self._keep_warm(request, version, served, minted)
            return served
        if isinstance(result, ListResult):
            return self._list(result)
        if isinstance(result, StatusResult):
            return self._status(result)
        if not isinstance(request, _READS):
            await self.written()
        return result

    async def written(self) -> None:
        """After a write (or a lock): load the provider records again, when there may be any."""
        if self._kept or self._may_hold_providers():
            await self.reload()
        else:
            self._warm = _Warm(None)

    def _may_hold_providers(self) -> bool:
        """False when the store now holds no provider record, as the lookup catalog of its
        current records says without blocking: a write then needs no trip to a worker."""
        if self._service.store.reads_block:
            return True
        special = self._service.special_records()
        return special is None or any(record.provider is not None for record in special)

    async def reload(self) -> None:
        """Keep the store's provider records (none while it is locked), tokens included."""
        kept = dict(self._kept)
        try:
            loaded = await self._workers.submit(self._load, kept)
        except HelperdError as exc:
            self._warm = _Warm(None)
            log.warning("could not load the provider records: %s", exc.message)
            return
        for key in [k for k in self._kept if k not in loaded]:
            self.refresher.remove(key)
            del self._kept[key]
        for key, (name, facts, minted) in loaded.items():
            now_kept = self._kept.get(key)
            if (
                now_kept is not None
                and now_kept.spec == facts.spec
                and now_kept.minted_at >= facts.minted_at
            ):
                continue  # the same, or read before the refresher stored a newer token
            self.refresher.add(key, name, facts.spec, minted)
            self._kept[key] = facts
        # Kept answers are checked against the store's version and the token on each use;
        # after a write or a lock they are dropped all the same, tokens with them.
        self._warm = _Warm(None)

    def _keep_warm(
        self, request: GetRequest, version: Sequence[Record], served: GetResult, minted: Minted
    ) -> None:
        """Keep ``served``, a provider record's answer with ``minted`` in it, found in
        ``version``, for `answer_hot`."""
        if served.kind is not Kind.TOKEN or self._service.hot_version() is not version:
            return  # not a provider record's answer, or the store changed since the lookup
        key = (served.name, served.username)
        warm = self._warm
        if warm.records is not version:
            warm = self._warm = _Warm(version)
        if len(warm.answers) >= MAX_ENTRIES:
            warm.answers.clear()
        get_key = (request.name, request.url, request.service, request.username)
        warm.answers[get_key] = (key, minted, render_body(result_json(served)))

    def _load(self, kept: dict[RecordKey, ProviderFacts]) -> Loaded:
        """In a worker thread: the store's provider records, their tokens read if new."""
        store = self._service.store
        if store.state is not StoreState.UNLOCKED:
            return {}
        found: Loaded = {}
        special = self._service.special_records()  # no pass over every record, when built
        for record in store.records() if special is None else special:
            facts = record.provider
            if facts is None:
                continue
            same = kept.get(record.key)
            if same is not None and same.spec == facts.spec and same.minted_at >= facts.minted_at:
                found[record.key] = (record.name, same, None)  # kept as it is
                continue
            found[record.key] = (record.name, facts, facts.minted(store.password(record)))
        return found

    async def _get(self, result: GetResult) -> tuple[GetResult, Minted | None]:
        """The get's answer, and the refresher's token put in it (None: not a provider's)."""
        key = (result.name, result.username)
        if key not in self._kept:
            # Not a provider record, or one not loaded yet (just unlocked): the stored token,
            # never an expired one (a plain record past its expiry is never found at all).
            if result.expires_at is not None and result.expires_at <= self._clock():
                raise no_valid_token(result.name)
            return result, None
        minted = await self.refresher.get(key)
        update = {"password": minted.token, "expires_at": minted.expires_at}
        return result.model_copy(update=update), minted

    def _list(self, result: ListResult) -> ListResult:
        records = []
        for info in result.records:
            key = (info.name, info.username)
            if info.provider is None or key not in self._kept:
                records.append(info)
                continue
            health = self.refresher.health(key)
            change = {"provider_error": health.last_error, "expires_at": health.expires_at}
            records.append(info.model_copy(update=change))
        return result.model_copy(update={"records": records})

    def _status(self, result: StatusResult) -> StatusResult:
        if result.locked:
            return result
        failing = sorted(
            {key[0] for key in self._kept if self.refresher.health(key).last_error is not None}
        )
        change = {"providers": len(self._kept), "providers_failing": failing}
        return result.model_copy(update=change)

    async def _store_minted(self, key: Hashable, spec: ProviderSpec, minted: Minted) -> None:
        """Store a token the refresher minted, from a worker thread (never on the loop)."""
        assert isinstance(key, tuple)
        stored = await self._workers.submit(self._service.store_minted, key, spec, minted)
        if stored:
            self._kept[key] = ProviderFacts.of(spec, minted)

    async def _ahead(self) -> None:
        await self.reload()
        while True:
            await asyncio.sleep(AHEAD_INTERVAL)
            if self._kept and self._service.store.lockable:
                await self.reload()  # if the idle lock closed the store, its tokens go too
            self.refresher.start_ahead()
