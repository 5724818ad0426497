"""Runner throughput against a local OpenAI-compatible server (its own process) with a
fixed 50 ms latency: 2,000 chat items at concurrency 32, through the whole pipeline
(validation, requests, scoring, record writing, scorecard). Then the cached rerun.

Targets (issue 4): wall time <= 1.15 × ideal (2,000 × 0.05 / 32 s); cached rerun
<= 5% of the first run. With --with-inspect, the same workload through inspect_ai
(installed into a throwaway venv, not a dependency) in the same script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml
from targets import verdict

from harness import run_suite

N, LATENCY, CONCURRENCY = 2000, 0.05, 32
IDEAL = N * LATENCY / CONCURRENCY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "harness.testing.openai_server", "--port", str(port),
                             "--latency", str(LATENCY)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # "serving ..."
    return proc


def write_suite(tmp: Path, base_url: str, n: int = N) -> Path:
    with (tmp / "items.jsonl").open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"i{i}", "question": f"Question {i}? ANSWER={'ABCD'[i % 4]}",
                                 "answer": "ABCD"[i % 4]}) + "\n")
    (tmp / "task.yaml").write_text(yaml.safe_dump({
        "name": "bench-qa", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
        "choices": ["A", "B", "C", "D"], "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}}))
    (tmp / "chat.yaml").write_text(yaml.safe_dump({
        "name": "local", "kind": "openai-chat", "settings": {"base_url": base_url, "model": "m"}}))
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "bench", "tasks": ["task.yaml"], "adapters": ["chat.yaml"],
                                     "concurrency": CONCURRENCY}))
    return suite


INSPECT_SCRIPT = textwrap.dedent('''
    import json, sys, time
    from inspect_ai import Task, eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import choice, match
    from inspect_ai.solver import generate
    base_url, n = sys.argv[1], int(sys.argv[2])
    samples = [Sample(input=f"Question {i}? ANSWER={'ABCD'[i % 4]}", target="ABCD"[i % 4]) for i in range(n)]
    task = Task(dataset=samples, solver=generate(), scorer=match())
    start = time.perf_counter()
    inspect_eval(task, model="openai-api/local/m", model_base_url=base_url, max_connections=32,
                 display="none", log_dir=sys.argv[3])
    print(json.dumps({"wall_s": time.perf_counter() - start}))
''')


def run_inspect(base_url: str, tmp: Path) -> float | None:
    venv = Path(tempfile.gettempdir()) / "avec-bench-inspect-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "inspect_ai", "openai"], check=True)
    script = tmp / "inspect_bench.py"
    script.write_text(INSPECT_SCRIPT)
    env = {**os.environ, "LOCAL_API_KEY": "unused"}
    res = subprocess.run([str(py), str(script), base_url, str(N), str(tmp / "inspect-logs")],
                         capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        print("  inspect_ai failed:", res.stderr[-500:])
        return None
    return float(json.loads(res.stdout.strip().splitlines()[-1])["wall_s"])


def main(with_inspect: bool = False) -> dict[str, float]:
    port = free_port()
    server = start_server(port)
    base_url = f"http://127.0.0.1:{port}/v1"
    out: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            suite = write_suite(tmp, base_url)
            os.environ["HARNESS_CACHE_DIR"] = str(tmp / "cache")
            # three trials, each a cold cache then the cached rerun; the median of each is reported
            firsts, reruns = [], []
            for _ in range(3):
                shutil.rmtree(tmp / "cache", ignore_errors=True)
                start = time.perf_counter()
                first = run_suite(suite, quiet=True)
                firsts.append(time.perf_counter() - start)
                start = time.perf_counter()
                run_suite(suite, quiet=True)
                reruns.append(time.perf_counter() - start)
            t1, t2 = statistics.median(firsts), statistics.median(reruns)
            print("  trials, first run: " + ", ".join(f"{t:.2f}" for t in firsts) + " s; cached rerun: "
                  + ", ".join(f"{t:.3f}" for t in reruns) + " s")
            acc = next(r for r in first.scorecard["rows"] if r["metric"] == "accuracy")
            assert acc["value"] == 1.0 and acc["n"] == N
            out.update(first_s=t1, cached_s=t2, ratio_ideal=t1 / IDEAL, cached_ratio=t2 / t1)
            print(f"Runner (median of 3): {N} chat items, server latency {LATENCY * 1000:.0f} ms, "
                  f"concurrency {CONCURRENCY} (ideal {IDEAL:.3f} s)")
            print(f"  avec-harness first run: {t1:.2f} s = {t1 / IDEAL:.2f}x ideal "
                  f"(target <= 1.15: {verdict(t1 / IDEAL <= 1.15, 'bench_runner')})")
            print(f"  avec-harness cached rerun: {t2:.3f} s = {100 * t2 / t1:.1f}% of the first run "
                  f"(target <= 5%: {verdict(t2 / t1 <= 0.05, 'bench_runner')})")
            if with_inspect:
                ti = run_inspect(base_url, tmp)
                if ti is not None:
                    out["inspect_s"] = ti
                    print(f"  inspect_ai eval, same server, max_connections 32: {ti:.2f} s "
                          f"= {ti / IDEAL:.2f}x ideal")
                    print(f"  inspect_ai / avec-harness: {ti / t1:.1f}x")
            shutil.rmtree(tmp / "cache", ignore_errors=True)
    finally:
        server.terminate()
        server.wait()
        os.environ.pop("HARNESS_CACHE_DIR", None)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--with-inspect", action="store_true", help="also run inspect_ai (installs it in a temp venv)")
    main(parser.parse_args().with_inspect)
