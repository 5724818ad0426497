"""Run every benchmark in this folder and print their figures."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHES = ["bench_wer", "bench_asr", "bench_runner", "bench_process", "bench_replay_memory", "bench_compare",
           "bench_clinical", "bench_citations", "bench_upload_memory"]

if __name__ == "__main__":
    selected = sys.argv[1:] or BENCHES
    from targets import machine_speed

    print(machine_speed(), end="\n\n")
    for name in selected:
        importlib.import_module(name).main()
        print()
    from targets import FAILED

    if FAILED:
        print(f"{len(FAILED)} target(s) missed: " + ", ".join(FAILED))
        sys.exit(1)
    print("every target met")
