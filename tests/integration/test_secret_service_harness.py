"""The test harness's own Secret Service tells a crash of gnome-keyring (tests/support)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.secret_service import SecretService, unexpected_exits


@pytest.mark.secret_service
def test_a_keyring_that_dies_is_told_once(secret_service: SecretService) -> None:
    """gnome-keyring killed under a test: its exit and status are told, once."""
    os.kill(secret_service.keyring_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    notes: list[str] = []
    while not notes and time.monotonic() < deadline:
        time.sleep(0.02)
        notes = unexpected_exits()

    assert 1 == len(notes)
    assert "gnome-keyring-daemon" in notes[0]
    assert "killed by SIGKILL" in notes[0]
    assert [] == unexpected_exits()


@pytest.mark.secret_service
def test_a_paused_keyring_has_not_exited(secret_service: SecretService) -> None:
    """A frozen gnome-keyring (as the hung-keyring tests make it) is not an exit."""
    with secret_service.paused_keyring():
        assert [] == unexpected_exits()
    assert [] == unexpected_exits()
