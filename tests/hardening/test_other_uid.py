"""Other users: never served, and never trusted with the daemon's directory.

tests/integration/test_daemon.py checks that a peer of another UID reads one ``forbidden``.
Here: such a peer that asks for a secret (also as a member of the daemon's group) gets no
byte of it, and the daemon refuses to start in a directory another user owns or can write.
Needs root (to change UIDs and owners): skipped otherwise, failed in CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from tests.hardening import NOBODY, Spawn, as_user, require_root, timeout_for, write_key_file

pytestmark = pytest.mark.timeout(timeout_for(120, 300))

SECRET = "oU7-other-uid-secret"


def ask_for_the_secret(path: Path) -> list[dict[str, object]]:
    """Connect, ask for the secret, and return every answer line until the daemon closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        with contextlib.suppress(BrokenPipeError):  # refused and closed before it went out
            sock.sendall(b'{"v":1,"id":1,"op":"get","name":"mine"}\n')
        data = b""
        while chunk := sock.recv(65_536):
            data += chunk
    assert SECRET.encode() not in data
    return [json.loads(line) for line in data.splitlines()]


@pytest.mark.parametrize("gid", [NOBODY, 0], ids=["other-group", "same-group"])
def test_other_uid_asking_for_a_secret_gets_forbidden_only(spawn: Spawn, gid: int) -> None:
    """Another UID (in the daemon's group or not) reads one forbidden, never the secret.

    The socket and its directory are opened to everyone first, as a careless chmod would.
    """
    require_root("changes to UID nobody")
    daemon = spawn()
    with daemon.client() as client:
        client.set("mine", SECRET, username="me")
    os.chmod(daemon.home, 0o777)
    os.chmod(daemon.socket, 0o666)

    answers = as_user(lambda: ask_for_the_secret(daemon.socket), uid=NOBODY, gid=gid)
    assert [None] == [a["id"] for a in answers]
    assert [(False, "forbidden")] == [(a["ok"], a["error"]["code"]) for a in answers]
    os.chmod(daemon.home, 0o700)
    with daemon.client() as client:
        assert SECRET == client.get(name="mine").password


UNSAFE = [
    pytest.param("chown", "belongs to another user (uid 65534)", id="owned-by-nobody"),
    # HELPERD_HOME must be exactly 0700 (SPEC.md): readable by others is refused too.
    *(
        pytest.param(mode, f"has mode {mode:04o}; HELPERD_HOME must be 0700: run `chmod", id=name)
        for mode, name in [
            (0o777, "world-writable"),
            (0o1777, "sticky-like-tmp"),
            (0o770, "group-writable"),
            (0o702, "others-write"),
            (0o755, "others-read"),
            (0o750, "group-read"),
        ]
    ),
]


def make_unsafe(folder: Path, how: str | int) -> None:
    """Hand ``folder`` to nobody, or loosen its mode."""
    if how == "chown":
        require_root("hands the folder to nobody")
        os.chown(folder, NOBODY, NOBODY)
    else:
        assert isinstance(how, int)
        os.chmod(folder, how)


def assert_refused_to_start(spawn: Spawn, home: Path, message: str, **kwargs: object) -> None:
    """The daemon exits 1 at once, says why on stderr, and creates nothing."""
    before = {p.name: p.lstat() for p in home.iterdir()}
    mode = home.lstat()
    daemon = spawn(wait=False, **kwargs)
    assert 1 == daemon.process.wait(15)
    log = daemon.log.read_text()
    assert message in log
    assert f"helperd: {home}" in log, "the message names the folder"
    after = {p.name: p.lstat() for p in home.iterdir()}
    assert sorted([*before, "daemon.log"]) == sorted(after), "nothing was created"
    assert (mode.st_uid, stat.S_IMODE(mode.st_mode)) == (
        home.lstat().st_uid,
        stat.S_IMODE(home.lstat().st_mode),
    ), "the daemon never fixes modes or owners itself"


@pytest.mark.parametrize(("how", "message"), UNSAFE)
def test_refuses_to_start_in_an_unsafe_home(
    spawn: Spawn, home: Path, how: str | int, message: str
) -> None:
    """A home another user owns or can write: exit 1 with the reason, no socket bound."""
    write_key_file(home / "helperd.key")
    make_unsafe(home, how)
    assert_refused_to_start(spawn, home, message)
    assert not (home / "helperd.sock").exists()


@pytest.mark.parametrize(("how", "message"), UNSAFE)
def test_refuses_an_unsafe_data_folder_with_a_safe_socket_folder(
    spawn: Spawn, home: Path, tmp_path_factory: pytest.TempPathFactory, how: str | int, message: str
) -> None:
    """With the socket elsewhere, an unsafe data folder (the home) still stops the start."""
    socket_dir = Path(os.path.realpath(tmp_path_factory.mktemp("sock")))
    os.chmod(socket_dir, 0o700)
    write_key_file(home / "helperd.key")
    make_unsafe(home, how)
    sock = socket_dir / "s"
    assert_refused_to_start(spawn, home, message, env={"HELPERD_SOCKET": str(sock)})
    assert not sock.exists(), "the socket it bound was removed on the way out"
