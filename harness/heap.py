"""Memory the process freed, handed back to the system between the phases of a run.

Arrow's allocator (mimalloc) and glibc's malloc both keep freed pages for reuse, and neither
reuses the other's: a million-item replay run ended holding 290 MB, of which 120 MB live,
and the scorecard's arrays came on top of it. Each phase that frees a large working set
(validating a big export, the run itself) hands it back before the next one allocates."""

from __future__ import annotations

import contextlib
import ctypes
import sys


def release_freed_memory() -> None:
    """Return the pages Arrow's pool and glibc's heap hold free (a few milliseconds); a no-op
    where pyarrow was never imported or the C library is not glibc."""
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)
