"""`executor: ray` (issue 14), whole `harness run` processes measured side by side in one run:

1. the 48 bundled dictations through faster-whisper tiny.en: the local adapter as it was
   (one model, every thread) against Ray with 2 single-thread actors (target >= 1.6x) and the
   improved local adapter (2 workers x 1 thread); transcripts must be the same;
2. Ray's dispatch overhead: a trivial `python` system on N items, record and scores included
   (target >= 1,000 items/s end to end; the rate once started is printed too);
3. a simulated 4-node run (4 actors of 0.5 CPU) gives the scorecard of a local run.

Run: python bench/bench_ray.py [items for part 2, default 20000]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from bench_whisper_cores import BEFORE, compare_settings, direct_ceiling
from targets import verdict

TIMING = {"latency_s", "ttft_s", "tokens_per_s"}


def _run(folder: Path, suite: dict[str, Any], *extra: str) -> tuple[float, Path]:
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness", "run", str(folder / "suite.yaml"), "--quiet", "--out",
                          str(folder / "run"), *extra], capture_output=True, text=True,
                         env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if res.returncode not in (0, 1):
        raise SystemExit(f"{folder.name}: exit {res.returncode}\n{res.stderr[-2000:]}")
    return time.perf_counter() - start, folder / "run"


def _figures(run: Path) -> dict[tuple[str, str, str], Any]:
    card = json.loads((run / "scorecard.json").read_text())
    return {(r["task"], r["adapter"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"], r["n"])
            for r in card["rows"] if r["metric"] not in TIMING}


def dictations(tmp: Path) -> None:
    seconds = compare_settings(tmp, {
        "local, one model (as it was)": (BEFORE, None),
        "local, 2 workers x 1 thread": ({"num_workers": 2, "cpu_threads": 1}, None),
        "ray, 2 actors x 1 thread": ({"num_workers": 1, "cpu_threads": 1}, {"actors": 2, "num_cpus": 1}),
    })
    ceiling = direct_ceiling()
    before = seconds["local, one model (as it was)"]
    ray_ratio = before / seconds["ray, 2 actors x 1 thread"]
    local_ratio = before / seconds["local, 2 workers x 1 thread"]
    print(f"  Ray 2 x 1 thread vs the local adapter as it was: {ray_ratio:.2f}x "
          f"(target >= 1.6x: {verdict(ray_ratio >= 1.6, 'bench_ray dictations, Ray')}); improved local adapter: "
          f"{local_ratio:.2f}x (target >= 1.7x: {verdict(local_ratio >= 1.7, 'bench_ray dictations, local')}); "
          f"ceiling without any harness: {ceiling:.2f}x")


SYSTEM = "def answer(request):\n    return request.inputs['question'][-1]\n"


def _qa_suite(folder: Path, items: int, **suite: Any) -> dict[str, Any]:
    folder.mkdir()
    (folder / "system.py").write_text(SYSTEM)
    with (folder / "qa.jsonl").open("w") as fh:
        for i in range(items):
            fh.write(json.dumps({"id": f"q{i}", "question": f"Q{i} {'ABCD'[i % 4]}",
                                 "answer": "ABCD"[(i % 4) if i % 7 else 0]}) + "\n")
    (folder / "qa.yaml").write_text(yaml.safe_dump({
        "name": "qa", "kind": "qa", "data_class": "public", "prompt": "{{ question }}", "choices": list("ABCD"),
        "dataset": {"path": "qa.jsonl", "fields": {"reference": "answer"}}}))
    (folder / "system.yaml").write_text(yaml.safe_dump({
        "name": "trivial", "kind": "python", "settings": {"callable": "system:answer", "path": ["."]}}))
    return {"name": "dispatch", "tasks": ["qa.yaml"], "adapters": ["system.yaml"], "cache": False, **suite}


def dispatch(tmp: Path, items: int) -> None:
    seconds, run = _run(tmp / "dispatch", _qa_suite(tmp / "dispatch", items, executor="ray",
                                                   adapters=[{"path": "system.yaml",
                                                              "ray": {"actors": 2, "batch_size": 64}}]))
    manifest = json.loads((run / "manifest.json").read_text())
    first = min(datetime.fromisoformat(r["time"]) for r in map(json.loads, (run / "responses.jsonl").open()))
    steady = (datetime.fromisoformat(manifest["ended_at"]) - first).total_seconds()
    rate = items / seconds
    print(f"Ray dispatch, trivial python system, {items} items: {seconds:.1f} s whole process = {rate:,.0f} items/s "
          f"end to end (target >= 1,000: {verdict(rate >= 1000, 'bench_ray dispatch')}); "
          f"{items / steady:,.0f} items/s from the first response to the end")
    local_seconds, _ = _run(tmp / "dispatch-local", _qa_suite(tmp / "dispatch-local", items))
    print(f"  the same run, local executor: {local_seconds:.1f} s = {items / local_seconds:,.0f} items/s "
          f"(Ray/local time: {seconds / local_seconds:.2f}x)")


def four_nodes(tmp: Path) -> None:
    _, local = _run(tmp / "local4", _qa_suite(tmp / "local4", 400))
    _, ray = _run(tmp / "ray4", _qa_suite(tmp / "ray4", 400, executor="ray",
                                          adapters=[{"path": "system.yaml",
                                                     "ray": {"actors": 4, "num_cpus": 0.5, "batch_size": 8}}]))
    actors = {r["worker"]["actor"] for r in map(json.loads, (ray / "responses.jsonl").open())}
    same = _figures(local) == _figures(ray)
    print(f"simulated 4-node run (4 actors x 0.5 CPU, {len(actors)} actors answered): scorecard equal to the local "
          f"run's: {verdict(same, 'bench_ray four nodes')}")


def main() -> None:
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    print(f"{len(os.sched_getaffinity(0))} cores")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        dictations(tmp)
        dispatch(tmp, items)
        four_nodes(tmp)


if __name__ == "__main__":
    main()
