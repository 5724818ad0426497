"""Memory the process freed, handed back to the system between the phases of a run.

Arrow's allocator (mimalloc) and glibc's malloc both keep freed pages for reuse, and neither
reuses the other's: a million-item replay run ended holding 290 MB, of which 120 MB live,
and the scorecard's arrays came on top of it. Each phase that frees a large working set
(validating a big export, the run itself) hands it back before the next one allocates."""

from __future__ import annotations

import contextlib
import ctypes
import sys

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
