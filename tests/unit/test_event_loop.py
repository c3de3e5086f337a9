"""The daemon's event loop: uvloop's when the ``fast`` extra installed it, and status says which."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest
from helperd_client.client import Status

from helperd.core.protocol import StatusRequest
from helperd.core.service import Service
from helperd.daemon.main import event_loop_name, fast_loop_factory
from tests.unit.test_service import T0, InMemory


class _FakeUvloopLoop(asyncio.SelectorEventLoop):
    """Stands in for uvloop.Loop: an event loop class defined in a module named uvloop."""


_FakeUvloopLoop.__module__ = "uvloop.loop"


def test_without_uvloop_the_daemon_runs_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """When uvloop cannot be imported, no loop factory is given and the loop is asyncio's."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import raises ImportError
    assert None is fast_loop_factory()
    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        assert "asyncio" == runner.run(_name())


def test_with_uvloop_the_daemon_runs_its_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """When uvloop is importable, its new_event_loop makes the loop, and the name says uvloop."""
    fake = types.ModuleType("uvloop")
    fake.new_event_loop = _FakeUvloopLoop  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uvloop", fake)
    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        assert "uvloop" == runner.run(_name())


def test_status_carries_the_event_loop_to_the_client() -> None:
    """status's event_loop is the service's; a client reading an older daemon gets asyncio."""
    service = Service(InMemory(), store_reason="test")
    service.event_loop = "uvloop"
    result = service.handle(StatusRequest(v=1, id=1, op="status"), T0)
    assert "uvloop" == result.model_dump()["event_loop"]
    assert "asyncio" == Status.__dataclass_fields__["event_loop"].default


async def _name() -> str:
    return event_loop_name()
