"""The daemon-wide passphrase gate as a pure rule: time is a parameter, state is a file."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helperd_client.errors import BadPassphraseError

from helperd.core.gate import GuessGate, interval
from helperd.stores.guess_gate import GateFile

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "seconds"), [(0, 0), (1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (60, 30)]
)
def test_interval_doubles_up_to_thirty_seconds(failures: int, seconds: float) -> None:
    """After the n-th wrong passphrase in a row the gate stays closed min(2^(n-1), 30) s."""
    assert seconds == interval(failures)


def test_a_check_in_progress_refuses_every_other_one() -> None:
    """While one check runs, a second is refused at once and n does not move."""
    gate = GuessGate()
    gate.admit(T0)
    with pytest.raises(BadPassphraseError) as refused:
        gate.admit(T0)
    assert "too many wrong passphrases: try again in 1 s" == str(refused.value)
    gate.release()
    assert 0 == gate.failures
    gate.admit(T0)  # released: the next one goes through


def test_the_gate_opens_exactly_after_its_interval() -> None:
    """After three wrong ones the gate is closed 4 s: refused at 3.9 s (N rounded up), open at 4."""
    gate = GuessGate()
    for n in range(3):
        now = T0 + timedelta(seconds=10 * n)  # each after the previous interval
        gate.admit(now)
        gate.wrong(now)
    last = T0 + timedelta(seconds=20)
    with pytest.raises(BadPassphraseError) as refused:
        gate.admit(last + timedelta(seconds=0.1))
    assert "too many wrong passphrases: try again in 4 s" == str(refused.value)
    assert 3 == gate.failures  # refusals leave n alone
    assert 0.0 == gate.retry_in(last + timedelta(seconds=4))
    gate.admit(last + timedelta(seconds=4))
    gate.right()
    assert (0, 0.0) == (gate.failures, gate.retry_in(last + timedelta(seconds=4)))


def test_the_state_survives_a_new_gate_on_the_same_file(tmp_path: Path) -> None:
    """n and the opening time are kept in a 0600 file; a new gate (a restart) reads them."""
    path = tmp_path / "gate.json"
    first = GuessGate(GateFile(path))
    first.admit(T0)
    first.wrong(T0)
    first.admit(T0 + timedelta(seconds=1))
    first.wrong(T0 + timedelta(seconds=1))
    assert 0o600 == stat.S_IMODE(os.stat(path).st_mode)
    again = GuessGate(GateFile(path))
    assert (2, 2.0) == (again.failures, again.retry_in(T0 + timedelta(seconds=1)))
    with pytest.raises(BadPassphraseError):
        again.admit(T0 + timedelta(seconds=2))
    again.admit(T0 + timedelta(seconds=3))
    again.right()
    assert {"failures": 0, "opens_at": 0.0} == json.loads(path.read_bytes())


def test_a_clock_set_back_cannot_close_the_gate_for_longer_than_n_allows(tmp_path: Path) -> None:
    """An opening time far ahead (clock set back) is capped at the interval n allows."""
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({"failures": 1, "opens_at": (T0 + timedelta(days=1)).timestamp()}))
    path.chmod(0o600)
    assert 1.0 == GuessGate(GateFile(path)).retry_in(T0)


def test_a_damaged_state_file_starts_over(tmp_path: Path) -> None:
    """A gate file that does not parse is ignored (logged), not a reason to refuse to start."""
    path = tmp_path / "gate.json"
    path.write_text("{not json")
    path.chmod(0o600)
    assert (0, 0.0) == (GuessGate(GateFile(path)).failures, GuessGate(GateFile(path)).retry_in(T0))
