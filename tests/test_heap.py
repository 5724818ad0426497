"""The command's allocators (harness.heap): Arrow on the system's malloc unless the user chose a
pool, whether pyarrow was imported before or after; each case in a fresh interpreter, since
Arrow reads its pool's setting once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys
if sys.argv[1] == "before":
    import pyarrow
from harness.heap import use_lean_allocators
use_lean_allocators()
import pyarrow as pa
print(pa.default_memory_pool().backend_name)
"""


@pytest.mark.parametrize("imported", ["before", "after"])
@pytest.mark.parametrize("chosen", [None, "mimalloc"])
def test_arrow_allocates_through_the_system_unless_a_pool_was_chosen(imported: str, chosen: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    res = subprocess.run([sys.executable, "-c", PROBE, imported], capture_output=True, text=True, env=env, check=True)
    assert res.stdout.strip() == (chosen or "system")
