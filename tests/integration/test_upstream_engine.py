"""helperd's upstream client against a real ``bao server -dev``: reads, rotation, deletion, an
engine that is down or silent, TLS, KV version 1, namespaces and policies."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from helperd.core.config import UpstreamSettings
from helperd.core.record import Kind
from helperd.core.upstream_cache import Staleness, UpstreamCache
from helperd.upstream import DEFAULT_TIMEOUT, Engine, refresh
from helperd.upstream.errors import (
    EngineDownError,
    EngineTLSError,
    KVVersionError,
    PolicyDeniedError,
    SecretFileError,
    TokenRejectedError,
)
from tests.integration.upstream import (
    RUNNER_POLICY,
    bao_server,  # noqa: F401 - the fixture `bao`
    policy_token,
    put,
    root,
    secret_file,
    token_settings,
)
from tests.support.bao import Bao, running_bao

PASSWORD = "correct horse battery staple"


def _engine(bao: Bao, tmp_path: Path, token: str | None = None, **extra: Any) -> Engine:
    settings = token_settings(bao, tmp_path, token or bao.root_token, **extra)
    return Engine(settings)


def test_reads_secrets_put_with_the_cli(bao: Bao, tmp_path: Path) -> None:
    """A secret written with ``bao kv put`` (the password on stdin) is read as a repository;
    a token secret written through the API with a JSON list of URLs too."""
    bao.cli(
        "kv", "put", "-mount=secret", "helperd/corp",
        "username=ci", "password=-", "urls=https://pypi.corp/simple/ https://pypi.corp/upload/",
        stdin=PASSWORD,
    )  # fmt: skip
    put(bao, "tok", kind="token", password="pypi-tok", urls='["https://tok.example/simple/"]')
    fetched = _engine(bao, tmp_path).fetch()
    found = {s.record.name: s for s in fetched.secrets}
    corp, tok = found["corp"], found["tok"]
    assert ("ci", Kind.BASIC, ("https://pypi.corp/simple/", "https://pypi.corp/upload/")) == (
        corp.record.username,
        corp.record.kind,
        corp.record.urls,
    )
    assert PASSWORD == corp.password.get_secret_value()
    assert ("__token__", Kind.TOKEN, "pypi-tok") == (
        tok.record.username,
        tok.record.kind,
        tok.password.get_secret_value(),
    )
    assert ((), ()) == (fetched.skipped, fetched.warnings)


def test_rotated_password_is_read_at_next_refresh(bao: Bao, tmp_path: Path) -> None:
    """A password rotated upstream is the one the next refresh caches."""
    put(bao, "corp", username="ci", password="old")
    engine = _engine(bao, tmp_path)
    cache = refresh(engine, UpstreamCache())
    put(bao, "corp", username="ci", password="new")
    cache = refresh(engine, cache)
    assert ["new"] == [s.password.get_secret_value() for s in cache.secrets]


def test_deleted_secret_disappears(bao: Bao, tmp_path: Path) -> None:
    """Secrets deleted upstream (soft-deleted, or with their metadata) are gone after the
    next successful refresh; the others stay."""
    for name in ("a", "b", "c"):
        put(bao, name, username="ci", password=f"pw-{name}")
    engine = _engine(bao, tmp_path)
    cache = refresh(engine, UpstreamCache())
    assert ("a", "b", "c") == tuple(r.name for r in cache.records)
    bao.cli("kv", "delete", "-mount=secret", "helperd/b")
    bao.cli("kv", "metadata", "delete", "-mount=secret", "helperd/c")
    cache = refresh(engine, cache)
    assert ("a",) == tuple(r.name for r in cache.records)


def test_bad_secret_and_folder_are_skipped_without_values(bao: Bao, tmp_path: Path) -> None:
    """A secret that is no valid repository, and a folder under the prefix, are skipped and
    reported; the report never holds a value; the good secrets are served."""
    put(bao, "good", username="ci", password="pw")
    put(bao, "bad", username="ci", password="leak-me", urls="https://ci:leak-me@x.example/")
    put(bao, "nested/deeper", username="ci", password="pw")
    cache = refresh(_engine(bao, tmp_path), UpstreamCache())
    assert cache.last is not None
    assert ("good",) == tuple(r.name for r in cache.records)
    assert 2 == len(cache.last.skipped)
    assert "upstream secret 'bad': field urls: a URL must not carry a password" in "".join(
        cache.last.skipped
    )
    assert "leak-me" not in repr(cache.last)


def test_engine_down_serves_cache_and_says_so(bao: Bao, tmp_path: Path) -> None:
    """With the engine stopped, a refresh fails with "engine down" naming the address, and
    the cached records are still served (within max_stale)."""
    put(bao, "corp", username="ci", password=PASSWORD)
    engine = _engine(bao, tmp_path)
    cache = refresh(engine, UpstreamCache())
    bao.stop()
    with pytest.raises(EngineDownError) as caught:
        engine.fetch()
    assert f"upstream secret engine {bao.address} refused the connection" in caught.value.message
    cache = refresh(engine, cache)
    assert cache.last is not None
    assert ("engine_down", False) == (cache.last.reason, cache.last.ok)
    rule = Staleness.of(engine.settings)
    assert ("corp",) == tuple(r.name for r in rule.serve(cache, datetime.now(UTC)))


def test_silent_engine_times_out(tmp_path: Path) -> None:
    """An engine that accepts connections but never answers fails with "engine down" after
    the default per-call timeout, not later (no-hang bound: 5x)."""
    token = secret_file(tmp_path / "token", "s.whatever")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connects succeed through the backlog; nobody ever reads
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        engine = Engine(UpstreamSettings(address=address, token_file=token))
        started = time.monotonic()
        with pytest.raises(EngineDownError) as caught:
            engine.fetch()
        assert time.monotonic() - started < 5 * DEFAULT_TIMEOUT
    assert f"{address} did not answer within 5 s" in caught.value.message


def test_tls_needs_the_ca(tmp_path: Path) -> None:
    """An https engine whose CA is not given fails with a TLS error that says to set
    ca_file; with ca_file it is read."""
    folder = tmp_path / "tls-bao"
    folder.mkdir(mode=0o700)
    with running_bao(folder, tls=True) as server:
        put(server, "corp", username="ci", password=PASSWORD)
        without = _engine(server, tmp_path)
        with pytest.raises(EngineTLSError, match="set \\[upstream\\] ca_file"):
            without.fetch()
        with_ca = _engine(server, tmp_path, ca_file=server.ca_file)
        assert ["corp"] == [s.record.name for s in with_ca.fetch().secrets]


def test_kv_version_1_is_refused_clearly(bao: Bao, tmp_path: Path) -> None:
    """A KV version 1 mount is refused with a message naming the mount and the fix, rather
    than every secret seeming deleted."""
    root(bao).sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    with pytest.raises(KVVersionError) as caught:
        _engine(bao, tmp_path, mount="kv1").fetch()
    assert (
        f"upstream mount kv1/ at {bao.address} is a KV version 1 engine; helperd reads KV"
        " version 2: upgrade it (`bao kv enable-versioning kv1/`)"
    ) in caught.value.message


def test_namespace(bao: Bao, tmp_path: Path) -> None:
    """With ``namespace``, secrets are read from that namespace's mount."""
    root(bao).sys.create_namespace("eng")
    in_eng = root(bao, namespace="eng")
    in_eng.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    in_eng.secrets.kv.v2.create_or_update_secret(
        path="helperd/eng-only", secret={"username": "ci", "password": "pw"}, mount_point="secret"
    )
    put(bao, "root-only", username="ci", password="pw")
    fetched = _engine(bao, tmp_path, namespace="eng").fetch()
    assert ["eng-only"] == [s.record.name for s in fetched.secrets]


def test_runner_policy_from_the_docs_is_enough(bao: Bao, tmp_path: Path) -> None:
    """The read-only policy docs/fleet.md gives runners lets helperd read every secret."""
    put(bao, "corp", username="ci", password=PASSWORD)
    token = policy_token(bao, RUNNER_POLICY)
    assert ["corp"] == [s.record.name for s in _engine(bao, tmp_path, token).fetch().secrets]


@pytest.mark.parametrize(
    ("policy", "path", "capability"),
    [
        pytest.param(
            'path "secret/metadata/helperd/*" { capabilities = ["list"] }',
            "secret/data/helperd/corp",
            "read",
            id="no-read",
        ),
        pytest.param(
            'path "secret/data/helperd/*" { capabilities = ["read"] }',
            "secret/metadata/helperd/",
            "list",
            id="no-list",
        ),
        pytest.param(
            'path "other/*" { capabilities = ["read", "list"] }',
            "secret/metadata/helperd/",
            "list",
            id="nothing-on-the-mount",
        ),
    ],
)
def test_policy_denial_names_path_and_capability(
    bao: Bao, tmp_path: Path, policy: str, path: str, capability: str
) -> None:
    """A policy without ``read`` (or ``list``) on the path gives an error naming the path and
    the missing capability, and the policy that would do."""
    put(bao, "corp", username="ci", password=PASSWORD)
    engine = _engine(bao, tmp_path, policy_token(bao, policy))
    with pytest.raises(PolicyDeniedError) as caught:
        engine.fetch()
    assert (path, capability) == (caught.value.path, caught.value.capability)
    assert f"denied {capability!r} on {path}: the token's policy needs" in caught.value.message


def test_bad_token_file(bao: Bao, tmp_path: Path) -> None:
    """A token the engine refuses, and a token file open to others, each get their own
    clear error; neither message holds the token."""
    with pytest.raises(TokenRejectedError, match="refused the token in"):
        _engine(bao, tmp_path, "s.not-a-token").fetch()
    loose = secret_file(tmp_path / "loose", bao.root_token, mode=0o644)
    engine = Engine(UpstreamSettings(address=bao.address, token_file=loose))
    with pytest.raises(SecretFileError) as caught:
        engine.fetch()
    assert f"upstream token_file {loose} is open to group or others" in caught.value.message
    assert bao.root_token not in caught.value.message
