"""A doctor check's verdict: ok, warn or fail, what was found, and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Finding", "Level"]

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    """One check's verdict.

    Attributes:
        name: the check's name (stable: scripts may look for it).
        status: ``ok``, ``warn`` or ``fail``; any ``fail`` makes doctor exit 1.
        message: what was found.
        fix: what to do about it, or None.
    """

    name: str
    status: Level
    message: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """The object ``doctor --json`` prints."""
        return {"name": self.name, "status": self.status, "message": self.message, "fix": self.fix}
