"""`BoundedKeyring`: calls take turns, and a call its caller gave up on while it waited is dropped.

Without that, a `set` refused while the keyring hung could land once the keyring came back,
after a newer `set` of the same record that was acknowledged, and undo it. The backend here is
a stand-in whose writes wait until the test lets them go.
"""

from __future__ import annotations

import threading
import time

import pytest
from helperd_client.errors import StoreUnavailableError
from keyring.backend import KeyringBackend
from pydantic import SecretStr

from helperd.stores.os_keyring import BoundedKeyring

TIMEOUT = 0.2


class HangingKeyring(KeyringBackend):
    """Its first write hangs until `let_go` is set; every write that runs is noted, in order."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.let_go = threading.Event()
        self.written: list[str] = []

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        if not self.written and not self.let_go.is_set():
            assert self.let_go.wait(10)
        self.written.append(password)

    def delete_password(self, service: str, username: str) -> None:
        pass


def test_a_write_refused_while_it_waited_for_its_turn_never_lands() -> None:
    backend = HangingKeyring()
    keyring = BoundedKeyring(backend, timeout=TIMEOUT, max_stuck=4)
    for refused in ("v1", "v2"):  # v1 hangs in the keyring, v2 waits behind it
        with pytest.raises(StoreUnavailableError, match="did not answer"):
            keyring.set_password("svc", "user", SecretStr(refused))
    backend.let_go.set()
    keyring.set_password("svc", "user", SecretStr("v3"))
    deadline = time.monotonic() + 10
    while keyring.stuck and time.monotonic() < deadline:
        time.sleep(0.01)
    assert keyring.stuck == 0
    assert backend.written == ["v1", "v3"]  # v1 was under way; v2 was given up before its turn
