"""A provider that hangs is stopped at the default bound users get (60 s), children included.

The unit tests use a short bound to stay fast; this one runs the default once, so that a
wrong default (or a bound that is not applied) cannot hide behind them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from helperd.core.provider_output import ProviderError
from helperd.integrations.providers.runner import RUN_TIMEOUT, run_provider
from tests.hardening import Figures
from tests.unit.test_provider_runner import alive, fake


@pytest.mark.timeout(int(5 * RUN_TIMEOUT) + 30)
def test_hung_provider_stopped_at_the_default_bound(tmp_path: Path, figures: Figures) -> None:
    """A provider that never ends is killed, with its child, at 60 s (not before)."""
    pids = tmp_path / "pids"
    started = time.monotonic()
    with pytest.raises(ProviderError, match="did not finish within 60 s: stopped"):
        asyncio.run(run_provider(fake(tmp_path, "hang", str(pids))))
    took = time.monotonic() - started
    figures("hung provider stopped after", round(took, 2), "s")
    assert RUN_TIMEOUT <= took < 5 * RUN_TIMEOUT
    parent, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (False, False) == (alive(parent), alive(child))
