"""Peak memory of a run that uploads long recordings to an `openai-transcription` endpoint
(the local test server): 4 WAV files of 50 minutes (96 MB each) at concurrency 4, the whole
`harness run` process in a child, beside the same process answered with tiny files. Each
upload is streamed from disk by aiohttp; read whole (before), four of them took the peak to
959 MB. Target: the long files cost less than their size once over (< 1x the 384 MB).
Run: python bench/bench_upload_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import yaml
from targets import verdict

from harness.testing.openai_server import OpenAIServer

FILES, MINUTES, RATE = 4, 50, 16_000


def _suite(tmp: Path, base_url: str, seconds: float) -> Path:
    (tmp / "audio").mkdir(parents=True)
    for i in range(FILES):
        with wave.open(str(tmp / "audio" / f"a{i}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(b"\x00\x00" * int(RATE * seconds))
    (tmp / "items.jsonl").write_text("".join(json.dumps({"id": f"a{i}", "audio": f"audio/a{i}.wav", "text": "x"})
                                             + "\n" for i in range(FILES)))
    (tmp / "task.yaml").write_text(yaml.safe_dump({"name": "t", "kind": "transcription", "data_class": "public",
                                                   "dataset": {"path": "items.jsonl",
                                                               "fields": {"reference": "text"}}}))
    (tmp / "stt.yaml").write_text(yaml.safe_dump({"name": "stt", "kind": "openai-transcription",
                                                  "settings": {"base_url": base_url, "model": "m"}}))
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "tasks": ["task.yaml"], "adapters": ["stt.yaml"],
                                     "concurrency": FILES, "cache": False}))
    return suite


def _peak_mb(suite: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of `harness run` in a child process of its own."""
    script = ("import resource, subprocess, sys\n"
              "subprocess.run([sys.executable, '-m', 'harness', 'run', sys.argv[1], '--quiet', '--out', sys.argv[2]],"
              " check=True, stdout=subprocess.DEVNULL)\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, str(suite), str(suite.parent / "run")],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) / 1024, time.perf_counter() - start


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmpdir, OpenAIServer() as server:
        long_mb, long_s = _peak_mb(_suite(Path(tmpdir) / "long", server.base_url, MINUTES * 60))
        short_mb, _ = _peak_mb(_suite(Path(tmpdir) / "short", server.base_url, 1))
    size_mb = FILES * MINUTES * 60 * RATE * 2 / 2**20
    extra = long_mb - short_mb
    print(f"{FILES} uploads of {MINUTES} min ({size_mb:.0f} MB in all) at concurrency {FILES}: peak RSS "
          f"{long_mb:.0f} MB in {long_s:.1f} s, {extra:+.0f} MB over the same run with 1 s files "
          f"({extra / size_mb:.2f}x the files; target < 1x: {verdict(extra < size_mb, 'bench_upload_memory')})")
    return {"upload_peak_mb": long_mb, "upload_extra_mb": extra}


if __name__ == "__main__":
    main()
