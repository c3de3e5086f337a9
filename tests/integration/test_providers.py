"""Provider records against a real daemon: helperctl set --provider-command, get, list, status,
exec, a restart, and what a failing provider does. The provider is a real command (a script
that mints a fresh random token per run and counts its runs in a file)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helperd.testing import Daemon, start_daemon

HELPERCTL = str(Path(sys.executable).parent / "helperctl")
URL = "https://pkgs.corp.test/simple/"
LEAK = "AKIAleakedleakedleakedleaked0123"
"""A token-like word the failing provider prints on stderr: shown only scrubbed."""

PROVIDER = f"""#!{sys.executable}
import pathlib, secrets, sys, time
state = pathlib.Path(sys.argv[1])
with (state / "runs").open("a") as runs:
    runs.write(f"{{time.time()}}\\n")
mode = (state / "mode").read_text().strip()
if mode == "fail":
    print("denied: key {LEAK} is not allowed", file=sys.stderr)
    sys.exit(3)
token = "tok-" + secrets.token_urlsafe(24)
with (state / "tokens").open("a") as tokens:
    tokens.write(token + "\\n")
print(token)
"""


@dataclass
class Provider:
    """The fake provider's script and state folder."""

    script: Path
    state: Path

    def mode(self, mode: str) -> None:
        """``ok`` mints a token; ``fail`` exits 3 with a token-like word on stderr."""
        (self.state / "mode").write_text(mode)

    @property
    def runs(self) -> int:
        """How many times it ran."""
        path = self.state / "runs"
        return len(path.read_text().splitlines()) if path.exists() else 0

    @property
    def tokens(self) -> list[str]:
        """Every token it minted, oldest first."""
        path = self.state / "tokens"
        return path.read_text().split() if path.exists() else []


@pytest.fixture
def provider(tmp_path: Path) -> Provider:
    """A fake provider in ``ok`` mode."""
    state = tmp_path / "provider"
    state.mkdir()
    script = tmp_path / "mint-token"
    script.write_text(PROVIDER)
    script.chmod(0o700)
    found = Provider(script, state)
    found.mode("ok")
    return found


@pytest.fixture
def env(key_daemon: Daemon) -> dict[str, str]:
    """helperctl's environment for the test's daemon."""
    return dict(key_daemon.env)


def helperctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the helperctl console script to the end."""
    return subprocess.run(
        [HELPERCTL, *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def set_provider(
    env: dict[str, str], provider: Provider, *flags: str
) -> subprocess.CompletedProcess[str]:
    """``helperctl set corp --provider-command FLAGS -- SCRIPT STATE``."""
    return helperctl(
        env,
        *("set", "corp", "--url", URL, "--username", "aws", "--provider-command", *flags),
        *("--", str(provider.script), str(provider.state)),
    )


def listed(env: dict[str, str]) -> dict[str, object]:
    """The one record ``list --json`` shows."""
    done = helperctl(env, "list", "--json")
    assert 0 == done.returncode, done.stderr
    records = json.loads(done.stdout)
    assert 1 == len(records)
    return dict(records[0])


def get(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``helperctl get corp``."""
    return helperctl(env, "get", "corp")


def test_failing_provider_at_set_stores_nothing(env: dict[str, str], provider: Provider) -> None:
    """A provider that fails at set: exit 1, its stderr shown scrubbed, nothing stored."""
    provider.mode("fail")

    done = set_provider(env, provider)

    assert 1 == done.returncode
    assert "exited with status 3: denied: key [redacted] is not allowed" in done.stderr
    assert LEAK not in done.stderr
    assert 1 == provider.runs
    assert "[]" == helperctl(env, "list", "--json").stdout.strip()


def test_set_with_the_defaults_mints_once_and_get_serves_it(
    env: dict[str, str], provider: Provider, key_daemon: Daemon
) -> None:
    """set runs the provider once (a text token lives the default hour); 50 concurrent gets,
    exec and status are served from it without another run; list shows the provider."""
    before = datetime.now(UTC)

    done = set_provider(env, provider)

    assert 0 == done.returncode, done.stderr
    assert "(provider command)" in done.stderr
    [token] = provider.tokens
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: get(env).stdout.strip(), range(50)))
    assert [token] * 50 == answers
    shown = helperctl(
        env, "exec", "--repo", "corp", "--", sys.executable, "-c",
        "import os; print(os.environ['UV_INDEX_CORP_PASSWORD'])",
    )  # fmt: skip
    assert (0, token) == (shown.returncode, shown.stdout.strip()), shown.stderr
    record = listed(env)
    assert ("command", None, "token") == (
        record["provider"],
        record["provider_error"],
        record["kind"],
    )
    expires = datetime.fromisoformat(str(record["expires_at"]))
    assert 3590 <= (expires - before).total_seconds() <= 3700
    status = json.loads(helperctl(env, "status", "--json").stdout)
    assert (1, []) == (status["providers"], status["providers_failing"])
    assert 1 == provider.runs
    assert token not in key_daemon.log.read_text()


def test_restart_serves_the_stored_token_without_a_run(
    env: dict[str, str], provider: Provider, key_daemon: Daemon, key_file: Path
) -> None:
    """The minted token is stored encrypted (not in plaintext in the home) and a restarted
    daemon serves it without running the provider again."""
    assert 0 == set_provider(env, provider).returncode
    [token] = provider.tokens
    key_daemon.stop()
    on_disk = [p for p in key_daemon.home.rglob("*") if p.is_file() and token in _read(p)]
    assert [] == on_disk

    again = start_daemon(
        key_daemon.home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)}
    )
    try:
        assert token == get(env).stdout.strip()
    finally:
        again.stop()
    assert 1 == provider.runs


def test_refresh_once_at_the_threshold_then_a_failure_keeps_the_token_until_expiry(
    env: dict[str, str], provider: Provider, key_daemon: Daemon
) -> None:
    """A 4 s token with a 2 s minimum: served as is for 2 s; then one get runs the provider
    once and gets the new token. When the provider fails, the last good token is served until
    it expires, list shows the error, and after expiry get is refused (exit 1), never served."""
    assert 0 == set_provider(env, provider, "--lifetime", "4", "--min-lifetime", "2").returncode
    first = provider.tokens[0]
    assert first == get(env).stdout.strip()
    time.sleep(2.3)

    assert [first, get(env).stdout.strip()] == provider.tokens  # minted now, served now
    assert 2 == provider.runs
    second = provider.tokens[1]
    minted = time.monotonic()
    provider.mode("fail")

    time.sleep(2.3)
    # Below the minimum, the run (this get's, or the one ahead) fails: still valid, served.
    assert second == get(env).stdout.strip()
    assert 3 == provider.runs
    record = listed(env)
    assert "exited with status 3: denied: key [redacted] is not allowed" in str(
        record["provider_error"]
    )
    time.sleep(max(0.0, 4.3 - (time.monotonic() - minted)))

    refused = get(env)
    assert (1, "") == (refused.returncode, refused.stdout)
    assert "provider for corp failed" in refused.stderr
    log = key_daemon.log.read_text()
    assert [] == [t for t in provider.tokens if t in log or t in refused.stderr]
    assert LEAK not in log


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


def test_lock_drops_the_token_unlock_loads_it_delete_forgets_it(
    daemon: Daemon, provider: Provider
) -> None:
    """With a passphrase store: lock drops the provider records from the daemon (get exits 5,
    status counts none); unlock loads the stored token again without a run; after delete the
    daemon keeps no provider record and the provider never runs again."""
    env = dict(daemon.env)
    with daemon.client() as client:
        client.init("provider passphrase")
    assert 0 == set_provider(env, provider).returncode
    [token] = provider.tokens

    assert 0 == helperctl(env, "lock").returncode
    assert 5 == get(env).returncode
    assert None is json.loads(helperctl(env, "status", "--json").stdout)["providers"]
    done = subprocess.run(
        [HELPERCTL, "unlock", "--passphrase-stdin"],
        env=env,
        input="provider passphrase",
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert 0 == done.returncode, done.stderr

    assert token == get(env).stdout.strip()
    assert 1 == json.loads(helperctl(env, "status", "--json").stdout)["providers"]
    assert 0 == helperctl(env, "rm", "corp").returncode
    assert 0 == json.loads(helperctl(env, "status", "--json").stdout)["providers"]
    assert 1 == provider.runs


def full_gets(daemon: Daemon) -> int:
    """How many gets the daemon served the full way: it logs those (at debug), not those it
    answers from memory."""
    return sum(line.endswith(" DEBUG get ok") for line in daemon.log.read_text().splitlines())


def test_warm_gets_are_served_from_memory_until_a_change(
    daemon: Daemon, provider: Provider
) -> None:
    """After its first get, a provider record's gets are answered from memory with the same
    token and no run; a new token is served once minted; after a set that replaces the record,
    a lock and a delete, the old token is never served."""
    env = dict(daemon.env)
    with daemon.client() as client:
        client.init("provider passphrase")
    assert 0 == set_provider(env, provider, "--lifetime", "4", "--min-lifetime", "2").returncode
    with daemon.client() as client:
        full = full_gets(daemon)
        served = [client.get(name="corp").password for _ in range(20)]
        assert (provider.tokens * 20, full + 1) == (served, full_gets(daemon))
        time.sleep(2.3)  # below the minimum: the next get mints
        minted = [client.get(name="corp").password for _ in range(2)]
        assert (2, [provider.tokens[-1]] * 2) == (provider.runs, minted)

    assert 0 == set_provider(env, provider).returncode  # replaced: a new hour-long token
    assert [provider.tokens[2]] * 2 == [get(env).stdout.strip() for _ in range(2)]
    assert 0 == helperctl(env, "lock").returncode
    assert 5 == get(env).returncode
    done = subprocess.run(
        [HELPERCTL, "unlock", "--passphrase-stdin"],
        env=env,
        input="provider passphrase",
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert provider.tokens[2] == get(env).stdout.strip()
    assert 0 == helperctl(env, "rm", "corp").returncode
    gone = get(env)
    assert (4, "") == (gone.returncode, gone.stdout)
    assert 3 == provider.runs
