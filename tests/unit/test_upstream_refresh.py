"""A refresh never raises out of its thread, and never carries a secret in what it records;
secret files follow the key file's rule."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helperd.core.config import UpstreamSettings
from helperd.core.upstream_cache import UpstreamCache
from helperd.upstream import Engine, refresh
from helperd.upstream.auth import read_secret_file
from helperd.upstream.errors import EngineDownError, SecretFileError

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SECRET = "s.super-secret-token"


class _Raising:
    """Stands in for the engine: its fetch raises what it is given."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.settings = UpstreamSettings(address="https://bao.example:8200", token_file=None)

    def fetch(self) -> None:
        raise self.error


def _refresh(error: BaseException) -> UpstreamCache:
    engine: Engine = _Raising(error)  # type: ignore[assignment]
    return refresh(engine, UpstreamCache(), NOW)


def test_unexpected_error_is_recorded_by_type_only() -> None:
    """An unexpected exception (its text may hold anything) is recorded by its type, with the
    engine's address; the refresh returns instead of raising."""
    cache = _refresh(RuntimeError(f"boom {SECRET}"))
    assert cache.last is not None
    expected = (
        "upstream refresh from https://bao.example:8200 failed unexpectedly (RuntimeError);"
        " see the daemon's log"
    )
    assert (False, "internal", expected) == (cache.last.ok, cache.last.reason, cache.last.message)
    assert SECRET not in repr(cache)


def test_typed_error_is_recorded_with_its_reason() -> None:
    """A typed upstream error is recorded with its message and reason code."""
    cache = _refresh(EngineDownError("upstream secret engine X refused the connection"))
    assert cache.last is not None
    assert ("engine_down", "upstream secret engine X refused the connection") == (
        cache.last.reason,
        cache.last.message,
    )


def test_hvac_never_reads_the_environment_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's client starts with no token even when VAULT_TOKEN is set: only the
    configured auth counts."""
    monkeypatch.setenv("VAULT_TOKEN", SECRET)
    engine = Engine(UpstreamSettings(address="http://127.0.0.1:1", token_file=Path("/t")))
    assert "" == engine._client.token


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_secret_file_is_stripped(tmp_path: Path) -> None:
    """A secret file's text is read without its trailing newline."""
    assert SECRET == read_secret_file(_write(tmp_path / "t", SECRET + "\n"), "token_file")


@pytest.mark.parametrize(
    ("name", "text", "mode", "expected"),
    [
        ("t", SECRET, 0o644, "is open to group or others (mode 0644): run `chmod 600"),
        ("t", "  \n", 0o600, "is empty"),
        (None, "", 0o600, "does not exist: create it (mode 0600), or point [upstream] token_file"),
    ],
    ids=["mode", "empty", "missing"],
)
def test_secret_file_refused(
    tmp_path: Path, name: str | None, text: str, mode: int, expected: str
) -> None:
    """An unsafe, empty or missing secret file is refused naming the file and the fix, never
    its content."""
    path = _write(tmp_path / "t", text, mode) if name else tmp_path / "missing"
    with pytest.raises(SecretFileError) as caught:
        read_secret_file(path, "token_file")
    assert f"upstream token_file {path} " in caught.value.message
    assert expected in caught.value.message
    assert SECRET not in caught.value.message


def test_relative_secret_file_names_credentials_directory() -> None:
    """A relative secret file outside systemd says it needs $CREDENTIALS_DIRECTORY."""
    with pytest.raises(SecretFileError, match=r"is relative, so it is read from \$CREDENTIALS"):
        read_secret_file(Path("secret_id"), "secret_id_file")
