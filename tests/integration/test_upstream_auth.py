"""Logging in to a real ``bao server -dev``: AppRole with short TTLs (renewal, re-login after
the max TTL or a refused renewal), an expired secret_id, and token files that cannot be
renewed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helperd.core.upstream_cache import UpstreamCache
from helperd.upstream import Engine, refresh
from helperd.upstream.auth import AppRoleAuth, TokenFileAuth
from helperd.upstream.errors import AppRoleLoginError, TokenNotRenewableError
from tests.integration.upstream import (
    RUNNER_POLICY,
    approle,
    bao_server,  # noqa: F401 - the fixture `bao`
    policy_token,
    put,
    root,
    token_settings,
)
from tests.support.bao import Bao


def _counts(engine: Engine) -> tuple[int, int]:
    auth = engine.auth
    assert isinstance(auth, AppRoleAuth)
    return auth.logins, auth.renewals


def test_approle_renews_then_logs_in_again_after_max_ttl(bao: Bao, tmp_path: Path) -> None:
    """With token_ttl=3s and token_max_ttl=6s: the first fetch logs in, the next one at once
    uses its token as is; past half the TTL the token is renewed (no new login); past the max
    TTL helperd logs in again. Every fetch reads the secrets."""
    put(bao, "corp", username="ci", password="pw")
    engine = Engine(approle(bao, tmp_path, token_ttl="3s", token_max_ttl="6s"))
    assert ["corp"] == [s.record.name for s in engine.fetch().secrets]
    engine.fetch()  # at once: the token is fresh, neither renewed nor replaced
    assert (1, 0) == _counts(engine)
    time.sleep(2)  # past half of 3 s: renewed before the TTL ends
    assert ["corp"] == [s.record.name for s in engine.fetch().secrets]
    assert (1, 1) == _counts(engine)
    time.sleep(4.5)  # past token_max_ttl: the token is gone, a new login is needed
    assert ["corp"] == [s.record.name for s in engine.fetch().secrets]
    assert (2, 1) == _counts(engine)


def test_approle_logs_in_again_when_renewal_is_refused(bao: Bao, tmp_path: Path) -> None:
    """When the engine refuses to renew (here: the token was revoked), helperd logs in again
    with its role_id and secret_id, and the fetch succeeds."""
    put(bao, "corp", username="ci", password="pw")
    engine = Engine(approle(bao, tmp_path, token_ttl="4s", token_max_ttl="60s"))
    engine.fetch()
    client = root(bao)
    for accessor in client.auth.token.list_accessors()["data"]["keys"]:
        meta = client.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
        if meta.get("role_name") == "runner":
            client.auth.token.revoke_accessor(accessor)
    time.sleep(2.1)  # past half of 4 s: a renewal is due, and refused
    assert ["corp"] == [s.record.name for s in engine.fetch().secrets]
    assert (2, 0) == _counts(engine)


def test_expired_secret_id_is_a_clear_error(bao: Bao, tmp_path: Path) -> None:
    """An expired secret_id gives an AppRole error naming the secret_id file and how to issue
    a new one; the secret_id itself is not in the message, nor in the refresh's record."""
    settings = approle(bao, tmp_path, secret_id_ttl="2s")
    assert settings.secret_id_file is not None
    secret_id = settings.secret_id_file.read_text().strip()
    time.sleep(2.5)
    engine = Engine(settings)
    with pytest.raises(AppRoleLoginError) as caught:
        engine.fetch()
    assert f"the secret_id in {settings.secret_id_file} has expired" in caught.value.message
    assert "bao write -f auth/approle/role/ROLE/secret-id" in caught.value.message
    cache = refresh(engine, UpstreamCache())
    assert cache.last is not None
    assert "approle" == cache.last.reason
    assert secret_id not in caught.value.message + repr(cache)


def test_token_file_renewal_refused(bao: Bao, tmp_path: Path) -> None:
    """A renewable token whose policy may not renew itself, past half its TTL, fails with
    "token not renewable" naming the file and the capability to grant."""
    put(bao, "corp", username="ci", password="pw")
    # Without the default policy, and lookup-self given back: renew-self alone is missing.
    lookup = 'path "auth/token/lookup-self" { capabilities = ["read"] }'
    token = policy_token(bao, RUNNER_POLICY + lookup, ttl="4s", no_default_policy=True)
    engine = Engine(token_settings(bao, tmp_path, token))
    engine.fetch()
    time.sleep(2.1)
    with pytest.raises(TokenNotRenewableError) as caught:
        engine.fetch()
    assert "give its policy `update` on auth/token/renew-self" in caught.value.message
    assert token not in caught.value.message


def test_token_file_renewed(bao: Bao, tmp_path: Path) -> None:
    """A renewable token past half its TTL is renewed at the next fetch, so that it still
    works after its first TTL has run out."""
    put(bao, "corp", username="ci", password="pw")
    engine = Engine(token_settings(bao, tmp_path, policy_token(bao, RUNNER_POLICY, ttl="4s")))
    engine.fetch()
    time.sleep(2.1)
    engine.fetch()
    time.sleep(2.1)  # 4.2 s after it was made: alive only because it was renewed
    assert ["corp"] == [s.record.name for s in engine.fetch().secrets]
    auth = engine.auth
    assert isinstance(auth, TokenFileAuth)
    assert 2 == auth.renewals


def test_non_renewable_token_warns(bao: Bao, tmp_path: Path) -> None:
    """A token that cannot be renewed is used while it lasts; past half its TTL the fetch
    warns that it will expire and says what to do."""
    put(bao, "corp", username="ci", password="pw")
    token = policy_token(bao, RUNNER_POLICY, ttl="4s", renewable=False)
    engine = Engine(token_settings(bao, tmp_path, token))
    assert () == engine.fetch().warnings
    time.sleep(2.1)
    fetched = engine.fetch()
    assert ["corp"] == [s.record.name for s in fetched.secrets]
    assert 1 == len(fetched.warnings)
    assert "is not renewable and expires in" in fetched.warnings[0]
