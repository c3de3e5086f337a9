"""Run helperd under cProfile in every thread, for `bench.profiling`.

    python bench/profiled_daemon.py OUT_PREFIX [helperd options...]

``python -m cProfile -m helperd`` sees only the event-loop thread, and helperd runs its
blocking calls (writes, a key-file store's first open) in worker threads. This wrapper gives
every thread its own profiler and, once helperd has stopped (SIGTERM) and its workers have ended,
writes ``OUT_PREFIX.main.prof`` (the event loop) and ``OUT_PREFIX.workers.prof`` (all worker
threads merged), both readable with `pstats`.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading

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
    profile.enable()
    try:
        helperd_main.main(args=args, standalone_mode=False)
    finally:
        profile.disable()
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(timeout=10)
        pstats.Stats(profile).dump_stats(f"{prefix}.main.prof")
        if _profiles:
            workers = pstats.Stats(_profiles[0])
            for other in _profiles[1:]:
                workers.add(other)
            workers.dump_stats(f"{prefix}.workers.prof")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
