"""The socket-path and data-folder rules from SPEC.md, one case per branch."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest
from helperd_client.paths import MAX_SOCKET_BYTES, data_folder, socket_path

NO_HOME = {"HOME": "/nonexistent-home"}


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        pytest.param(
            {"HELPERD_SOCKET": "/s/x.sock", "HELPERD_HOME": "/h"},
            "linux",
            "/s/x.sock",
            id="socket-wins",
        ),
        pytest.param(
            {"HELPERD_HOME": "/h", "XDG_RUNTIME_DIR": "/r"}, "linux", "/h/helperd.sock", id="home"
        ),
        pytest.param({"XDG_RUNTIME_DIR": "/r"}, "linux", "/r/helperd/helperd.sock", id="xdg"),
        pytest.param(
            {"TMPDIR": "/t", **NO_HOME}, "darwin", "/t/helperd-4242/helperd.sock", id="macos-tmp"
        ),
        pytest.param(NO_HOME, "darwin", "/tmp/helperd-4242/helperd.sock", id="macos-no-tmpdir"),
        pytest.param(
            {"TMPDIR": "/t", **NO_HOME}, "freebsd14", "/t/helperd-4242/helperd.sock", id="tmp"
        ),
        pytest.param(
            {"HELPERD_SOCKET": "", **NO_HOME},
            "freebsd14",
            "/tmp/helperd-4242/helperd.sock",
            id="empty-is-unset",
        ),
        pytest.param({}, "freebsd14", "/tmp/helperd-4242/helperd.sock", id="no-home-variable"),
        pytest.param(
            {"HOME": "relative"}, "freebsd14", "/tmp/helperd-4242/helperd.sock", id="relative-home"
        ),
    ],
)
def test_socket_path_rule(env: dict[str, str], platform: str, expected: str) -> None:
    """Each variable wins over the ones after it; the last resort is per-uid under TMPDIR."""
    assert Path(expected) == socket_path(env, platform=platform, uid=4242)


def test_run_user_used_when_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Linux without XDG_RUNTIME_DIR, /run/user/<uid> is used when that folder exists."""
    uid = 0
    expected = Path(f"/run/user/{uid}/helperd/helperd.sock")
    monkeypatch.setattr(os.path, "isdir", lambda path: path == f"/run/user/{uid}")
    assert expected == socket_path({}, platform="linux", uid=uid)


@pytest.fixture
def home() -> Iterator[Path]:
    """A home folder of our own, with a short path (pytest's tmp_path is too long for macOS's)."""
    with tempfile.TemporaryDirectory(prefix="h", dir="/tmp") as folder:
        yield Path(folder)


@pytest.mark.parametrize(
    ("platform", "extra", "tail"),
    [
        pytest.param("linux", {}, ".local/state/helperd/{uid}/helperd.sock", id="linux-state"),
        pytest.param(
            "linux", {"XDG_STATE_HOME": "{home}/st"}, "st/helperd/{uid}/helperd.sock", id="xdg"
        ),
        pytest.param(
            "linux",
            {"XDG_STATE_HOME": "st"},
            ".local/state/helperd/{uid}/helperd.sock",
            id="relative-xdg-state-ignored",
        ),
        pytest.param(
            "darwin",
            {"TMPDIR": "/t"},
            "Library/Application Support/helperd/{uid}/helperd.sock",
            id="macos",
        ),
    ],
)
def test_own_home_beats_tmp(home: Path, platform: str, extra: dict[str, str], tail: str) -> None:
    """Without a runtime folder, a home folder owned by the user holds the socket, per uid."""
    uid = os.getuid()
    env = {"HOME": str(home), "TMPDIR": "/t"} | {k: v.format(home=home) for k, v in extra.items()}
    expected = home / tail.format(uid=uid)
    assert expected == socket_path(env, platform=platform, uid=uid)


def test_home_of_another_user_is_not_used(home: Path) -> None:
    """A $HOME that belongs to another UID sends the socket to the per-uid TMPDIR folder."""
    uid = os.getuid() + 1
    expected = Path(f"/t/helperd-{uid}/helperd.sock")
    assert expected == socket_path({"HOME": str(home), "TMPDIR": "/t"}, platform="linux", uid=uid)


def test_home_that_is_a_file_is_not_used(home: Path) -> None:
    """A $HOME that is not a directory sends the socket to the per-uid TMPDIR folder."""
    file = home / "file"
    file.write_text("")
    uid = os.getuid()
    expected = Path(f"/t/helperd-{uid}/helperd.sock")
    assert expected == socket_path({"HOME": str(file), "TMPDIR": "/t"}, platform="linux", uid=uid)


def test_too_long_home_path_falls_back_to_tmp(tmp_path: Path) -> None:
    """A home path that would make the socket path longer than the limit is not used."""
    deep = tmp_path / ("d" * (MAX_SOCKET_BYTES - len(str(tmp_path))))
    deep.mkdir()
    uid = os.getuid()
    expected = Path(f"/t/helperd-{uid}/helperd.sock")
    assert expected == socket_path({"HOME": str(deep), "TMPDIR": "/t"}, platform="linux", uid=uid)


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"HOME": "/home/alice"}, id="default"),
        pytest.param({"HOME": "/home/alice", "XDG_DATA_HOME": "/data"}, id="xdg-data-home"),
        pytest.param({"HOME": "/home/alice", "XDG_DATA_HOME": " "}, id="blank-xdg-data-home"),
    ],
)
def test_data_folder_is_platformdirs_rule(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients compute the daemon's data folder as platformdirs does, without importing it."""
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    expected = platformdirs.user_data_dir("helperd", appauthor=False)
    assert expected == data_folder(env, platform="linux")


def test_data_folder_is_helperd_home_when_set() -> None:
    """HELPERD_HOME holds the data too; on macOS the default is Application Support."""
    assert "/h" == data_folder({"HELPERD_HOME": "/h", "HOME": "/u"})
    expected = "/u/Library/Application Support/helperd"
    assert expected == data_folder({"HOME": "/u"}, platform="darwin")
