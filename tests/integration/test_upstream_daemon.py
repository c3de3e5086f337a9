"""The daemon with an ``[upstream]`` table against a real ``bao server -dev``: the first refresh
at start, the lookup order, rotation after the TTL, deletion, the engine stopped (served from
the cache, across a restart, until ``max_stale``, then refused naming the engine), the
``upstream`` op through helperctl, ``set --upstream`` and its policy error, and the cache kept
encrypted.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helperd_client import Client
from helperd_client.errors import NotFoundError, StoreUnavailableError

from helperd.testing import Daemon, start_daemon
from tests.integration.upstream import RUNNER_POLICY, bao_server, policy_token, put, root
from tests.support.bao import Bao

__all__ = ["bao_server"]  # the fixture, used by name

HELPERCTL = [sys.executable, "-c", "from helperd.ctl.main import main; main()"]
URL = "http://127.0.0.1:9/corp/simple/"
BOUND = 30.0
"""Seconds a condition may take to hold: far above every TTL here (no speed is asserted)."""


def write_config(home: Path, bao: Bao, token: str, **table: float) -> None:
    """config.toml with an ``[upstream]`` table reading with ``token`` (in a 0600 file)."""
    token_file = home / "bao-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    lines = ["[upstream]", f'address = "{bao.address}"', f'token_file = "{token_file}"']
    lines += [f"{key} = {value}" for key, value in table.items()]
    config = home / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)


def start(home: Path, key_file: Path) -> Daemon:
    """A daemon with a key-file store (always initialized and unlocked) in ``home``."""
    return start_daemon(
        home, "--store", "file", "--log-level", "debug", env={"HELPERD_KEY_FILE": str(key_file)}
    )


@pytest.fixture
def reader(bao: Bao) -> str:
    """A token with the runner policy of docs/fleet.md (read and list only)."""
    return policy_token(bao, RUNNER_POLICY)


@pytest.fixture
def daemon(home: Path, key_file: Path, bao: Bao, reader: str) -> Iterator[Daemon]:
    """A daemon whose upstream is ``bao``, with a 1 s TTL; ``corp`` is upstream at its start."""
    put(bao, "corp", username="alice", password="first-pw", urls=URL)
    write_config(home, bao, reader, ttl_seconds=1, max_stale_seconds=86_400)
    started = start(home, key_file)
    try:
        yield started
    finally:
        started.stop()


def until(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` until it returns something true (or stops raising); its last result."""
    deadline = time.monotonic() + BOUND
    while True:
        try:
            result = check()
        except (NotFoundError, StoreUnavailableError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def password(client: Client, **query: str) -> str:
    """The password a get answers."""
    return client.get(**query).password


def helperctl(daemon: Daemon, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the real helperctl against ``daemon``."""
    return subprocess.run(
        [*HELPERCTL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        env=daemon.env,
        check=False,
    )


def test_serves_upstream_records_after_local_ones(daemon: Daemon) -> None:
    """The first refresh runs at start; a get by name or URL serves the upstream record; list
    marks its source; a local record of the same name and username shadows it; status has
    the upstream's last refresh, result and cache age."""
    with daemon.client() as client:
        assert "first-pw" == until(lambda: password(client, url=URL + "pkg/"), "the first refresh")
        sources = {(r.name, r.source) for r in client.list()}
        assert {("corp", "upstream")} == sources
        client.set("corp", "local-pw", username="alice", urls=[URL])
        assert "local-pw" == password(client, name="corp")
        assert [("corp", "local")] == [(r.name, r.source) for r in client.list()]
        client.delete("corp", "alice")
        assert "first-pw" == password(client, name="corp")
        upstream = client.status().upstream
    assert upstream is not None
    assert ("ok", 1) == (upstream["result"], upstream["records"])
    assert upstream["cache_age_seconds"] is not None


def test_rotation_and_deletion_follow_the_engine(daemon: Daemon, bao: Bao) -> None:
    """A password rotated upstream is served after the TTL; a secret deleted upstream is gone
    at the next refresh."""
    with daemon.client() as client:
        until(lambda: password(client, name="corp"), "the first refresh")
        put(bao, "corp", username="alice", password="second-pw", urls=URL)
        until(lambda: password(client, name="corp") == "second-pw", "the rotated password")
        root(bao).secrets.kv.v2.delete_metadata_and_all_versions(
            path="helperd/corp", mount_point="secret"
        )
        until(lambda: not client.list(), "the deletion")
        with pytest.raises(NotFoundError):
            client.get(name="corp")


def test_engine_down_serves_the_cache_across_a_restart_until_max_stale(
    home: Path, key_file: Path, bao: Bao, reader: str
) -> None:
    """With the engine stopped, the cache is served, also by a restarted daemon (it is kept
    in the local store), until max_stale; then a get is refused with store_unavailable naming
    the engine's address. The password is in no file in plain text."""
    put(bao, "corp", username="alice", password="cached-pw-9Xq", urls=URL)
    write_config(home, bao, reader, ttl_seconds=1, max_stale_seconds=6)
    first = start(home, key_file)
    try:
        with first.client() as client:
            until(lambda: password(client, name="corp"), "the first refresh")
    finally:
        first.stop()
    bao.stop()
    second = start(home, key_file)
    try:
        with second.client() as client:
            assert "cached-pw-9Xq" == password(client, name="corp")
            until(lambda: client.status().upstream["result"] == "engine_down", "a failed refresh")
            assert "cached-pw-9Xq" == password(client, name="corp")
            until(lambda: client.status().upstream["state"] == "expired", "max_stale")
            with pytest.raises(StoreUnavailableError) as refused:
                client.get(name="corp")
    finally:
        second.stop()
    assert bao.address in refused.value.message
    leaked = [p for p in home.rglob("*") if p.is_file() and b"cached-pw-9Xq" in p.read_bytes()]
    assert [] == leaked


def test_helperctl_upstream_show_test_refresh(daemon: Daemon, bao: Bao) -> None:
    """helperctl upstream show --json, test and refresh go through the daemon."""
    shown = json.loads(helperctl(daemon, "upstream", "show", "--json").stdout)
    assert (True, bao.address) == (shown["configured"], shown["settings"]["address"])
    tested = helperctl(daemon, "upstream", "test")
    assert (0, "ok: read 1 secret(s) from " + bao.address) == (
        tested.returncode,
        tested.stdout.strip(),
    )
    refreshed = helperctl(daemon, "upstream", "refresh")
    assert 0 == refreshed.returncode, refreshed.stderr
    assert refreshed.stdout.startswith("refreshed: fresh, 1 record(s), last refresh: ok")


def test_set_upstream_denied_by_a_read_only_policy(daemon: Daemon) -> None:
    """set --upstream with the runner's read-only policy fails with the policy's error,
    naming the path and the capability; nothing is written locally."""
    done = helperctl(
        daemon, "set", "newrepo", "-u", "bob", "--password-stdin", "--upstream", stdin="pw"
    )
    assert 1 == done.returncode
    assert "denied 'update' on secret/data/helperd/newrepo" in done.stderr
    with daemon.client() as client:
        assert ["corp"] == [r.name for r in until(client.list, "the first refresh")]


def test_set_upstream_writes_through_the_engine(home: Path, key_file: Path, bao: Bao) -> None:
    """set --upstream with a token allowed to write stores a KV v2 secret that the daemon then
    serves as an upstream record."""
    write_config(home, bao, bao.root_token)
    daemon = start(home, key_file)
    try:
        done = helperctl(
            daemon,
            "set",
            "newrepo",
            "-u",
            "bob",
            "--url",
            URL,
            "--password-stdin",
            "--upstream",
            stdin="written-pw",
        )
        assert 0 == done.returncode, done.stderr
        with daemon.client() as client:
            assert "written-pw" == password(client, url=URL)
            assert [("newrepo", "upstream")] == [(r.name, r.source) for r in client.list()]
    finally:
        daemon.stop()
    read = root(bao).secrets.kv.v2.read_secret_version(
        path="helperd/newrepo", mount_point="secret", raise_on_deleted_version=True
    )
    assert "bob" == read["data"]["data"]["username"]


def test_a_hung_engine_never_delays_a_get(home: Path, key_file: Path, bao: Bao) -> None:
    """An engine that accepts connections and never answers holds each refresh (one a
    second) for the engine's 5 s bound; meanwhile a local get, status and upstream show are
    answered within the client's default timeout (2 s): the refresh runs in its own thread."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections queue in the backlog; nothing is ever read
        port = silent.getsockname()[1]
        write_config(home, bao, bao.root_token, ttl_seconds=1)  # a failed one retried at 1 s
        config = home / "config.toml"
        config.write_text(config.read_text().replace(bao.address, f"http://127.0.0.1:{port}"))
        daemon = start(home, key_file)
        try:
            with Client(daemon.socket) as client:  # the default timeout users get, 2 s
                client.set("mine", "local-pw", username="me")
                for _ in range(40):
                    assert "local-pw" == password(client, name="mine")
                    assert "never" == client.status().upstream["state"]
                    assert client.upstream("show")["configured"]
                    time.sleep(0.25)
        finally:
            daemon.stop()
