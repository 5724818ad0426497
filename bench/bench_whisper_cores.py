"""Every core of one machine (issue 14, point 4): the 48 bundled dictations through the whole
`harness run` process with the faster-whisper adapter as it was (one model, every thread,
one file at a time) and with CTranslate2 workers (`num_workers` replicas of `cpu_threads`
threads each), measured side by side in one run; the transcripts must be the same.

Beside them, the ceiling: the same two settings called directly (faster-whisper alone, in a
fresh process, no harness). No executor can gain more than two replicas gain there.

Target: >= 1.7x the throughput of the one-model setting on 2 cores.
Run: python bench/bench_whisper_cores.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml
from targets import verdict

ROOT = Path(__file__).resolve().parent.parent
TASK = ROOT / "tasks" / "dictation-en" / "task.yaml"
BEFORE = {"num_workers": 1, "cpu_threads": 0}
SETTINGS = {
    "one model, all threads (before)": BEFORE,
    "2 workers x 1 thread": {"num_workers": 2, "cpu_threads": 1},
    "2 workers x 2 threads": {"num_workers": 2, "cpu_threads": 2},
}

DIRECT = textwrap.dedent('''
    import glob, json, sys, threading, time
    from pathlib import Path
    from faster_whisper import WhisperModel
    from harness.adapters.faster_whisper import resolve_model
    files = sorted(glob.glob(sys.argv[1] + "/*"))
    path = str(resolve_model("tiny.en", Path(".")))
    def seconds(workers, threads):
        model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=workers,
                             local_files_only=True)
        todo, lock = iter(files), threading.Lock()
        def work():
            while True:
                with lock:
                    f = next(todo, None)
                if f is None:
                    return
                segments, _ = model.transcribe(f, beam_size=5, temperature=0.0, condition_on_previous_text=False)
                list(segments)
        start = time.perf_counter()
        pool = [threading.Thread(target=work) for _ in range(workers)]
        [t.start() for t in pool]
        [t.join() for t in pool]
        return time.perf_counter() - start
    print(json.dumps([seconds(1, 0), seconds(2, 1)]))
''')


def harness_run(folder: Path, settings: dict[str, int],
                actors: dict[str, Any] | None = None) -> tuple[float, dict[str, str]]:
    """The 48 dictations through a whole `harness run` process with these adapter settings
    (on Ray actors with `actors`): (seconds, transcript by item)."""
    folder.mkdir()
    (folder / "whisper.yaml").write_text(yaml.safe_dump({
        "name": "whisper", "kind": "faster-whisper",
        "settings": {"model": "tiny.en", "compute_type": "int8", "beam_size": 5, **settings},
        "declarations": {"data_clearance": "health", "hosting": "this machine"}}))
    ref: dict[str, Any] = {"path": "whisper.yaml", **({"ray": actors} if actors else {})}
    (folder / "suite.yaml").write_text(yaml.safe_dump({
        "name": "cores", "tasks": [str(TASK)], "adapters": [ref], "cache": False,
        "data_roots": [str(TASK.parent)], **({"executor": "ray"} if actors else {})}))
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness", "run", str(folder / "suite.yaml"), "--quiet", "--out",
                          str(folder / "run")], capture_output=True, text=True,
                         env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if res.returncode not in (0, 1):
        raise SystemExit(f"{folder.name}: exit {res.returncode}\n{res.stderr[-2000:]}")
    seconds = time.perf_counter() - start
    outputs = {r["item_id"]: r["output"] for r in map(json.loads, (folder / "run" / "responses.jsonl").open())}
    return seconds, outputs


def direct_ceiling() -> float:
    """Two single-thread replicas against one model on every thread, called directly: the
    most that more replicas can give on this machine, whatever runs them."""
    res = subprocess.run([sys.executable, "-c", DIRECT, str(TASK.parent / "audio")], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    one, two = json.loads(res.stdout.splitlines()[-1])
    print(f"ceiling, faster-whisper called directly (no harness): one model on every thread {one:.1f} s, "
          f"2 replicas x 1 thread {two:.1f} s = {one / two:.2f}x")
    return one / two


def compare_settings(tmp: Path, setups: dict[str, tuple[dict[str, int], dict[str, Any] | None]]) -> dict[str, float]:
    """Each setup's whole process, printed with how many transcripts equal the first one's."""
    seconds: dict[str, float] = {}
    first: dict[str, str] = {}
    for name, (settings, actors) in setups.items():
        seconds[name], outputs = harness_run(tmp / f"setup{len(seconds)}", settings, actors)
        first = first or outputs
        same = sum(outputs[k] == v for k, v in first.items())
        print(f"{name:<34} {seconds[name]:6.1f} s for 48 dictations (whole process), {same}/48 transcripts "
              f"identical to the first")
    return seconds


def main() -> dict[str, float]:
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmpdir:
        results = compare_settings(Path(tmpdir), {name: (s, None) for name, s in SETTINGS.items()})
    ceiling = direct_ceiling()
    before = results["one model, all threads (before)"]
    best_name = min(results, key=results.__getitem__)
    ratio = before / results["2 workers x 1 thread"]
    print(f"{cores} cores: 2 workers x 1 thread is {ratio:.2f}x the throughput of one model "
          f"(target >= 1.7x: {verdict(ratio >= 1.7, 'bench_whisper_cores')}; ceiling measured above "
          f"{ceiling:.2f}x); fastest: {best_name}")
    return results


if __name__ == "__main__":
    main()
