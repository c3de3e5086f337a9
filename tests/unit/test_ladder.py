"""The timeout ladder: its rungs in order, and the warning for a client timeout below it."""

from __future__ import annotations

import pytest
from helperd_client import Client
from helperd_client.client import DEFAULT_TIMEOUT
from helperd_client.transport import env_timeout

from helperd.core.config import Settings
from helperd.core.ladder import ANSWER_TIMEOUT, KEYRING_CALL_TIMEOUT, timeout_warning
from helperd.ctl import doctor
from tests.unit.test_cli import FakeClient, run
from tests.unit.test_doctor import facts


def test_each_rung_sits_inside_the_next_with_margin() -> None:
    """keyring call < daemon answer < client timeout (2 s), each with room to spare."""
    assert 2.0 == DEFAULT_TIMEOUT
    assert KEYRING_CALL_TIMEOUT * 2 <= ANSWER_TIMEOUT
    assert ANSWER_TIMEOUT + 0.4 <= DEFAULT_TIMEOUT


def test_the_keyring_timeout_default_is_the_ladder_rung() -> None:
    """Settings default keyring_timeout to the ladder's keyring call bound."""
    assert (
        KEYRING_CALL_TIMEOUT
        == Settings.resolve(env={"HELPERD_HOME": "/nonexistent"}).keyring_timeout
    )


@pytest.mark.parametrize(
    ("value", "warned"),
    [("1", True), ("0.2", True), ("2", False), ("1.5", False), ("", False), ("3600", False)],
)
def test_a_client_timeout_below_the_answer_bound_is_warned_about(value: str, warned: bool) -> None:
    """HELPERD_TIMEOUT under the daemon's answer bound gets a warning naming both figures."""
    warning = timeout_warning({"HELPERD_TIMEOUT": value})
    assert warned == (warning is not None)
    if warning is not None:
        assert f"HELPERD_TIMEOUT={value}" in warning
        assert "1.5 s" in warning


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("x", "is not a positive number of seconds: clients use the default of 2 s"),
        ("nan", "is not a positive number"),
        ("0", "is not a positive number"),
        ("-1", "is not a positive number"),
        ("inf", "is more than 3600 s"),
        ("1e12", "is more than 3600 s"),
    ],
)
def test_a_client_timeout_clients_cannot_take_is_warned_about(value: str, said: str) -> None:
    """A value the clients replace (by the default, or by the one-hour bound) is named."""
    assert said in (timeout_warning({"HELPERD_TIMEOUT": value}) or "")


@pytest.mark.parametrize(
    ("value", "taken"),
    [("3", 3.0), ("x", 2.0), ("nan", 2.0), ("0", 2.0), ("-1", 2.0), ("inf", 3600.0)],
)
def test_clients_take_a_bounded_timeout(value: str, taken: float) -> None:
    """Every client call stays bounded: inf becomes an hour (it crashed the client before)."""
    assert taken == env_timeout({"HELPERD_TIMEOUT": value})


def test_client_cuts_a_long_timeout_to_an_hour() -> None:
    assert 3600.0 == Client("/nonexistent", timeout=float("inf")).timeout
    assert 3600.0 == Client("/nonexistent", timeout=1e12).passphrase_timeout


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_client_refuses_a_timeout_that_is_not_positive(value: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        Client("/nonexistent", timeout=value)


def test_doctor_warns_about_a_short_client_timeout() -> None:
    """doctor's client-timeout check warns (never fails) and says how to fix it."""
    found = doctor.check_client_timeout(
        facts(timeout_warning=timeout_warning({"HELPERD_TIMEOUT": "1"}))
    )
    assert ("client-timeout", "warn") == (found.name, found.status)
    assert "unset HELPERD_TIMEOUT" in (found.fix or "")


def test_helperctl_warns_once_about_a_short_client_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """helperctl with HELPERD_TIMEOUT=1 prints one warning line on stderr, then works."""
    monkeypatch.setenv("HELPERD_TIMEOUT", "1")
    result = run(FakeClient(), "lock")
    assert 0 == result.exit_code, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning.startswith("helperctl: warning: HELPERD_TIMEOUT=1 is below")
