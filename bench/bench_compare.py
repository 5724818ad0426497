"""`harness compare` on two runs of 100,000 items × 5 metrics (generated records).
Target (issue 7): under 10 s. With an item count (`python bench/bench_compare.py 1000000`),
the comparison also runs alone in a child process for its peak RSS (issue 16's target at
1,000,000 items: under 15 s and 500 MB)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from targets import verdict

from harness.compare import compare_runs

N = 100_000
METRICS = [
    {"name": "accuracy", "aggregation": "proportion", "value": "correct", "denominator": None,
     "higher_is_better": True},
    {"name": "unextractable_rate", "aggregation": "proportion", "value": "unextractable", "denominator": None,
     "higher_is_better": False},
    {"name": "wer", "aggregation": "ratio", "value": "wer_errors", "denominator": "wer_ref", "higher_is_better": False},
    {"name": "error_rate", "aggregation": "proportion", "value": "error", "denominator": None,
     "higher_is_better": False},
    {"name": "latency_rank", "aggregation": "mean", "value": "score", "denominator": None, "higher_is_better": True},
]


def write_run(path: Path, seed: int, drop: float, n: int = N) -> None:
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    manifest = {"format_version": 2, "run_id": path.name, "status": "complete", "harness_version": "bench",
                "repeats": 1, "seed": 0, "pairs": [["t", "a"]],
                "suite": {"name": "bench", "path": str(path), "description": "", "config": {
                    "name": "bench", "tasks": ["t.yaml"], "adapters": [{"path": "a.yaml"}]}},
                "tasks": {"t": {"path": "t.yaml", "config": {"name": "t", "kind": "qa", "dataset": {"path": "x"}},
                                "scorers": {"x": "1"}, "metrics": METRICS, "items": n}},
                "adapters": {"a": {"path": "a.yaml", "kind": "replay", "settings": {}, "declarations": {}}},
                "started_at": "2026-11-23T00:00:00+00:00", "ended_at": "2026-11-23T00:01:00+00:00"}
    (path / "manifest.json").write_text(json.dumps(manifest))
    base = np.random.default_rng(0).random(n)
    with (path / "scores.jsonl").open("wb") as fh:
        correct = (rng.random(n) < 0.8 - drop) | (base < 0.5)
        refs = rng.integers(5, 30, n)
        errors = rng.binomial(refs, 0.1 + drop)
        for i in range(n):
            fh.write(orjson.dumps({"task": "t", "adapter": "a", "item_id": f"i{i}", "repeat": 0, "cluster": None,
                                   "status": "ok",
                                   "values": {"correct": int(correct[i]), "unextractable": int(base[i] < 0.01),
                                              "wer_errors": int(errors[i]), "wer_ref": int(refs[i]), "error": 0,
                                              "score": float(base[i])}},
                                  option=orjson.OPT_APPEND_NEWLINE))


#: the comparison alone in a process, with the allocators `harness compare` sets up
CHILD = ("import sys, resource, time; from harness.heap import use_lean_allocators; use_lean_allocators(); "
         "from harness.compare import compare_runs; t = time.perf_counter(); "
         "compare_runs(sys.argv[1], sys.argv[2], margin=0.005); "
         "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def main(n: int = N) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        write_run(a, 1, 0.0, n)
        write_run(b, 2, 0.01, n)
        start = time.perf_counter()
        result = compare_runs(a, b, margin=0.005)
        elapsed = time.perf_counter() - start
        out = {"seconds": elapsed}
        if n != N:
            child = subprocess.run([sys.executable, "-c", CHILD, str(a), str(b)], capture_output=True, text=True,
                                   check=True)
            seconds, rss_kb = child.stdout.split()
            out.update(child_seconds=float(seconds), peak_rss_mb=int(rss_kb) / 1024)
    assert result.comparable and len(result.metrics) == 5
    target = 10 if n == N else 15
    print(f"compare, {n:,} items × {len(result.metrics)} metrics: {elapsed:.2f} s "
          f"(target < {target} s: {verdict(elapsed < target, 'bench_compare')}); regressions found: "
          + ", ".join(m.metric for m in result.regressions))
    if n != N:
        rss = out["peak_rss_mb"]
        print(f"  alone in a process: {out['child_seconds']:.2f} s, peak RSS {rss:.0f} MB "
              f"(target < 500 MB: {verdict(rss < 500, 'bench_compare rss')})")
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N)
