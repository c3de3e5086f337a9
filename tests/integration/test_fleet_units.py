"""The systemd drop-in docs/fleet.md gives for a runner that reads an upstream secret engine:
``systemd-analyze verify`` has nothing to say about the template with it, and it gives the
network back only as far as the engine needs."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.test_units import INSTANCE, SYSTEM_UNITS, analyze, folder, render

__all__ = ["folder"]  # the fixture, used by name

FLEET = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"


def drop_in() -> str:
    """The ``systemctl edit helperd@ci.service`` block of docs/fleet.md."""
    blocks = re.findall(r"```ini\n(# systemctl edit helperd@.*?)```", FLEET.read_text(), re.S)
    assert 1 == len(blocks)
    return str(blocks[0])


def test_fleet_drop_in_verifies_clean(folder: Path) -> None:
    """The template instance with docs/fleet.md's drop-in verifies without a word."""
    names = [render(name, folder, INSTANCE).name for name in SYSTEM_UNITS]
    service = next(n for n in names if n.endswith(".service"))
    (folder / f"{service}.d").mkdir()
    (folder / f"{service}.d" / "upstream.conf").write_text(drop_in())

    result = analyze(folder, "verify", *names, user=False)

    assert (0, "", "") == (result.returncode, result.stdout, result.stderr)


def test_fleet_drop_in_opens_the_network_for_the_engine_only() -> None:
    """The drop-in turns the private network off, adds IPv4 and IPv6, and allows one address
    (the template's IPAddressDeny=any stays)."""
    lines = set(drop_in().splitlines())

    assert {
        "PrivateNetwork=no",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "IPAddressAllow=192.0.2.10",
    } <= lines
    assert not any(line.startswith("IPAddressDeny=") for line in lines)
