"""doctor's upstream check: how the daemon's last refresh from the secret engine went, and what
to fix (docs/fleet.md). It reads the ``upstream`` object of ``status``; the engine itself is
asked by ``helperctl upstream test``, through the daemon."""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["FIXES", "upstream_verdict"]

Verdict = tuple[Literal["ok", "warn", "fail"], str, str | None]

FIXES = {
    "engine_down": "start the engine, or correct [upstream] address; meanwhile the cache is"
    " served until max_stale_seconds",
    "tls": "set [upstream] ca_file to the PEM bundle of the CA that signed the engine's"
    " certificate, or check the address's scheme",
    "denied": 'give the token\'s policy `capabilities = ["read", "list"]` on the paths the'
    " message names (docs/fleet.md)",
    "approle": "issue a new secret_id (`bao write -f auth/approle/role/ROLE/secret-id`) and put"
    " it in [upstream] secret_id_file; check role_id_file",
    "token": "write a valid token to [upstream] token_file, or use AppRole",
    "not_renewable": "give helperd a renewable token, or use AppRole, which logs in again",
    "kv_version": "upgrade the mount (`bao kv enable-versioning MOUNT/`) or point [upstream]"
    " mount at a KV version 2 engine",
    "secret_file": "fix the file the message names (yours, mode 0600)",
}
"""What to do, by the refresh's result (`helperd.upstream.errors` reasons)."""


def upstream_verdict(upstream: dict[str, Any] | None) -> Verdict:
    """The verdict on ``status``'s ``upstream`` object: ok, failing while the cache is still
    served (warn), or nothing servable (fail); with the message and the fix."""
    if upstream is None:
        return "ok", "no upstream secret engine is configured", None
    where = upstream["address"]
    result, served = upstream["result"], upstream["state"]
    if result == "ok":
        age = upstream["cache_age_seconds"]
        return "ok", f"{where}: {upstream['records']} record(s), refreshed {age:g} s ago", None
    fix = FIXES.get(result or "", "run `helperctl upstream test`, and see the daemon's log")
    message = upstream["message"] or f"{where}: the first refresh has not ended yet"
    if served in ("fresh", "due"):
        return "warn", f"{message} (the cache is still served)", fix
    return "fail", f"{message} (no upstream record is served)", fix
