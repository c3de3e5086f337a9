"""A planted socket: every client refuses it before sending a byte, and the impostor gets nothing.

Another user (``nobody``) plants a folder and a listening socket where the victim's clients
look, at the fallback path and at ``HELPERD_SOCKET``; a symlinked folder, a group-writable
folder, and a listener of another UID inside the victim's own private folder are planted
too. The impostor records every byte it receives and answers every request with success, as
a real one would. helperd_client.Client and helperctl (exit 1), the keyring shim (exit 1,
nothing handed to another keyring), git-credential-helperd (exit 1, nothing on stdout) and
the keyring plugin (reads raise KeyringError, writes
PasswordSetError, ``priority`` answers) all refuse; the impostor's log stays empty.
Needs root (to change UIDs): skipped otherwise, failed in CI.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helperd_client import Client, UntrustedSocketError
from helperd_client.keyring_backend import PRIORITY, HelperdKeyring
from keyring.errors import KeyringError, PasswordSetError

from tests.hardening import NOBODY, require_root, timeout_for

pytestmark = pytest.mark.timeout(timeout_for(120, 300))

SECRET = "iMp-0stor-bait-secret"
URL = "http://127.0.0.1:8080/simple/"
BIN = Path(sys.executable).parent


@dataclass
class Planted:
    """An impostor listening on ``socket``; ``owner`` is the UID the clients must name."""

    socket: Path
    owner: int
    log: Path
    pid: int


def _serve(sock: socket.socket, log_fd: int) -> None:  # pragma: no cover - in the impostor
    """Record whatever arrives and answer it with success, forever."""
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(5)
            try:
                data = conn.recv(65_536)
                if data:
                    os.write(log_fd, data)
                    conn.sendall(b'{"v":1,"id":1,"ok":true,"result":{}}\n')
            except OSError:
                pass


def plant(path: Path, log: Path, uid: int, *, folder_by_impostor: bool) -> int:
    """Start an impostor as ``uid`` listening on ``path``; returns its PID.

    With ``folder_by_impostor`` it makes the socket's folder itself (0755). Otherwise the
    socket is bound here (the folder may be one only root can enter) and the impostor calls
    ``listen`` after changing UID: that is the UID a client's SO_PEERCRED reports.
    """
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    bound = None
    if not folder_by_impostor:
        bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound.bind(str(path))
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the impostor
        try:
            os.close(ready_r)
            if uid != os.getuid():
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            if bound is None:
                path.parent.mkdir()
                path.parent.chmod(0o755)
                bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                bound.bind(str(path))
            bound.listen(16)
            os.write(ready_w, b"1")
            _serve(bound, log_fd)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(log_fd)
    if bound is not None:
        bound.close()
    try:
        readable, _, _ = select.select([ready_r], [], [], 20)
        assert readable, "the impostor did not start"
        assert b"1" == os.read(ready_r, 1)
    finally:
        os.close(ready_r)
    return pid


@pytest.fixture
def base() -> Iterator[Path]:
    """A short folder that anyone may create entries in (sticky, like /tmp)."""
    folder = Path(tempfile.mkdtemp(prefix="hi", dir="/tmp"))
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False, timeout=60)


def _fallback(base: Path, mp: pytest.MonkeyPatch) -> tuple[Path, int, bool]:
    # No HELPERD_SOCKET, HELPERD_HOME, runtime folder or usable home: ${TMPDIR}/helperd-<uid>.
    require_root("plants a folder as nobody")
    assert not os.path.isdir(f"/run/user/{os.getuid()}"), "the fallback needs no runtime folder"
    mp.setenv("TMPDIR", str(base))
    mp.setenv("HOME", "/nonexistent")
    return base / f"helperd-{os.getuid()}" / "helperd.sock", NOBODY, True


def _helperd_socket(base: Path, mp: pytest.MonkeyPatch) -> tuple[Path, int, bool]:
    path = base / "planted" / "helperd.sock"
    mp.setenv("HELPERD_SOCKET", str(path))
    return path, NOBODY, True


def _symlinked(base: Path, mp: pytest.MonkeyPatch) -> tuple[Path, int, bool]:
    real = base / "real"
    real.mkdir(mode=0o700)
    (base / "link").symlink_to(real)
    mp.setenv("HELPERD_SOCKET", str(base / "link" / "helperd.sock"))
    return base / "link" / "helperd.sock", os.getuid(), False


def _group_writable(base: Path, mp: pytest.MonkeyPatch) -> tuple[Path, int, bool]:
    folder = base / "shared"
    folder.mkdir()
    folder.chmod(0o770)
    mp.setenv("HELPERD_SOCKET", str(folder / "helperd.sock"))
    return folder / "helperd.sock", os.getuid(), False


def _other_listener(base: Path, mp: pytest.MonkeyPatch) -> tuple[Path, int, bool]:
    # Our own 0700 folder, a socket bound by us, but nobody called listen(): SO_PEERCRED.
    folder = base / "mine"
    folder.mkdir(mode=0o700)
    mp.setenv("HELPERD_SOCKET", str(folder / "helperd.sock"))
    return folder / "helperd.sock", NOBODY, False


Setup = Callable[[Path, pytest.MonkeyPatch], tuple[Path, int, bool]]


@pytest.fixture(
    params=[_fallback, _helperd_socket, _symlinked, _group_writable, _other_listener],
    ids=["fallback-path", "helperd-socket", "symlinked-folder", "group-writable", "peer-uid"],
)
def planted(
    request: pytest.FixtureRequest, base: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Planted]:
    """An impostor where the victim's clients look, in one of the planted setups."""
    require_root("runs the impostor as nobody")
    for name in ("HELPERD_SOCKET", "HELPERD_HOME", "XDG_RUNTIME_DIR", "PYTHON_KEYRING_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    setup: Setup = request.param
    path, owner, folder_by_impostor = setup(base, monkeypatch)
    log = base / "impostor.log"
    impostor_uid = NOBODY if owner == NOBODY else os.getuid()
    pid = plant(path, log, impostor_uid, folder_by_impostor=folder_by_impostor)
    try:
        yield Planted(path, owner, log, pid)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def _refusal(planted: Planted) -> str:
    return "uid 65534" if planted.owner == NOBODY else "refusing to use the helperd socket"


def test_every_client_refuses_and_the_impostor_gets_nothing(
    planted: Planted, tmp_path: Path
) -> None:
    """Client, helperctl, the shim, git's helper and the plugin refuse, naming the path;
    nothing is sent."""
    where = str(planted.socket)
    with pytest.raises(UntrustedSocketError, match=_refusal(planted)) as raised:
        Client().set("acme", SECRET, username="alice")
    assert where in raised.value.message

    env = dict(os.environ)
    done = subprocess.run(
        [str(BIN / "helperctl"), "set", "acme", "-u", "alice", "--password-stdin"],
        input=SECRET.encode(),
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert 1 == done.returncode, done.stderr
    assert where in done.stderr.decode()

    stand_in = tmp_path / "real"
    stand_in.mkdir()
    (stand_in / "keyring").write_text(f'#!/bin/sh\ntouch "{stand_in}/called"\nexit 0\n')
    (stand_in / "keyring").chmod(0o755)
    shim = subprocess.run(
        [sys.executable, "-I", "-m", "helperd_client.shim", "get", URL, "alice"],
        capture_output=True,
        env={**env, "PATH": str(stand_in)},
        timeout=60,
        check=False,
    )
    assert (1, b"") == (shim.returncode, shim.stdout), shim.stderr
    assert where in shim.stderr.decode()
    assert not (stand_in / "called").exists(), "the shim handed the call to another keyring"

    git_lines = {
        "store": f"protocol=http\nhost=127.0.0.1:8080\nusername=alice\npassword={SECRET}\n\n",
        "get": "protocol=http\nhost=127.0.0.1:8080\n\n",
    }
    for action, lines in git_lines.items():
        git = subprocess.run(
            [str(BIN / "git-credential-helperd"), action],
            input=lines.encode(),
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert (1, b"") == (git.returncode, git.stdout), git.stderr
        assert where in git.stderr.decode()
        assert SECRET not in git.stderr.decode()

    assert PRIORITY == HelperdKeyring.priority
    plugin = HelperdKeyring()
    with pytest.raises(KeyringError, match=_refusal(planted)):
        plugin.get_password("poetry-repository-acme", "alice")
    with pytest.raises(KeyringError, match=_refusal(planted)):
        plugin.get_credential(URL, None)
    with pytest.raises(PasswordSetError, match=_refusal(planted)):
        plugin.set_password("poetry-repository-acme", "alice", SECRET)

    assert b"" == planted.log.read_bytes(), "the impostor received bytes"


def test_the_impostor_would_have_received_them(planted: Planted) -> None:
    """The planted listener works: a client without the checks would have sent it a request."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(planted.socket))
        sock.sendall(b"probe\n")
        assert sock.recv(65_536).startswith(b'{"v":1')
    assert b"probe\n" == planted.log.read_bytes()
