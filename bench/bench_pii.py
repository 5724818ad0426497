"""PII detection throughput (issue 11): megabytes of clinical text scanned per second, one
process and every core, on the bundled annotated notes mixed with clinical prose (about one
identifier every 150 characters). Target: >= 5 MB/s on 2 cores.
Run: python bench/bench_pii.py [--mb N]
"""

from __future__ import annotations

import argparse
import os
import time

from targets import verdict

from harness.pii.detect import scan, scan_parallel
from harness.pii.evaluate import ANNOTATED, parse

PROSE = ("Amoxicilline 1 g trois fois par jour pendant sept jours, contrôle de la CRP et de la créatinine. "
         "Pas de douleur thoracique. The patient was reviewed on the ward, observations stable, plan unchanged. ")


def corpus(megabytes: float) -> str:
    notes = [parse(line)[0] for f in sorted(ANNOTATED.glob("*-*.txt"))
             for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    doc = "\n".join(f"{note} {PROSE * 2}" for note in notes) + "\n"
    return doc * int(megabytes * 1_000_000 // len(doc) + 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=20.0)
    args = parser.parse_args()
    text = corpus(args.mb)
    mb = len(text.encode("utf-8")) / 1e6
    start = time.perf_counter()
    one = scan(text[: len(text) // 4])
    single = (mb / 4) / (time.perf_counter() - start)
    start = time.perf_counter()
    every = scan_parallel(text)
    rate = mb / (time.perf_counter() - start)
    cores = len(os.sched_getaffinity(0))
    print(f"PII scan of {mb:.1f} MB ({len(every):,} identifiers): one process {single:.2f} MB/s; "
          f"{cores} cores {rate:.2f} MB/s, {rate / single:.2f}x (target >= 5 MB/s: "
          f"{verdict(rate >= 5, 'bench_pii')})")
    assert len(one) > 0


if __name__ == "__main__":
    main()
