"""Work on every record at once (opening a big store, indexing it) without the cyclic GC.

Building 100,000 records makes hundreds of thousands of objects in one go; each allocation
burst triggers a garbage collection that walks every object made so far, and those walks
were half the time of opening a 100,000-record store. Records hold no reference cycles, so
nothing is lost by pausing the collector while they are built: reference counting frees
them as always, and the collector runs again afterwards.

When the block leaves many objects alive (a bulk build, not the small edit of one write),
they are frozen (`gc.freeze`): left in the youngest generation, the first collection after
it walked every one of them (about 150 ms at 100,000 records, twice: once for the store,
once for its catalog), and every full collection after that would walk them again, on some
request's time. Frozen objects are still freed by reference counting; only a reference cycle
frozen with them would outlive its last use. Records make none, and freezing only after a
bulk build (a start, an unlock, an import) keeps whatever cycles other code has pending at
that moment to a few, once, rather than some at every write.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused_gc"]

FREEZE_AT = 10_000
"""Objects a block leaves alive (the collector's count) past which it is a bulk build whose
objects are frozen."""


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (it stays as it was when paused); when
    the block leaves more than `FREEZE_AT` objects alive, freeze them, so that no later
    collection walks them."""
    was = gc.isenabled()
    gc.disable()
    before = gc.get_count()[0]
    try:
        yield
    finally:
        if gc.get_count()[0] - before > FREEZE_AT:
            gc.freeze()
        if was:
            gc.enable()
