"""Every core of one machine (issue 14, point 4): the 48 bundled dictations through the whole
`harness run` process with the faster-whisper adapter as it was (one model, every thread,
one file at a time) and with CTranslate2 workers (`num_workers` replicas of `cpu_threads`
threads each), measured side by side in one run; the transcripts must be the same.

Target: >= 1.7x the throughput of the one-model setting on 2 cores.
Run: python bench/bench_whisper_cores.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from targets import verdict

ROOT = Path(__file__).resolve().parent.parent
TASK = ROOT / "tasks" / "dictation-en" / "task.yaml"
SETTINGS = {
    "one model, all threads (before)": {"num_workers": 1, "cpu_threads": 0},
    "2 workers x 1 thread": {"num_workers": 2, "cpu_threads": 1},
    "2 workers x 2 threads": {"num_workers": 2, "cpu_threads": 2},
}


def run(tmp: Path, name: str, settings: dict[str, int]) -> tuple[float, dict[str, str]]:
    folder = tmp / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    folder.mkdir()
    (folder / "whisper.yaml").write_text(yaml.safe_dump({
        "name": "whisper", "kind": "faster-whisper",
        "settings": {"model": "tiny.en", "compute_type": "int8", "beam_size": 5, **settings},
        "declarations": {"data_clearance": "health", "hosting": "this machine"}}))
    (folder / "suite.yaml").write_text(yaml.safe_dump({
        "name": "cores", "tasks": [str(TASK)], "adapters": ["whisper.yaml"], "cache": False,
        "data_roots": [str(TASK.parent)]}))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", "run", str(folder / "suite.yaml"), "--quiet", "--out",
                    str(folder / "run")], check=True, capture_output=True, env={**os.environ})
    seconds = time.perf_counter() - start
    outputs = {r["item_id"]: r["output"] for r in map(json.loads, (folder / "run" / "responses.jsonl").open())}
    return seconds, outputs


def main() -> dict[str, float]:
    cores = len(os.sched_getaffinity(0))
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        baseline_outputs: dict[str, str] = {}
        for name, settings in SETTINGS.items():
            seconds, outputs = run(Path(tmpdir), name, settings)
            results[name] = seconds
            if not baseline_outputs:
                baseline_outputs = outputs
            same = sum(outputs[k] == v for k, v in baseline_outputs.items())
            print(f"{name:<34} {seconds:6.1f} s for 48 dictations (whole process), "
                  f"{same}/48 transcripts identical to the first setting")
    before = results["one model, all threads (before)"]
    best_name = min(results, key=results.__getitem__)
    ratio = before / results["2 workers x 1 thread"]
    print(f"{cores} cores: 2 workers x 1 thread is {ratio:.2f}x the throughput of one model "
          f"(target >= 1.7x: {verdict(ratio >= 1.7, 'bench_whisper_cores')}); fastest: {best_name}")
    return results


if __name__ == "__main__":
    main()
