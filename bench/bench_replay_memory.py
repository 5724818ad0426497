"""Peak memory of a 200,000-item replay run (streamed items, bounded queues, results
written as they arrive). The run happens in a child process so that its peak RSS is
measured alone. Target (issue 4): peak RSS under 500 MB. With an item count
(`python bench/bench_replay_memory.py 1000000`): issue 16's 1,000,000-item run, under 500 MB and
at least 15,000 items/s. With --flat: 100,000 then 1,000,000 items, and whether the peak
is flat from 100,000 on (issue 16; taken as at most 1.25x, as bench_consultations does).
With --jsonl as well, the export is JSON lines instead of CSV.
"""

from __future__ import annotations

import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from targets import machine_speed, verdict

N = 200_000


def main(n: int = N, export: str = "csv") -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with (tmp / "items.jsonl").open("w") as items, (tmp / f"outputs.{export}").open("w", newline="") as out:
            writer = csv.writer(out)
            if export == "csv":
                writer.writerow(["id", "answer", "latency"])
            for i in range(n):
                letter = "ABCD"[i % 4]
                items.write(json.dumps({"id": f"i{i}", "question": f"Question number {i} about a dose?",
                                        "answer": letter}) + "\n")
                if i % 50:  # every 50th item missing from the export
                    row = [f"i{i}", f"The answer is {letter if i % 7 else 'A'}.", 0.8]
                    if export == "csv":
                        writer.writerow(row)
                    else:
                        out.write(json.dumps(dict(zip(["id", "answer", "latency"], row, strict=True))) + "\n")
        (tmp / "task.yaml").write_text(yaml.safe_dump({
            "name": "big", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
            "choices": ["A", "B", "C", "D"], "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}}))
        (tmp / "replay.yaml").write_text(yaml.safe_dump({
            "name": "export", "kind": "replay",
            "settings": {"path": f"outputs.{export}", "output_column": "answer", "latency_column": "latency"}}))
        (tmp / "suite.yaml").write_text(yaml.safe_dump({"name": "mem", "tasks": ["task.yaml"],
                                                        "adapters": ["replay.yaml"]}))
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp / "suite.yaml"), "--quiet",
                              "--out", str(tmp / "run")], capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        assert res.returncode == 0, res.stderr
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        card = json.loads((tmp / "run" / "scorecard.json").read_text())
        missing = next(r for r in card["rows"] if r["metric"] == "missing_rate")
        assert missing["n"] == n
    print(f"Replay run of {n:,} items ({export} export): {elapsed:.1f} s ({n / elapsed:,.0f} items/s), "
          f"peak RSS {peak_mb:.0f} MB (target < 500 MB: {verdict(peak_mb < 500, 'bench_replay_memory')})")
    return {"peak_rss_mb": peak_mb, "seconds": elapsed}


def flat(export: str = "csv") -> None:
    small, big = main(100_000, export), main(1_000_000, export)
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    per_item = (big["peak_rss_mb"] - small["peak_rss_mb"]) * 2**20 / 900_000
    print(f"  peak at 10x the items: {ratio:.2f}x, {per_item:.0f} bytes an item "
          f"(flat: <= 1.25x: {verdict(ratio <= 1.25, 'replay memory flat')})")


if __name__ == "__main__":
    print(machine_speed())
    if "--flat" in sys.argv[1:]:
        flat("jsonl" if "--jsonl" in sys.argv[1:] else "csv")
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else N)
