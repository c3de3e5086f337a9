"""helperd.core.bulk: work on every record at once without the cyclic GC walking it."""

from __future__ import annotations

import gc

import pytest

from helperd.core.bulk import FREEZE_AT, paused_gc


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_in_the_block_and_as_it_was_after(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with paused_gc():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_what_a_bulk_build_made_is_frozen_so_no_collection_walks_it_again() -> None:
    """A first collection after a bulk build walked every object it made (150 ms at 100,000
    records); frozen, the youngest generation holds none of them."""
    frozen = gc.get_freeze_count()  # an earlier test's bulk build may have frozen much already
    with paused_gc():
        made = [[n] for n in range(2 * FREEZE_AT)]  # lists: always tracked by the collector
    assert gc.get_count()[0] < 1_000
    assert gc.get_freeze_count() - frozen >= len(made)


def test_a_small_edit_freezes_nothing() -> None:
    """A write's few new objects stay collectable, with any cycle pending beside them."""
    frozen = gc.get_freeze_count()
    with paused_gc():
        made = [[n] for n in range(100)]
    assert gc.get_freeze_count() == frozen
    assert made
