"""Run helperd under cProfile in every thread, for `bench.profiling`.

    python bench/profiled_daemon.py OUT_PREFIX [helperd options...]

``python -m cProfile -m helperd`` sees only the event-loop thread, and helperd runs its
blocking calls (writes, a key-file store's first open) in worker threads. This wrapper gives
every thread its own profiler and, once helperd has stopped (SIGTERM) and its workers have ended,
writes ``OUT_PREFIX.main.prof`` (the event loop) and ``OUT_PREFIX.workers.prof`` (all worker
threads merged), read back with `bench.profiling.load_stats` (a profile that saw no call is
not written).

SIGUSR1 starts every profile afresh and then creates ``OUT_PREFIX.cleared``: what came before
(the start, the store's opening, a warm-up) is left out of what is written.
"""

from __future__ import annotations

import cProfile
import pstats
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

_profiles: list[cProfile.Profile] = []
_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile()
    _profiles.append(profile)
    profile.enable()
    try:
        _run(self)
    finally:
        profile.disable()


def main(argv: list[str]) -> int:
    """Serve until SIGTERM, then write the two profiles."""
    prefix, args = argv[0], argv[1:]
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    from helperd.daemon.main import main as helperd_main

    profile = cProfile.Profile()

    def start_afresh(_signum: int, _frame: FrameType | None) -> None:
        # On the main thread, between two bytecodes; a worker's profile is cleared while its
        # thread runs, which the profiler allows (calls open then are not counted).
        for each in (profile, *_profiles):
            each.clear()
        Path(f"{prefix}.cleared").touch()

    signal.signal(signal.SIGUSR1, start_afresh)
    profile.enable()
    try:
        helperd_main.main(args=args, standalone_mode=False)
    finally:
        profile.disable()
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(timeout=10)
        _write([profile], f"{prefix}.main.prof")
        _write(_profiles, f"{prefix}.workers.prof")
    return 0


def _write(profiles: list[cProfile.Profile], path: str) -> None:
    """``profiles`` merged into ``path``; none is written when no profile saw a call (pstats
    refuses an empty one)."""
    merged = pstats.Stats()
    for each in profiles:
        each.create_stats()
        if each.stats:
            merged.add(each)
    if merged.stats:  # type: ignore[attr-defined]
        merged.dump_stats(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
