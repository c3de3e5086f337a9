"""doctor's providers check: ok when every provider's last run worked, warn when a run failed
while its token is still served, fail when a failing record has no valid token left; the
message names the records and their scrubbed errors, the fix fits each preset."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from helperd_client import RecordInfo

from helperd.ctl import doctor
from helperd.ctl.doctor_facts import Connection
from tests.unit.test_doctor import HELLO, OPEN, by_name, facts

NOW = datetime.now(UTC)
ERROR = "exited with status 3: denied: key [redacted] is not allowed"


def record(name: str, provider: str, *, left: float, error: str | None = ERROR) -> RecordInfo:
    """A provider record as ``list`` returns it, whose token has ``left`` seconds to live."""
    # From the time the test runs, not the time the module was imported (collection can be
    # many minutes earlier in a whole-suite run).
    expires = datetime.now(UTC) + timedelta(seconds=left)
    return RecordInfo(
        name=name,
        username="aws",
        kind="token",
        urls=(f"https://{name}.test/simple/",),
        expires_at=expires,
        expired=left <= 0,
        created_at=NOW,
        updated_at=NOW,
        provider=provider,
        provider_error=error,
    )


def finding(
    providers: int | None, failing: list[str], records: tuple[RecordInfo, ...] | None = None
) -> doctor.Finding:
    """The providers finding for a daemon whose status and list say so."""
    status = dataclasses.replace(OPEN, providers=providers, providers_failing=failing)
    conn = Connection("ok", hello=HELLO, status=status, failing=records)
    return by_name(doctor.run_checks(facts(connection=conn)))["providers"]


def test_no_provider_record_is_ok() -> None:
    """No provider record (or a daemon that predates them): ok, saying so."""
    assert ("ok", "no provider record") == (finding(0, []).status, finding(0, []).message)
    assert "ok" == by_name(doctor.run_checks(facts()))["providers"].status


def test_every_last_run_worked_is_ok() -> None:
    """Two provider records, none failing: ok with the count."""
    found = finding(2, [])

    assert ("ok", "2 provider record(s), every last run worked") == (found.status, found.message)


def test_locked_store_and_unreachable_daemon_are_not_checked() -> None:
    """A locked store loads no provider record, an unreachable daemon says nothing: not checked."""
    locked = finding(None, [])
    down = doctor.check_providers(facts(connection=Connection("missing", "no socket")))

    assert ("ok", "ok") == (locked.status, down.status)
    assert "locked" in locked.message
    assert "not reachable" in down.message


def test_failed_run_with_a_valid_token_warns() -> None:
    """A failed run while the token is still valid: warn, naming the record and its error,
    with the cloud CLI's login as the fix."""
    found = finding(2, ["corp"], (record("corp", "codeartifact", left=300),))

    assert "warn" == found.status
    assert found.message.startswith(f"corp: the last run failed ({ERROR}); its token is served")
    assert found.fix is not None
    assert "aws sso login" in found.fix
    assert "docs/providers.md" in found.fix


def test_failing_record_without_a_valid_token_fails() -> None:
    """A failing record whose token has expired: fail, naming it and what to do for each."""
    found = finding(
        2,
        ["corp", "gcp"],
        (record("corp", "command", left=-5), record("gcp", "gar", left=600)),
    )

    assert "fail" == found.status
    assert f"corp: the last run failed ({ERROR}); no valid token left" in found.message
    assert "gcp: the last run failed" in found.message
    assert found.fix is not None
    assert "`gcloud auth login`" in found.fix
    assert "fix the provider command" in found.fix


def test_expiry_passed_since_list_fails_too() -> None:
    """A token whose expiry has passed fails even when list's ``expired`` still said no."""
    stale = dataclasses.replace(record("corp", "azure", left=-1), expired=False)
    found = finding(1, ["corp"], (stale,))

    assert "fail" == found.status
    assert found.fix is not None
    assert "`az login`" in found.fix


def test_failing_names_without_list_warn() -> None:
    """status names failing providers but list could not be read: warn with the names."""
    found = finding(3, ["corp", "gcp"], None)

    assert ("warn", "the last provider run failed for corp, gcp") == (found.status, found.message)
