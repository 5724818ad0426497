"""Memory the process freed, handed back to the system between the phases of a run.

Arrow's allocator (mimalloc) and glibc's malloc both keep freed pages for reuse, and neither
reuses the other's: a million-item replay run ended holding 290 MB, of which 120 MB live,
and the scorecard's arrays came on top of it. Each phase that frees a large working set
(validating a big export, the run itself) hands it back before the next one allocates."""

from __future__ import annotations

import contextlib
import ctypes
import sys

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: blocks from this size get pages of their own, handed back when freed
MMAP_THRESHOLD = 128 * 1024
#: free memory at the heap's top beyond this is handed back at once
TRIM_THRESHOLD = 256 * 1024

#: items from which a phase's freed memory is worth handing back: below it the process holds
#: little, and glibc's trim and the page faults after it only cost time
LARGE = 100_000


def release_freed_memory(items: int) -> None:
    """After a phase over `items` items: return the pages Arrow's pool and glibc's heap hold
    free (milliseconds); a no-op for a small phase, where pyarrow was never imported, or
    where the C library is not glibc."""
    if items < LARGE:
        return
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)


def use_lean_allocators() -> None:
    """For a command's process (not for a library's caller, whose allocators are its own): glibc
    gives every block from 128 KB its own pages at a fixed threshold. Its own threshold rises as
    large blocks are freed (up to 32 MB), after which a million-row column and its sorted copy
    went on the heap and left holes when freed. (Arrow on the system allocator lowered a
    million-item run's peak by ~25 MB more; it was dropped when runs stopped by SIGTERM aborted
    at exit, a race later found in `values.warm_reader` and fixed, and is not used.)"""
    with contextlib.suppress(AttributeError, OSError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
