"""Targets of the benchmarks: each check prints PASS or FAIL and is remembered, so that
`make bench` (bench/run_all.py) exits 1 when any benchmark misses its target."""

from __future__ import annotations

FAILED: list[str] = []


def verdict(ok: bool, what: str = "") -> str:
    """'PASS' or 'FAIL' for a printed line; a FAIL is remembered for the exit code."""
    if not ok:
        FAILED.append(what or "a target")
    return "PASS" if ok else "FAIL"


def machine_speed() -> str:
    """A line saying how fast this machine runs plain Python today. The reference machine's
    speed varies up to 2.3x from one day to another (10 million additions in a loop at a
    script's top level: 0.67 s on 2026-12-06, 1.54 s on 2026-11-23), so an absolute figure
    (items/s, seconds) means little without it; ratios taken in the same run do not need it."""
    import time

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return f"Machine speed: a pure-Python loop of 10 million additions takes {best:.2f} s (best of 3)"
