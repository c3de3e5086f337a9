"""`SecretServiceCalls` keeps one D-Bus connection, and its calls take turns on it.

gnome-keyring aborts, or loses its default collection for a moment, when clients come and go
beside one replacing an item (the module doc of `helperd.stores.secret_service` has the figures),
as they did when each call opened a connection of its own. The D-Bus side is a fake here; the
integration tests run the same calls against a real gnome-keyring.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import secretstorage
from helperd_client.errors import LockedError
from keyring.backends import SecretService

from helperd.stores import secret_service
from helperd.stores.secret_service import SecretServiceCalls


class Connection:
    """A fake bus connection that notes calls on it that overlap."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.in_use = 0
        self.closed = False

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        assert not self.closed, "a call on a closed connection"
        if self.bus.broken:
            raise ConnectionResetError("the bus closed the connection")
        if self.bus.stall is not None:
            self.bus.stalled.set()
            assert self.bus.stall.wait(10)
        self.in_use += 1
        self.bus.most_in_use = max(self.bus.most_in_use, self.in_use)
        time.sleep(0.001)
        self.in_use -= 1
        yield

    def close(self) -> None:
        self.closed = True


class Bus:
    """What the fakes saw: connections opened, overlapping calls, sessions opened and closed."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.most_in_use = 0
        self.sessions_opened = 0
        self.sessions_closed = 0
        self.locked = False
        self.broken = False
        self.stall: threading.Event | None = None
        self.stalled = threading.Event()
        self.prompt_shown = threading.Event()
        self.person_answers = threading.Event()
        self._serial = itertools.count(1)

    def connect(self) -> Connection:
        self.connections.append(Connection(self))
        return self.connections[-1]

    def open_session(self, connection: Connection) -> Any:
        with connection.call():
            self.sessions_opened += 1
        return type("Session", (), {"object_path": f"/session/{next(self._serial)}"})()


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Bus:
    bus = Bus()

    class Item:
        def __init__(self, connection: Connection) -> None:
            self.connection, self.session = connection, None

        def is_locked(self) -> bool:
            with self.connection.call():
                return False

        def get_attributes(self) -> dict[str, str]:
            with self.connection.call():
                return {"username": "user"}

        def get_secret(self) -> bytes:
            assert self.session is not None, "a secret read without a session"
            with self.connection.call():
                return b"secret"

    class Collection:
        def __init__(self, connection: Connection, _path: str) -> None:
            self.connection, self.session = connection, None
            with connection.call():
                pass

        def is_locked(self) -> bool:
            with self.connection.call():
                return bus.locked

        def search_items(self, _query: dict[str, str]) -> Iterator[Item]:
            with self.connection.call():
                yield Item(self.connection)

        def create_item(self, *_args: Any, **_kwargs: Any) -> None:
            if self.session is None:  # as secretstorage's own does
                self.session = secret_service.open_session(self.connection)
            with self.connection.call():
                pass

    class Wrapper:
        def __init__(self, _path: str, _interface: str, connection: Connection) -> None:
            self.connection = connection

        def call(self, method: str, *_args: Any) -> Any:
            with self.connection.call():
                bus.sessions_closed += method == "Close"
                return ([], "/prompt/1")

    def exec_prompt(*_args: Any, **_kwargs: Any) -> tuple[bool, Any]:
        bus.prompt_shown.set()
        assert bus.person_answers.wait(10), "the test never answered the prompt"
        bus.locked = False
        return False, None

    monkeypatch.setattr(secretstorage, "dbus_init", bus.connect)
    monkeypatch.setattr(secretstorage, "Collection", Collection)
    monkeypatch.setattr(secret_service, "open_session", bus.open_session)
    monkeypatch.setattr(secret_service, "DBusAddressWrapper", Wrapper)
    monkeypatch.setattr(secret_service, "exec_prompt", exec_prompt)
    return bus


def calls() -> SecretServiceCalls:
    return SecretServiceCalls(SecretService.Keyring())


def run_together(*functions: Any) -> None:
    threads = [threading.Thread(target=function) for function in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)


def test_threads_take_turns_on_one_kept_connection_and_close_their_sessions(bus: Bus) -> None:
    keyring = calls()

    def writes() -> None:
        for n in range(20):
            keyring.set_password("svc", "user", f"v{n}")

    def reads() -> None:
        for _ in range(20):
            assert keyring.get_password("svc", "user") == "secret"
            assert keyring.get_credential("svc", None) == ("user", "secret")
            assert not keyring.is_locked()

    run_together(writes, reads, reads)
    assert len(bus.connections) == 1
    assert bus.most_in_use == 1
    assert bus.sessions_opened == 20 + 2 * 40
    assert bus.sessions_closed == bus.sessions_opened


def test_a_connection_the_bus_closed_is_replaced_at_the_next_call(bus: Bus) -> None:
    keyring = calls()
    assert not keyring.is_locked()
    bus.broken = True
    with pytest.raises(ConnectionResetError):
        keyring.is_locked()
    bus.broken = False
    assert not keyring.is_locked()
    assert [c.closed for c in bus.connections] == [True, False]


def test_a_call_that_fails_gives_the_turn_back(bus: Bus) -> None:
    keyring = calls()
    bus.locked = True
    with pytest.raises(LockedError):
        keyring.get_password("svc", "user")
    bus.locked = False
    run_together(lambda: keyring.get_password("svc", "user"))


def test_calls_go_on_while_an_unlock_prompt_waits_for_a_person(bus: Bus) -> None:
    keyring = calls()
    bus.locked = True
    unlocking = threading.Thread(target=keyring.unlock, args=(10.0,))
    unlocking.start()
    try:
        assert bus.prompt_shown.wait(10)
        answers: list[bool] = []
        run_together(lambda: answers.append(keyring.is_locked()))
        assert answers == [True]  # answered while the prompt still waits
    finally:
        bus.person_answers.set()
        unlocking.join(10)
    assert not unlocking.is_alive()
    kept, for_the_prompt = bus.connections
    assert (kept.closed, for_the_prompt.closed) == (False, True)


def test_close_lets_go_of_the_connection_now_or_as_the_call_using_it_ends(bus: Bus) -> None:
    keyring = calls()
    assert not keyring.is_locked()
    keyring.close()
    assert [c.closed for c in bus.connections] == [True]

    keyring = calls()
    bus.stall = threading.Event()
    stuck = threading.Thread(target=keyring.is_locked)
    stuck.start()
    assert bus.stalled.wait(10)
    keyring.close()  # returns at once, as a call stuck on a frozen keyring may never end
    assert not bus.connections[-1].closed
    bus.stall.set()
    stuck.join(10)
    assert bus.connections[-1].closed
    assert not keyring.is_locked()  # a call after close opens a connection for itself alone
    assert all(c.closed for c in bus.connections)


def test_a_connection_nobody_closed_is_closed_with_its_calls_object(bus: Bus) -> None:
    keyring = calls()
    assert not keyring.is_locked()
    del keyring
    gc.collect()
    assert [c.closed for c in bus.connections] == [True]
