"""What the user waits for: the whole `harness run` process, from the command to the written
reports (interpreter start, imports, validation, requests, scoring, record, scorecard,
Markdown and HTML), beside a bare aiohttp loop (the practical limit of one Python process)
against the same local server, measured in the same run.

Targets (issue 16): whole process <= 1.25x ideal at 2,000 items and <= 1.10x at 20,000;
unchanged cached rerun <= 5% of the first run; `harness --help` and `harness validate`
under 0.5 s of imports (wall time minus a bare interpreter start).
Run: python bench/bench_process.py [--large]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench_runner import CONCURRENCY, LATENCY, free_port, start_server, write_suite
from targets import machine_speed, verdict

HARNESS = [sys.executable, "-m", "harness"]

BARE_LOOP = textwrap.dedent('''
    import asyncio, sys, aiohttp, orjson
    url, n, concurrency = sys.argv[1] + "/chat/completions", int(sys.argv[2]), int(sys.argv[3])
    async def main():
        sem = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def one(i):
                body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": f"Question {i}?"}]})
                async with sem, session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    orjson.loads(await r.read())
            await asyncio.gather(*(one(i) for i in range(n)))
    asyncio.run(main())
''')


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} exited {res.returncode}: {res.stderr[-800:]}")
    return elapsed


def workload(n: int, base_url: str, tmp: Path, rounds: int = 5) -> dict[str, float]:
    """Bare loop, first run (writing the cache) and unchanged cached rerun, in `rounds`
    interleaved rounds (each with a new cache): medians, since on this machine one run can
    be 5% off the next, as much as the margin of a target."""
    ideal = n * LATENCY / CONCURRENCY
    work = tmp / f"n{n}"
    work.mkdir()
    suite = write_suite(work, base_url, n)
    script = work / "bare.py"
    script.write_text(BARE_LOOP)
    times: dict[str, list[float]] = {"bare": [], "first": [], "cached": []}
    for i in range(rounds):
        env = {**os.environ, "HARNESS_CACHE_DIR": str(work / f"cache{i}")}
        times["bare"].append(wall([sys.executable, str(script), base_url, str(n), str(CONCURRENCY)]))
        times["first"].append(wall([*HARNESS, "run", str(suite), "--quiet", "--out", str(work / f"first{i}")], env))
        times["cached"].append(wall([*HARNESS, "run", str(suite), "--quiet", "--out", str(work / f"again{i}")], env))
    bare, first, cached = (statistics.median(times[k]) for k in ("bare", "first", "cached"))

    def spread(key: str) -> str:
        return f"{min(times[key]):.2f}-{max(times[key]):.2f} s" if rounds > 1 else "one run"

    target = 1.25 if n <= 2000 else 1.10
    print(f"{n:,} chat items at {LATENCY * 1000:.0f} ms, concurrency {CONCURRENCY} (ideal {ideal:.2f} s); "
          f"medians of {rounds} rounds")
    print(f"  bare aiohttp loop (whole process): {bare:.2f} s = {bare / ideal:.2f}x ideal ({spread('bare')})")
    print(f"  harness run (whole process):       {first:.2f} s = {first / ideal:.2f}x ideal ({spread('first')}), "
          f"{first / bare:.2f}x the bare loop (target <= {target:.2f}x ideal: "
          f"{verdict(first / ideal <= target, f'bench_process {n}')})")
    print(f"  unchanged cached rerun:            {cached:.2f} s = {100 * cached / first:.1f}% of the first run "
          f"({spread('cached')}; target <= 5%: {verdict(cached / first <= 0.05, f'bench_process cached {n}')})")
    return {f"bare_{n}": bare, f"first_{n}": first, f"cached_{n}": cached}


def startup(tmp: Path) -> dict[str, float]:
    suite = write_suite(tmp, "http://127.0.0.1:9/v1", 10)
    bare = min(wall([sys.executable, "-c", "pass"]) for _ in range(5))
    help_s = min(wall([*HARNESS, "--help"]) for _ in range(5))
    validate_s = min(wall([*HARNESS, "validate", str(suite)]) for _ in range(5))
    print(f"Start-up: interpreter {bare:.3f} s; harness --help {help_s:.3f} s ({help_s - bare:.3f} s of imports, "
          f"target < 0.5: {verdict(help_s - bare < 0.5, 'bench_process help')}); harness validate "
          f"{validate_s:.3f} s ({validate_s - bare:.3f} s, target < 0.5: "
          f"{verdict(validate_s - bare < 0.5, 'bench_process validate')})")
    return {"help_imports_s": help_s - bare, "validate_s": validate_s - bare}


def cpu_bound(tmp: Path, n: int = 10_000, latency: float = 0.02, concurrency: int = 256,
              rounds: int = 3) -> dict[str, float]:
    """Where the client's CPU is the limit: many short requests at once. Target (issue 16):
    the harness >= 0.9x the bare loop's requests/s."""
    import yaml

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "harness.testing.openai_server", "--port", str(port),
                               "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    server.stdout.readline()
    try:
        work = tmp / "cpu"
        work.mkdir()
        base_url = f"http://127.0.0.1:{port}/v1"
        suite = write_suite(work, base_url, n)
        config = yaml.safe_load(suite.read_text())
        suite.write_text(yaml.safe_dump({**config, "concurrency": concurrency, "cache": False}))
        script = work / "bare.py"
        script.write_text(BARE_LOOP)
        bares, runs = [], []
        for i in range(rounds):  # interleaved; medians
            bares.append(wall([sys.executable, str(script), base_url, str(n), str(concurrency)]))
            runs.append(wall([*HARNESS, "run", str(suite), "--quiet", "--out", str(work / f"run{i}")]))
        bare, harness = statistics.median(bares), statistics.median(runs)
    finally:
        server.terminate()
        server.wait()
    ratio = bare / harness
    print(f"{n:,} chat items at {latency * 1000:.0f} ms, concurrency {concurrency} (CPU-bound): bare loop "
          f"{n / bare:,.0f} requests/s, harness run {n / harness:,.0f} requests/s (whole processes, medians of "
          f"{rounds} rounds; ratios {min(b / h for b, h in zip(bares, runs, strict=True)):.2f}-"
          f"{max(b / h for b, h in zip(bares, runs, strict=True)):.2f}) = {ratio:.2f}x "
          f"(target >= 0.9x: {verdict(ratio >= 0.9, 'bench_process cpu-bound')})")
    return {"cpu_bare_rps": n / bare, "cpu_harness_rps": n / harness}


def main(large: bool = False) -> dict[str, float]:
    port = free_port()
    server = start_server(port)
    out: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            out.update(startup(tmp))
            for n in (2000, 20000) if large else (2000,):
                out.update(workload(n, f"http://127.0.0.1:{port}/v1", tmp, 5 if n <= 2000 else 1))
            out.update(cpu_bound(tmp))
    finally:
        server.terminate()
        server.wait()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--large", action="store_true", help="also 20,000 items (about a minute)")
    large = parser.parse_args().large
    print(machine_speed())
    main(large)
