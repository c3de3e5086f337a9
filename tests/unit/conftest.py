"""Fixtures of the file-store tests: a private data folder, its store path, and a key file."""

from __future__ import annotations

from pathlib import Path

import pytest

KEY_BYTES = b"K" * 32
"""The fixed bytes of `key_path`."""


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """A private data folder, as the daemon would hand over."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def path(directory: Path) -> Path:
    """Where the store file goes."""
    return directory / "store.enc"


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    """A good 0600 key file with fixed bytes."""
    path = tmp_path / "helperd.key"
    path.write_bytes(KEY_BYTES)
    path.chmod(0o600)
    return path
