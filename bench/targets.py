"""Targets of the benchmarks: each check prints PASS or FAIL and is remembered, so that
`make bench` (bench/run_all.py) exits 1 when any benchmark misses its target."""

from __future__ import annotations

FAILED: list[str] = []


def verdict(ok: bool, what: str = "") -> str:
    """'PASS' or 'FAIL' for a printed line; a FAIL is remembered for the exit code."""
    if not ok:
        FAILED.append(what or "a target")
    return "PASS" if ok else "FAIL"
