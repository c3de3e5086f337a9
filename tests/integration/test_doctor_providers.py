"""helperctl doctor's providers check against a real daemon whose provider (a real script)
starts failing: warn while the last good token is still served, fail once it has expired; the
error is shown scrubbed, as list shows it."""

from __future__ import annotations

import time
from pathlib import Path

from helperd.testing import Daemon
from tests.integration.test_doctor import doctor, verdicts
from tests.integration.test_providers import LEAK, PROVIDER, Provider, get, set_provider

ERROR = "mint-token exited with status 3: denied: key [redacted] is not allowed"


def test_doctor_warns_while_a_failing_provider_is_served_then_fails(
    key_daemon: Daemon, tmp_path: Path
) -> None:
    """A 12 s token with a 6 s minimum: doctor is ok after set; once a run has failed it warns
    (the token is still served), naming the record and the scrubbed error; once the token has
    expired it fails, and doctor exits non-zero."""
    state, script, bin_dir = tmp_path / "provider", tmp_path / "mint-token", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    script.write_text(PROVIDER)
    script.chmod(0o700)
    provider = Provider(script, state)
    provider.mode("ok")
    env = dict(key_daemon.env)
    assert 0 == set_provider(env, provider, "--lifetime", "12", "--min-lifetime", "6").returncode
    minted = time.monotonic()
    fine = verdicts(doctor(env, bin_dir, "--json"))["providers"]
    assert ("ok", "1 provider record(s), every last run worked") == (
        fine["status"],
        fine["message"],
    )
    provider.mode("fail")

    time.sleep(6.3)
    assert provider.tokens[0] == get(env).stdout.strip()  # the run failed; the token is served
    served = verdicts(doctor(env, bin_dir, "--json"))["providers"]
    assert "warn" == served["status"], served
    assert f"corp: the last run failed ({ERROR}); its token is served until" in served["message"]
    assert "fix the provider command" in served["fix"]
    time.sleep(max(0.0, 12.5 - (time.monotonic() - minted)))

    done = doctor(env, bin_dir)
    assert 0 != done.returncode
    expected = f"fail  providers: corp: the last run failed ({ERROR}); no valid token left"
    assert expected in done.stdout
    assert LEAK not in done.stdout + done.stderr
