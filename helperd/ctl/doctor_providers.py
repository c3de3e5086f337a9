"""doctor's providers check: whether each provider record's last run worked, and what to fix
(docs/providers.md). It reads ``status``'s ``providers`` and ``providers_failing``, and, only
when some fail, ``list``'s ``provider_error`` of those records (already scrubbed by the daemon).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from helperd_client import Client, RecordInfo, Status
from helperd_client.errors import HelperdError

__all__ = ["LOGIN", "failing_records", "providers_verdict"]

Verdict = tuple[Literal["ok", "warn", "fail"], str, str | None]

LOGIN = {
    "codeartifact": "`aws sso login` (or renew your AWS credentials)",
    "gar": "`gcloud auth login`",
    "azure": "`az login`",
}
"""How to log in again to each preset's cloud CLI; a ``command`` record is fixed by hand."""


def failing_records(client: Client, status: Status) -> tuple[RecordInfo, ...] | None:
    """``list``'s records of the providers ``status`` says fail, asked only when some fail
    (list reads every record); None when none fail or list fails (the check then names the
    records from ``status`` alone)."""
    if not status.providers_failing:
        return None
    names = set(status.providers_failing)
    try:
        return tuple(r for r in client.list() if r.provider is not None and r.name in names)
    except HelperdError:
        return None


def providers_verdict(
    status: Status | None, failing: Sequence[RecordInfo] | None, now: datetime
) -> Verdict:
    """The verdict on the provider records: ok when every last run worked, warn when a run
    failed but the token it keeps serving is still valid, fail when a failing record has no
    valid token left; with the message (names and scrubbed errors) and the fix.

    Args:
        status: the daemon's ``status`` (None: not reachable).
        failing: ``list``'s records of the names in ``providers_failing`` (None: not asked,
            or ``list`` failed).
        now: the time to judge expiry at.
    """
    if status is None:
        return "ok", "not checked: the daemon is not reachable (see the daemon check)", None
    if status.providers is None:
        return "ok", "not checked: the store is locked, no provider record is loaded", None
    if not status.providers:
        return "ok", "no provider record", None
    if not status.providers_failing:
        return "ok", f"{status.providers} provider record(s), every last run worked", None
    records = [r for r in failing or () if r.provider_error is not None]
    if not records:
        names = ", ".join(status.providers_failing)
        return (
            "warn",
            f"the last provider run failed for {names}",
            "`helperctl list` shows the error; docs/providers.md",
        )
    dead = [r for r in records if r.expired or (r.expires_at is not None and r.expires_at <= now)]
    said = "; ".join(_describe(r, r in dead) for r in records)
    return ("fail" if dead else "warn"), said, _fix(records)


def _describe(record: RecordInfo, dead: bool) -> str:
    when = record.expires_at.isoformat(timespec="seconds") if record.expires_at else "?"
    state = f"no valid token left (expired {when})" if dead else f"its token is served until {when}"
    return f"{record.name}: the last run failed ({record.provider_error}); {state}"


def _fix(records: Sequence[RecordInfo]) -> str:
    logins = sorted({LOGIN[r.provider] for r in records if r.provider in LOGIN})
    steps = [f"log in to the cloud CLI again: {', '.join(logins)}"] if logins else []
    if any(r.provider not in LOGIN for r in records):
        steps.append("fix the provider command (`helperctl set NAME --provider-command ...`)")
    retry = "its next retry (at most 60 s apart) runs the provider again (docs/providers.md)"
    return f"{'; '.join(steps)}; {retry}"
