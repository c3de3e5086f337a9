"""Keep the daemon's memory, and the secrets in it, out of core dumps and debuggers.

`harden_process` runs once, first thing in the daemon's main. On Linux it sets
``RLIMIT_CORE`` to 0 (soft and hard: no core file, and the daemon cannot raise it again) and
calls ``prctl(PR_SET_DUMPABLE, 0)``: no core dump through a ``core_pattern`` pipe either,
other processes of the same user cannot ``ptrace`` the daemon or read its ``/proc/PID/mem``
and ``environ``, and its ``/proc/PID`` files belong to root. Root can still do all of that:
docs/security.md puts root out of scope.

Elsewhere it only sets ``RLIMIT_CORE``, where the platform has one. It never raises: a
hardening step that fails is logged and reported, and the daemon runs without it.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import dataclass

__all__ = [
    "PR_GET_DUMPABLE",
    "PR_SET_DUMPABLE",
    "Hardening",
    "harden_process",
    "room_for_connections",
]

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # <linux/prctl.h>
PR_GET_DUMPABLE = 3


@dataclass(frozen=True)
class Hardening:
    """What `harden_process` achieved.

    Attributes:
        core_dumps_off: ``RLIMIT_CORE`` is 0 (soft and hard).
        not_dumpable: ``PR_SET_DUMPABLE`` is 0 (Linux only; False elsewhere).
        problems: why a step did not happen, one sentence each (empty when all went well).
    """

    core_dumps_off: bool
    not_dumpable: bool
    problems: tuple[str, ...] = ()


def harden_process() -> Hardening:
    """Turn core dumps off and, on Linux, make the process non-dumpable; never raises.

    Returns:
        What was achieved; each failed step is also logged as a warning.
    """
    problems: list[str] = []
    core_off = _no_core_dumps(problems)
    not_dumpable = _not_dumpable(problems) if sys.platform.startswith("linux") else False
    for problem in problems:
        log.warning("hardening: %s", problem)
    return Hardening(core_off, not_dumpable, tuple(problems))


def _no_core_dumps(problems: list[str]) -> bool:
    try:
        import resource  # noqa: PLC0415 - absent on Windows
    except ImportError:
        problems.append("no resource module: core dumps not turned off")
        return False
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        return resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    except (OSError, ValueError, AttributeError) as exc:
        problems.append(f"could not set RLIMIT_CORE to 0: {exc}")
        return False


def _not_dumpable(problems: list[str]) -> bool:
    try:
        # dlopen(NULL): the C library already loaded (find_library would run ldconfig).
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        prctl.restype = ctypes.c_int
        if prctl(PR_SET_DUMPABLE, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            problems.append(f"prctl(PR_SET_DUMPABLE, 0) failed with errno {errno}")
            return False
        return int(prctl(PR_GET_DUMPABLE, 0, 0, 0)) == 0
    except (OSError, AttributeError, TypeError) as exc:
        problems.append(f"could not call prctl(PR_SET_DUMPABLE, 0): {exc}")
        return False


def room_for_connections(max_connections: int, spare: int = 64) -> int:
    """Raise the soft open-file limit so that ``max_connections`` fit; return the cap to use.

    At the cap the server closes its longest-idle connection, but only if accepting the next
    one did not fail first for want of file descriptors. So the soft ``RLIMIT_NOFILE`` must
    exceed the cap (plus ``spare`` for the store, the logs and D-Bus); where even the hard
    limit is too low, the cap is lowered to fit, with a warning.
    """
    try:
        import resource  # noqa: PLC0415 - absent on Windows
    except ImportError:
        return max_connections
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = max_connections + spare
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    except (OSError, ValueError) as exc:
        log.warning("could not raise the open-file limit: %s", exc)
        return max_connections
    if soft != resource.RLIM_INFINITY and soft < max_connections + spare:
        fitted = max(2, soft - spare)
        log.warning(
            "the open-file limit (%d) is too low for %d connections: capping at %d",
            soft,
            max_connections,
            fitted,
        )
        return fitted
    return max_connections
