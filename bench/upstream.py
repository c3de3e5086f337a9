"""Item 9: fleets (issue 15). A get served from the upstream cache against a local get, and the
cost of one refresh of 1,000 upstream secrets from a real ``bao server -dev``.

A daemon on a key-file store holding one local repository has an ``[upstream]`` table pointing
at a dev server that holds ``SECRETS`` repositories (one per secret, each with its own URL).
Over one kept connection, gets by URL of the local repository and of the middle upstream one
take turns in rounds, so the machine's noise falls on both alike; the ratio of their medians
is the cost of serving from the cache. The refresh is timed in this process, through the
daemon's own code (`helperd.upstream.engine.refresh`: login, mount check, list, one read per
secret), a few times.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.process import helperd_daemon, new_key_file
from bench.stats import ratio, summarize
from helperd.core.config import UpstreamSettings
from helperd.core.upstream_cache import UpstreamCache
from helperd.upstream.engine import Engine, refresh

__all__ = ["SECRETS", "upstream"]

SECRETS = 1_000
LOCAL_URL = "https://local.example.test/simple/"


def _url(index: int) -> str:
    return f"https://up{index}.example.test/simple/"


def _fill(bao: Any, count: int) -> None:
    """``count`` repository secrets under ``secret/helperd/``, written through the API."""
    from tests.integration.upstream import root

    client = root(bao)
    for index in range(count):
        client.secrets.kv.v2.create_or_update_secret(
            path=f"helperd/up{index:05d}",
            secret={"username": "alice", "password": f"pw-{index}", "urls": _url(index)},
            mount_point="secret",
        )


def _get_line(url: str, request_id: int) -> bytes:
    return f'{{"v":1,"id":{request_id},"op":"get","url":"{url}privpkg/"}}\n'.encode()


def _ask(sock: socket.socket, line: bytes) -> float:
    """Send one request on ``sock`` and read its answer; the seconds it took."""
    started = time.perf_counter()
    sock.sendall(line)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the daemon closed the connection")
        data += chunk
    took = time.perf_counter() - started
    if b'"ok":true' not in data:
        raise RuntimeError("a get failed: " + data[:200].decode(errors="replace"))
    return took


def upstream(folder: Path, gets: int, rounds: int, refreshes: int) -> dict[str, Any]:
    """Measure item 9 in ``folder``; the results for the report."""
    from tests.support.bao import running_bao

    bao_folder = folder / "bao"
    bao_folder.mkdir(mode=0o700)
    with running_bao(bao_folder) as bao:
        filled = time.perf_counter()
        _fill(bao, SECRETS)
        fill_seconds = time.perf_counter() - filled
        token = folder / "token"
        token.write_text(bao.root_token + "\n")
        token.chmod(0o600)
        settings = UpstreamSettings(address=bao.address, token_file=token)
        engine = Engine(settings)
        times = []
        try:
            for _ in range(refreshes):
                started = time.perf_counter()
                cache = refresh(engine, UpstreamCache(), datetime.now(UTC))
                times.append(time.perf_counter() - started)
                if cache.last is None or not cache.last.ok or len(cache.secrets) != SECRETS:
                    raise RuntimeError(f"refresh failed: {cache.last}")
        finally:
            engine.close()
        home = folder / "hd"
        home.mkdir(mode=0o700)
        (home / "config.toml").write_text(
            f'[upstream]\naddress = "{bao.address}"\ntoken_file = "{token}"\n'
        )
        (home / "config.toml").chmod(0o600)
        key = new_key_file(folder / "hd.key")
        with helperd_daemon(home, key) as daemon:
            with daemon.client() as client:
                client.set("local", "local-pw", username="alice", urls=[LOCAL_URL])
                deadline = time.monotonic() + 120
                while (client.status().upstream or {}).get("records") != SECRETS:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the daemon's first refresh did not end")
                    time.sleep(0.2)
            local, cached = _interleaved(daemon.socket, gets, rounds)
    local_us, cached_us = summarize(local).scaled(1e6), summarize(cached).scaled(1e6)
    refresh_s = summarize(times)
    return {
        "secrets": SECRETS,
        "fill_seconds": fill_seconds,
        "gets": gets,
        "rounds": rounds,
        "local_us": local_us.as_dict(),
        "upstream_us": cached_us.as_dict(),
        "p50_ratio": ratio(cached_us.p50, local_us.p50),
        "p99_ratio": ratio(cached_us.p99, local_us.p99),
        "refresh_s": refresh_s.as_dict(),
        "refreshes": refreshes,
    }


def _interleaved(path: Path, gets: int, rounds: int) -> tuple[list[float], list[float]]:
    """Gets of the local and of an upstream repository in turns, over one connection."""
    local, cached = [], []
    upstream_url = _url(SECRETS // 2)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        for _ in range(100):  # warm both paths (the lookup index, the connection)
            _ask(sock, _get_line(LOCAL_URL, 0))
            _ask(sock, _get_line(upstream_url, 0))
        for round_ in range(rounds):
            first, second = (local, cached) if round_ % 2 == 0 else (cached, local)
            urls = (LOCAL_URL, upstream_url) if round_ % 2 == 0 else (upstream_url, LOCAL_URL)
            for batch, url in zip((first, second), urls, strict=True):
                line = _get_line(url, 1)
                batch.extend(_ask(sock, line) for _ in range(gets))
    return local, cached
