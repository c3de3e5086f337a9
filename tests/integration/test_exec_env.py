"""What ``helperctl exec`` really hands out, read back from ``/proc/<pid>/environ`` of a live
child and of the grandchild it starts (a build backend would be one), against a real daemon."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helperd.testing import Daemon
from tests.support.tools import require

HELPERCTL = str(Path(sys.executable).parent / "helperctl")
CORP_URL = "https://pkgs.corp.test/simple/"
CORP_UPLOAD = "https://pkgs.corp.test/upload/"
CORP_PW = "corp-read-pw-4"
CORP_TOKEN = "corp-upload-tok-8"
PYPI_TOKEN = "pypi-upload-tok-3"
GRANDCHILD = "import sys; print(1, flush=True); sys.stdin.read()"
TREE = (
    "import os, subprocess, sys\n"
    f"grand = subprocess.Popen([sys.executable, '-c', {GRANDCHILD!r}],"
    " stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
    "grand.stdout.readline()\n"  # the grandchild runs: its environ is set up (after execve)
    "print(os.getpid(), grand.pid, flush=True)\n"
    "sys.stdin.read()\n"
    "grand.stdin.close()\n"
    "sys.exit(grand.wait())\n"
)
"""The child: starts a grandchild, waits until it runs, prints both PIDs, and waits until the
test closes stdin."""
PREFIXES = ("POETRY_", "UV_", "TWINE_")
READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class Seen:
    """The environments of the child and grandchild, as the kernel holds them."""

    child_pid: int
    exec_pid: int
    child: dict[str, str]
    grandchild: dict[str, str]
    raw: bytes


@pytest.fixture
def env(key_daemon: Daemon) -> dict[str, str]:
    """The daemon holds corp (a basic record and an upload token) and pypi (a token only)."""
    require(Path("/proc/self/environ").exists(), "needs /proc/<pid>/environ (Linux)")
    with key_daemon.client() as client:
        client.set("corp", CORP_PW, username="alice", urls=[CORP_URL, CORP_UPLOAD])
        client.set("corp", CORP_TOKEN, username="__token__", kind="token", urls=[CORP_UPLOAD])
        client.set("pypi", PYPI_TOKEN, username="__token__", kind="token")
    return {k: v for k, v in key_daemon.env.items() if not k.startswith(PREFIXES)}


def _environ(pid: int) -> tuple[dict[str, str], bytes]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.partition(b"=") for entry in raw.split(b"\0") if entry)
    return {k.decode(): v.decode() for k, _, v in pairs if k.decode().startswith(PREFIXES)}, raw


@pytest.fixture
def run_tree(env: dict[str, str]) -> Iterator[object]:
    """Run ``helperctl exec ARGS -- TREE`` and read back both environments while they live."""
    started: list[subprocess.Popen[bytes]] = []

    def run(*args: str) -> Seen:
        proc = subprocess.Popen(
            [HELPERCTL, "exec", *args, "--", sys.executable, "-c", TREE],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], READ_TIMEOUT)
        assert ready, "the child did not report its PIDs"
        line = proc.stdout.readline().decode()
        child_pid, grand_pid = (int(p) for p in line.split())
        child, raw = _environ(child_pid)
        grandchild, raw_grand = _environ(grand_pid)
        return Seen(child_pid, proc.pid, child, grandchild, raw + raw_grand)

    yield run
    for proc in started:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()  # the child's stdin first: that ends the child and the grandchild
        assert 0 == proc.wait(timeout=READ_TIMEOUT)


def helperctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the helperctl console script to the end."""
    return subprocess.run(
        [HELPERCTL, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_no_repo_exits_125_listing_the_names(env: dict[str, str], tmp_path: Path) -> None:
    """Without --repo or --all nothing runs: exit 125, naming the repositories helperd holds."""
    marker = tmp_path / "ran"

    done = helperctl(env, "exec", "--", "touch", str(marker))

    assert 125 == done.returncode
    assert "helperd holds: corp, pypi (upload token only)" in done.stderr
    assert not marker.exists()
    assert all(s not in done.stderr for s in (CORP_PW, CORP_TOKEN, PYPI_TOKEN))


def test_twine_without_upload_exits_125(env: dict[str, str], tmp_path: Path) -> None:
    """--format twine without --upload is refused with 125 before anything runs."""
    marker = tmp_path / "ran"

    done = helperctl(env, "exec", "--repo", "corp", "--format", "twine", "--", "touch", str(marker))

    assert 125 == done.returncode
    assert "add --upload" in done.stderr
    assert not marker.exists()


def test_repo_gives_read_credentials_only(run_tree: object) -> None:
    """--repo corp: the child (helperctl itself, replaced) and its grandchild see corp's read
    variables and nothing else: no TWINE_*, no UV_PUBLISH_*, no token anywhere."""
    seen = run_tree("--repo", "corp")  # type: ignore[operator]

    expected = {
        "POETRY_HTTP_BASIC_CORP_USERNAME": "alice",
        "POETRY_HTTP_BASIC_CORP_PASSWORD": CORP_PW,
        "UV_INDEX_CORP_USERNAME": "alice",
        "UV_INDEX_CORP_PASSWORD": CORP_PW,
    }
    assert seen.exec_pid == seen.child_pid
    assert expected == seen.child
    assert expected == seen.grandchild
    assert CORP_TOKEN.encode() not in seen.raw
    assert PYPI_TOKEN.encode() not in seen.raw


def test_upload_gives_the_token(run_tree: object) -> None:
    """--repo corp --upload: child and grandchild also get corp's token for Poetry, twine and
    uv publish, with the upload URL; pypi's token is still not handed out."""
    seen = run_tree("--repo", "corp", "--upload")  # type: ignore[operator]

    expected = {
        "POETRY_HTTP_BASIC_CORP_USERNAME": "alice",
        "POETRY_HTTP_BASIC_CORP_PASSWORD": CORP_PW,
        "UV_INDEX_CORP_USERNAME": "alice",
        "UV_INDEX_CORP_PASSWORD": CORP_PW,
        "POETRY_PYPI_TOKEN_CORP": CORP_TOKEN,
        "TWINE_USERNAME": "__token__",
        "TWINE_PASSWORD": CORP_TOKEN,
        "TWINE_REPOSITORY_URL": CORP_UPLOAD,
        "UV_PUBLISH_USERNAME": "__token__",
        "UV_PUBLISH_PASSWORD": CORP_TOKEN,
        "UV_PUBLISH_URL": CORP_UPLOAD,
    }
    assert expected == seen.child
    assert expected == seen.grandchild
    assert PYPI_TOKEN.encode() not in seen.raw


def test_all_skips_upload_tokens(run_tree: object) -> None:
    """--all gives every repository's read credentials; upload tokens stay with helperd."""
    seen = run_tree("--all")  # type: ignore[operator]

    assert ["POETRY_HTTP_BASIC_CORP_PASSWORD", "POETRY_HTTP_BASIC_CORP_USERNAME"] == sorted(
        k for k in seen.grandchild if k.startswith("POETRY_")
    )
    assert CORP_TOKEN.encode() not in seen.raw
    assert PYPI_TOKEN.encode() not in seen.raw
    assert os.getpid() != seen.child_pid
