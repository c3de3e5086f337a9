"""``import-poetry``'s talk with the daemon: store every planned move, then read each back.

The plan and the rewrite of auth.toml are `helperd.integrations.poetry`'s (files only);
this module is the step between them, through helperctl's client.
"""

from __future__ import annotations

from collections.abc import Sequence

from helperd_client import Credential
from helperd_client.errors import NotFoundError, StoreUnavailableError

from helperd.ctl.session import DaemonClient
from helperd.integrations.poetry import Move, Stored

__all__ = ["store_and_verify"]


def store_and_verify(client: DaemonClient, moves: Sequence[Move]) -> list[Stored]:
    """Store every move in helperd, then read each back and compare.

    A record helperd holds already for the same (name, username) is replaced: auth.toml is
    what Poetry uses today, so its secret is the current one. Its URLs are kept, and
    config.toml's URL is added to them.

    Raises:
        HelperdError: a call failed (records stored before it stay stored);
            `StoreUnavailableError` when a secret read back differs.
    """
    done: list[Stored] = []
    for move in moves:
        held = _held(client, move)
        if held is None:
            outcome, urls = "new", [move.url] if move.url else None
        else:
            outcome = "same" if held.password == move.password else "replaced"
            known = list(held.urls)
            urls = [*known, move.url] if move.url and not _listed(move.url, known) else known
        client.set(move.name, move.password, username=move.username, kind=move.kind, urls=urls)
        done.append(Stored(move, outcome))
    for move in moves:
        back = _held(client, move)
        if back is None or back.password != move.password or back.kind != move.kind:
            raise StoreUnavailableError(
                f"helperd did not give back the secret of {move.where} that was just stored"
            )
    return done


def _held(client: DaemonClient, move: Move) -> Credential | None:
    try:
        found = client.get(name=move.name, username=move.username)
    except NotFoundError:
        return None
    return found if found.username == move.username else None


def _listed(url: str, known: Sequence[str]) -> bool:
    """Whether ``url`` is among ``known`` up to a trailing ``/``, which lookups ignore too:
    config.toml's ``.../simple`` adds nothing to a record that has ``.../simple/``."""
    return url.rstrip("/") in {other.rstrip("/") for other in known}
