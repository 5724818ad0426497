"""Memory the process freed, handed back to the system between the phases of a run.

Arrow's own allocator (mimalloc, a library caller's default) and glibc's malloc both keep
freed pages for reuse, and neither reuses the other's: a million-item replay run ended
holding 290 MB, of which 120 MB live, and the scorecard's arrays came on top of it. Each
phase that frees a large working set (validating a big export, the run itself) hands it
back before the next one allocates; a command's process puts Arrow on glibc's malloc
(`use_lean_allocators`), so that one allocator holds, and returns, both."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from functools import cache

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: blocks from this size get pages of their own, handed back when freed
MMAP_THRESHOLD = 128 * 1024
#: free memory at the heap's top beyond this is handed back at once
TRIM_THRESHOLD = 256 * 1024

#: items from which a phase's freed memory is worth handing back: below it the process holds
#: little, and glibc's trim and the page faults after it only cost time
LARGE = 100_000


@cache
def _libc() -> ctypes.CDLL:
    """The C library this process runs on (glibc's `malloc_trim` and `mallopt` are looked up
    on it; elsewhere they are missing: AttributeError)."""
    return ctypes.CDLL(None)


def release_freed_memory(items: int) -> None:
    """After a phase over `items` items: return the pages Arrow's pool and glibc's heap hold
    free (milliseconds); a no-op for a small phase, where pyarrow was never imported, or
    where the C library is not glibc."""
    if items < LARGE:
        return
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    with contextlib.suppress(AttributeError, OSError):
        _libc().malloc_trim(0)


def use_lean_allocators() -> None:
    """For a command's process (not for a library's caller, whose allocators are its own): Arrow
    allocates through the system's malloc, and glibc gives every block from 128 KB its own pages
    at a fixed threshold.

    Why: mimalloc kept the JSON reader's freed blocks while NumPy and Python allocated beside
    them (reading a million-line record back peaked 23 MB higher on it, 15 MB at 100,000 lines),
    and glibc's own threshold rises as large blocks are freed (up to 32 MB), after which a
    million-row column and its sorted copy went on the heap and left holes when freed. An
    ARROW_DEFAULT_MEMORY_POOL already set wins; elsewhere than glibc only Arrow's pool changes.
    (Arrow on the system's allocator was once blamed for runs stopped by SIGTERM aborting at
    exit: that was a race in `values.warm_reader`, fixed there.)"""
    if "pyarrow" in sys.modules:
        if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") is None:
            sys.modules["pyarrow"].set_memory_pool(sys.modules["pyarrow"].system_memory_pool())
    else:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # read once, when pyarrow loads
    with contextlib.suppress(AttributeError, OSError):
        libc = _libc()
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
