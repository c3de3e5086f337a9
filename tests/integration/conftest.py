"""Fixtures for tests that need a real Secret Service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.secret_service import SecretService


@pytest.fixture
def secret_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretService]:
    """A private gnome-keyring on a private bus; this process talks to it for the test."""
    with SecretService() as service:
        service.apply(monkeypatch)
        yield service
