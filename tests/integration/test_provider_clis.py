"""The presets against the real cloud CLIs, pointed at local stand-ins (no cloud reached).

- ``aws`` (the CLI on PATH; the test extra installs it, ``awscli``) runs the CodeArtifact
  preset against a small HTTP stand-in on 127.0.0.1 that answers GetAuthorizationToken;
  ``AWS_ENDPOINT_URL`` points it there and travels through the clean environment like any
  ``AWS_*`` variable. moto has no CodeArtifact.
- ``gcloud`` runs the Artifact Registry preset with ``CLOUDSDK_AUTH_ACCESS_TOKEN_FILE`` (a
  token file instead of a login), in a private ``CLOUDSDK_CONFIG``.
- Both are run logged out too: the error is the CLI's own advice, with its status.

``az`` is not installed here (azure-cli is a large install): its output is tested from the
recorded documented format only (tests/unit/test_provider.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from helperd.core import provider
from helperd.core.provider_output import ProviderError
from helperd.integrations.providers.runner import run_provider
from tests.support.tools import require_tool

CA_TOKEN = "eyJ2ZXIiOjF9.stand-in-codeartifact-token-0123456789"
EXPIRATION = float(int(time.time()) // 3600 * 3600 + 12 * 3600)
"""12 hours ahead (on the hour) of when the tests start, as CodeArtifact hands out: a fixed
date here once turned into an expired token the day it passed."""


class _CodeArtifact(BaseHTTPRequestHandler):
    """GetAuthorizationToken as the service answers it (rest-json, epoch seconds)."""

    asked: list[str] = []  # noqa: RUF012 - one stand-in per test, read by the test

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.asked.append(self.path)
        body = json.dumps({"authorizationToken": CA_TOKEN, "expiration": EXPIRATION}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def codeartifact() -> Iterator[str]:
    """A CodeArtifact stand-in on 127.0.0.1; yields its URL."""
    _CodeArtifact.asked = []
    server = HTTPServer(("127.0.0.1", 0), _CodeArtifact)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def aws_env(home: Path, endpoint: str, *, logged_in: bool) -> dict[str, str]:
    """The daemon's environment as the runner sees it: a private HOME, the stand-in, and
    credentials only when logged in. Instance metadata is off: no address but 127.0.0.1."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }
    if logged_in:
        env |= {"AWS_ACCESS_KEY_ID": "AKIDSTANDIN", "AWS_SECRET_ACCESS_KEY": "stand-in"}
    return env


def test_codeartifact_preset_with_real_aws(tmp_path: Path, codeartifact: str) -> None:
    """The real aws CLI, run by the preset's argv, prints what the parser reads: the token
    and its expiry; the stand-in was asked for the domain and owner given."""
    require_tool("aws")
    spec = provider.resolve_command(
        provider.codeartifact("dom", "111122223333", region="us-east-1")
    )
    minted = asyncio.run(
        run_provider(spec, base_env=aws_env(tmp_path, codeartifact, logged_in=True))
    )
    assert CA_TOKEN == minted.token.get_secret_value()
    assert datetime.fromtimestamp(EXPIRATION, UTC) == minted.expires_at
    assert ["/v1/authorization-token?domain=dom&domain-owner=111122223333"] == _CodeArtifact.asked


def test_codeartifact_logged_out(tmp_path: Path, codeartifact: str) -> None:
    """With no AWS credentials the run fails with aws's own advice and status."""
    require_tool("aws")
    spec = provider.resolve_command(
        provider.codeartifact("dom", "111122223333", region="us-east-1")
    )
    with pytest.raises(ProviderError) as caught:
        asyncio.run(run_provider(spec, base_env=aws_env(tmp_path, codeartifact, logged_in=False)))
    expected = "aws exited with status 255: Unable to locate credentials"
    assert caught.value.message.startswith(expected)
    assert [] == _CodeArtifact.asked


def gcloud_env(home: Path, token_file: Path | None) -> dict[str, str]:
    """A private gcloud configuration, with no update check or usage report (no network)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CLOUDSDK_CONFIG": str(home / "gcloud"),
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }
    if token_file is not None:
        env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] = str(token_file)
    return env


def test_gar_preset_with_real_gcloud(tmp_path: Path) -> None:
    """The real gcloud prints the access token on a line of its own: the preset reads it
    and gives it the configured hour."""
    require_tool("gcloud")
    token = "ya29.stand-in-access-token-0123456789abcdef"
    (tmp_path / "token").write_text(token + "\n")
    spec = provider.resolve_command(provider.gar())
    started = datetime.now(UTC)
    minted = asyncio.run(run_provider(spec, base_env=gcloud_env(tmp_path, tmp_path / "token")))
    assert token == minted.token.get_secret_value()
    assert 3600 == round((minted.expires_at - minted.minted_at).total_seconds())
    assert started <= minted.minted_at


def test_gar_logged_out(tmp_path: Path) -> None:
    """With no account gcloud fails with its own advice (gcloud auth login)."""
    require_tool("gcloud")
    spec = provider.resolve_command(provider.gar())
    with pytest.raises(ProviderError) as caught:
        asyncio.run(run_provider(spec, base_env=gcloud_env(tmp_path, None)))
    message = caught.value.message
    assert message.startswith("gcloud exited with status 1: ERROR:")
    assert "gcloud auth login" in message
