"""Running a provider command: no shell, a clean environment, bounded, capped, no token in
errors. The commands are the fake provider (tests/unit/fake_provider.py) run for real."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from helperd.core.provider import Format, ProviderSpec
from helperd.core.provider_output import ProviderError
from helperd.integrations.providers import runner
from helperd.integrations.providers.runner import MAX_STDOUT, RUN_TIMEOUT, run_provider

FAKE = Path(__file__).with_name("fake_provider.py")


def fake(tmp_path: Path, mode: str, arg: str = "", **changes: object) -> ProviderSpec:
    """A JSON provider running the fake in ``mode``, counting its runs in tmp_path/count."""
    spec = ProviderSpec(
        argv=(str(install_fake(tmp_path)), str(tmp_path / "count"), mode, arg),
        format=Format.JSON,
        token_field="token",
        expiry_field="expires",
        username="u",
    )
    return spec.replace(**changes) if changes else spec


def install_fake(folder: Path) -> Path:
    """The fake provider as an executable script ``folder/mint`` (as a user's command is)."""
    path = folder / "mint"
    if not path.exists():
        path.write_text(f"#!{sys.executable}\n" + FAKE.read_text(), encoding="utf-8")
        path.chmod(0o700)
    return path


def runs(tmp_path: Path) -> int:
    """How many times the fake ran."""
    count = tmp_path / "count"
    return len(count.read_text().splitlines()) if count.exists() else 0


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_defaults_users_get() -> None:
    """A run is bounded at 60 s and its stdout at 64 KiB."""
    assert (60.0, 65536) == (RUN_TIMEOUT, MAX_STDOUT)


def test_mints_a_token(tmp_path: Path) -> None:
    """A run returns the token and the expiry the command printed."""
    before = time.time()
    minted = asyncio.run(run_provider(fake(tmp_path, "ok", "120")))
    assert "tok-1-" + "s3cr3t" * 5 == minted.token.get_secret_value()
    assert 1 == runs(tmp_path)
    assert before + 119 < minted.expires_at.timestamp() < time.time() + 121


def test_clean_environment_own_session_no_stdin(tmp_path: Path) -> None:
    """The command sees PATH, HOME, the cloud CLIs' variables and the names passed through,
    nothing else of the daemon's environment; it runs in its own session, stdin empty."""
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_PROFILE": "ci",
        "CLOUDSDK_CONFIG": "/x",
        "AZURE_CONFIG_DIR": "/y",
        "HTTPS_PROXY": "http://proxy:3128",
        "HELPERD_PASSPHRASE": "do-not-pass",
        "SSH_AUTH_SOCK": "/tmp/agent",
    }
    spec = fake(tmp_path, "env", str(tmp_path / "facts"), env=("HTTPS_PROXY",))
    # The daemon's own stdin is a pipe here, so that an inherited stdin would show.
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        asyncio.run(run_provider(spec, base_env=base))
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    facts = json.loads((tmp_path / "facts").read_text())
    seen = {k: v for k, v in facts["env"].items() if k not in {"LC_CTYPE", "PWD"}}
    assert {
        k: v for k, v in base.items() if k not in {"HELPERD_PASSPHRASE", "SSH_AUTH_SOCK"}
    } == seen
    assert (True, "/dev/null") == (facts["own_session"], facts["stdin"])


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    """A command that hangs is stopped at the bound: it and its child are killed, and the
    error says so."""
    pids = tmp_path / "pids"
    started = time.monotonic()
    with pytest.raises(ProviderError, match="did not finish within 2 s: stopped"):
        asyncio.run(run_provider(fake(tmp_path, "hang", str(pids)), timeout=2.0))
    assert time.monotonic() - started < 5 * 2.0 + runner._KILL_WAIT  # no hang
    parent, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 10  # the orphaned child is reaped by init, not by us
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (False, False) == (alive(parent), alive(child))


def test_cancel_kills_the_run(tmp_path: Path) -> None:
    """A run cancelled (the daemon stops) leaves no process behind."""
    pids = tmp_path / "pids"

    async def scenario() -> None:
        task = asyncio.create_task(run_provider(fake(tmp_path, "hang", str(pids))))
        while not pids.exists():
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    parent, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (False, False) == (alive(parent), alive(child))


def test_huge_output_is_an_error(tmp_path: Path) -> None:
    """A command that prints more than the cap has failed: it is not a token."""
    with pytest.raises(ProviderError, match="printed more than 65536 bytes"):
        asyncio.run(run_provider(fake(tmp_path, "huge", str(10 * MAX_STDOUT))))


def test_output_at_the_cap_is_read(tmp_path: Path) -> None:
    """Exactly the cap is still read (and then judged by the parser)."""
    spec = fake(tmp_path, "huge", str(MAX_STDOUT)).replace(
        format=Format.TEXT, token_field=None, expiry_field=None
    )
    with pytest.raises(ProviderError, match="longer than 16384 characters"):
        asyncio.run(run_provider(spec))


def test_failure_keeps_stderr_scrubbed(tmp_path: Path) -> None:
    """A failing command's error gives its status and stderr, without the token it printed
    on stdout or echoed on stderr."""
    with pytest.raises(ProviderError) as caught:
        asyncio.run(run_provider(fake(tmp_path, "fail")))
    message = caught.value.message
    assert message.startswith("mint exited with status 3: denied: key [redacted]")
    assert "s3cr3t" not in message
    assert "s3cr3t" not in repr(caught.value)


def test_failure_scrubs_a_short_token_echoed_from_json(tmp_path: Path) -> None:
    """A token too short and too odd to look like one (``t:1$Zq!x``), printed as JSON on
    stdout and echoed on stderr, is still taken out: JSON's quotes do not hide it."""
    with pytest.raises(ProviderError) as caught:
        asyncio.run(run_provider(fake(tmp_path, "fail-short")))
    assert "mint exited with status 3: error: refusing token [redacted] (debug)" == (
        caught.value.message
    )


def test_junk_output_is_an_error(tmp_path: Path) -> None:
    """A command that prints no JSON has failed, and its output is not repeated."""
    with pytest.raises(ProviderError, match=r"^mint: the provider's output is not JSON$"):
        asyncio.run(run_provider(fake(tmp_path, "junk")))


def test_missing_command(tmp_path: Path) -> None:
    """A command that cannot start is an error naming it."""
    spec = fake(tmp_path, "ok").replace(argv=(str(tmp_path / "gone"),))
    with pytest.raises(ProviderError, match="cannot run gone: No such file or directory"):
        asyncio.run(run_provider(spec))


def test_no_shell(tmp_path: Path) -> None:
    """Arguments are never read by a shell: a ; or $() in one is just text."""
    marker = tmp_path / "marker"
    spec = fake(tmp_path, "ok", f"60; touch {marker} $(touch {marker})")
    with pytest.raises(ProviderError):
        asyncio.run(run_provider(spec))  # the fake cannot read "60; touch ..." as seconds
    assert not marker.exists()
    assert "PATH" in runner.clean_env(spec, {})  # a daemon with no PATH still gives one
    assert os.defpath == runner.clean_env(spec, {})["PATH"]
