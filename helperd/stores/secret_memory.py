"""Memory for keys: a page of its own, locked against swap, left out of core dumps, zeroed.

Python cannot wipe an immutable ``bytes``, and the allocator reuses freed memory without
clearing it, so a key that ever was a ``bytes`` object may linger in the heap after every
reference to it is gone. A `SecretBuffer` is the one place a key lives instead: an anonymous
``mmap`` page, filled in place (``derive_into``), ``mlock``-ed where ``RLIMIT_MEMLOCK`` allows,
marked ``MADV_DONTDUMP`` where the platform has it, and overwritten with zeros by `wipe` (and
when the last reference to it goes, as a fallback).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import threading
from collections.abc import Callable

__all__ = ["SecretBuffer", "memory_locked"]

log = logging.getLogger(__name__)

_state = threading.Lock()
_locked: bool | None = None  # whether the last mlock held; None before the first try
_libc: ctypes.CDLL | None = None


def memory_locked() -> bool:
    """Whether key memory is locked against swap (the last `SecretBuffer` made, or a probe)."""
    if _locked is None:
        SecretBuffer(1).wipe()  # a probe, so that status says it before any key exists
    return bool(_locked)


def _mlock() -> Callable[[int, int], int] | None:
    global _libc  # noqa: PLW0603 - loaded once
    try:
        if _libc is None:
            # dlopen(NULL): the C library already loaded (find_library would run ldconfig).
            _libc = ctypes.CDLL(None, use_errno=True)
        func = _libc.mlock
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    func.restype = ctypes.c_int
    return func


class SecretBuffer:
    """``size`` bytes of private, page-aligned memory for key material.

    Args:
        size: bytes needed (at most one page).

    Attributes:
        locked: whether ``mlock`` held for this buffer.
    """

    __slots__ = ("_map", "locked", "size", "view")

    def __init__(self, size: int) -> None:
        global _locked  # noqa: PLW0603 - the last result, for status
        if not 0 < size <= mmap.PAGESIZE:
            raise ValueError("a secret buffer holds at most one page")
        self.size = size
        self._map = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.view = memoryview(self._map)[:size]
        if hasattr(mmap, "MADV_DONTDUMP"):
            try:
                self._map.madvise(mmap.MADV_DONTDUMP)
            except OSError as exc:
                log.debug("madvise(MADV_DONTDUMP) failed: %s", exc)
        self.locked = False
        mlock = _mlock()
        if mlock is not None:
            address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))
            self.locked = mlock(address, mmap.PAGESIZE) == 0
            if not self.locked:
                log.debug("mlock failed with errno %d", ctypes.get_errno())
        with _state:
            if _locked is not self.locked:
                if not self.locked:
                    log.warning("key memory could not be locked against swap (RLIMIT_MEMLOCK?)")
                _locked = self.locked

    def wipe(self) -> None:
        """Overwrite the buffer with zeros (it stays usable, and is zeroed again when dropped)."""
        if not self._map.closed:
            self.view[:] = bytes(self.size)

    def __del__(self) -> None:
        # munmap would also do (the kernel clears pages it hands out again), but zeroing
        # first also covers the page while it is still mapped.
        with contextlib.suppress(AttributeError, ValueError):  # a half-built buffer
            self.wipe()

    def __repr__(self) -> str:
        return f"SecretBuffer({self.size}, <hidden>)"
