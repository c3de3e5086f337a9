"""Helpers for the upstream tests: a real ``bao server -dev`` per test, and settings that
point helperd's engine client at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from helperd.core.config import UpstreamSettings
from tests.support.bao import Bao, running_bao

# The policy docs/fleet.md tells operators to write for runners (least privilege, read-only).
RUNNER_POLICY = """
path "secret/data/helperd/*" {
  capabilities = ["read", "list"]
}
path "secret/metadata/helperd/*" {
  capabilities = ["read", "list"]
}
"""


@pytest.fixture(name="bao")
def bao_server(tmp_path: Path) -> Iterator[Bao]:
    """A fresh ``bao server -dev`` on 127.0.0.1, stopped by PID when the test ends."""
    folder = tmp_path / "bao"
    folder.mkdir(mode=0o700)
    with running_bao(folder) as server:
        yield server


def root(bao: Bao, namespace: str | None = None) -> hvac.Client:
    """An hvac client holding the dev server's root token."""
    verify = str(bao.ca_file) if bao.ca_file else True
    return hvac.Client(
        url=bao.address, token=bao.root_token, verify=verify, timeout=10, namespace=namespace
    )


def put(bao: Bao, name: str, prefix: str = "helperd", **fields: Any) -> None:
    """Write secret ``prefix/name`` through the API (a password never on a command line)."""
    root(bao).secrets.kv.v2.create_or_update_secret(
        path=f"{prefix}/{name}", secret=fields, mount_point="secret"
    )


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    """Write a token/role_id/secret_id file with ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    os.chmod(path, mode)
    return path


def token_settings(bao: Bao, folder: Path, token: str, **extra: Any) -> UpstreamSettings:
    """Settings with token auth: ``token`` in a 0600 file under ``folder``."""
    path = secret_file(folder / f"token-{len(list(folder.iterdir()))}", token)
    return UpstreamSettings(address=bao.address, token_file=path, **extra)


def policy_token(bao: Bao, policy: str, **options: Any) -> str:
    """A token whose only policy is ``policy`` (plus ``default`` unless told otherwise)."""
    client = root(bao)
    name = f"p{abs(hash(policy)) % 10**8}"
    client.sys.create_or_update_policy(name, policy)
    created = client.auth.token.create(policies=[name], **options)
    return str(created["auth"]["client_token"])


def approle(bao: Bao, folder: Path, **role: Any) -> UpstreamSettings:
    """An AppRole ``runner`` with the runner policy; its role_id and a fresh secret_id in
    0600 files; settings that log in with them."""
    client = root(bao)
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    client.sys.create_or_update_policy("runner", RUNNER_POLICY)
    client.auth.approle.create_or_update_approle("runner", token_policies=["runner"], **role)
    role_id = client.auth.approle.read_role_id("runner")["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("runner")["data"]["secret_id"]
    return UpstreamSettings(
        address=bao.address,
        role_id_file=secret_file(folder / "role_id", role_id),
        secret_id_file=secret_file(folder / "secret_id", secret_id),
    )
