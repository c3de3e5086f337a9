"""doctor's upstream check: ok after a good refresh, warn while a failing engine's cache is
still served, fail once nothing is served; the fix fits the reason."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from helperd.ctl import doctor
from helperd.ctl.doctor_facts import Connection
from tests.unit.test_doctor import HELLO, OPEN, by_name, facts

ADDRESS = "https://bao.example.test:8200"


def upstream_finding(**upstream: Any) -> doctor.Finding:
    """The upstream finding when status carries ``upstream``."""
    status = dataclasses.replace(OPEN, upstream={"address": ADDRESS, **upstream})
    found = doctor.run_checks(facts(connection=Connection("ok", hello=HELLO, status=status)))
    return by_name(found)["upstream"]


def test_without_upstream_ok() -> None:
    """No [upstream]: ok, saying so."""
    found = by_name(doctor.run_checks(facts()))["upstream"]

    assert ("ok", "no upstream secret engine is configured") == (found.status, found.message)


def test_last_refresh_ok() -> None:
    """A good last refresh: ok, with the count and the cache's age."""
    found = upstream_finding(result="ok", state="fresh", records=3, cache_age_seconds=12.5)

    assert ("ok", f"{ADDRESS}: 3 record(s), refreshed 12.5 s ago") == (found.status, found.message)


@pytest.mark.parametrize(
    ("reason", "fix_word"),
    [
        ("engine_down", "start the engine"),
        ("tls", "ca_file"),
        ("denied", "capabilities"),
        ("approle", "secret_id"),
        ("not_renewable", "renewable"),
        ("kv_version", "enable-versioning"),
    ],
)
def test_failing_refresh_warns_while_served_and_fails_after(reason: str, fix_word: str) -> None:
    """A failed refresh warns while the cache is served and fails once it is not; the fix
    fits the reason."""
    served = upstream_finding(result=reason, state="due", message="it broke")
    refused = upstream_finding(result=reason, state="expired", message="it broke")

    assert ("warn", "fail") == (served.status, refused.status)
    assert served.fix is not None
    assert fix_word in served.fix
    assert "it broke (no upstream record is served)" == refused.message
