"""Which ``helperd`` a client starts on demand (`helperd_client.autostart.find_helperd`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helperd_client import autostart
from helperd_client.autostart import autostart_enabled, daemon_env, find_helperd


@pytest.fixture(autouse=True)
def _home_link_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the link under HOME: never look at what install.sh put in /usr/local."""
    monkeypatch.setattr(autostart, "INSTALL_LINKS", ("~/.local/bin/helperd",))


def _executable(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "helperd"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def test_helperd_on_path_comes_first(tmp_path: Path) -> None:
    """A ``helperd`` on PATH wins over install.sh's link in the home folder."""
    on_path = _executable(tmp_path / "bin")
    _executable(tmp_path / "home" / ".local" / "bin")
    env = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path / "home")}
    assert str(on_path) == find_helperd(env)


def test_install_link_when_none_is_on_path(tmp_path: Path) -> None:
    """Without one on PATH, the link install.sh makes for a user is used."""
    link = _executable(tmp_path / "home" / ".local" / "bin")
    env = {"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path / "home")}
    assert str(link) == find_helperd(env)


@pytest.mark.parametrize("path", [":", "", ".", "bin", "::bin:"])
def test_current_folder_is_never_searched(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty or relative PATH entry (the current folder: a cloned project) is skipped."""
    project = tmp_path / "project"
    _executable(project)
    _executable(project / "bin")
    monkeypatch.chdir(project)
    env = {"PATH": path, "HOME": str(tmp_path / "nohome")}
    assert None is find_helperd(env)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("1", True), ("0", False), (" 0 ", False)]
)
def test_autostart_is_on_unless_zero(value: str | None, expected: bool) -> None:
    """``HELPERD_AUTOSTART=0`` (and only that) turns the on-demand start off."""
    env = {} if value is None else {"HELPERD_AUTOSTART": value}
    assert expected == autostart_enabled(env)


def test_a_started_daemon_gets_no_handed_out_credentials() -> None:
    """Started under ``helperctl exec``, the daemon does not keep the tool's credentials."""
    env = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "POETRY_HTTP_BASIC_CORP_PASSWORD": "s3cret",
        "POETRY_PYPI_TOKEN_PYPI": "pypi-token",
        "UV_INDEX_CORP_PASSWORD": "s3cret",
        "UV_PUBLISH_PASSWORD": "s3cret",
        "TWINE_PASSWORD": "s3cret",
        "HELPERD_HOME": "/home/u/h",
    }

    assert {"PATH": "/usr/bin", "HOME": "/home/u", "HELPERD_HOME": "/home/u/h"} == daemon_env(env)
