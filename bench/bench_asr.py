"""Harness overhead on the transcription task: the whole `run_suite` of dictation-en
(validation, model load, transcription, scoring, record writing) against calling
faster-whisper directly on the same files (model load included) in the same process.

Target (issue 3): harness time <= 1.10 × direct time.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import yaml
from targets import verdict

from harness import run_suite
from harness.adapters.faster_whisper import bundled_model_path

ROOT = Path(__file__).resolve().parent.parent
TASK = ROOT / "tasks" / "dictation-en"


def direct(files: list[Path]) -> float:
    from faster_whisper import WhisperModel

    start = time.perf_counter()
    model = WhisperModel(str(bundled_model_path("tiny.en")), device="cpu", compute_type="int8",
                         cpu_threads=0, local_files_only=True)
    for f in files:
        segments, _ = model.transcribe(str(f), beam_size=5, temperature=0.0, condition_on_previous_text=False)
        " ".join(s.text.strip() for s in segments)
    return time.perf_counter() - start


def through_harness(tmp: Path) -> float:
    tmp.mkdir(parents=True)
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "bench-asr", "tasks": [str(TASK / "task.yaml")],
        "adapters": [str(ROOT / "adapters" / "whisper-tiny-local.yaml")]}), encoding="utf-8")
    start = time.perf_counter()
    result = run_suite(suite, out=tmp / "run", quiet=True)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0
    return elapsed


def main() -> dict[str, float]:
    files = [TASK / json.loads(line)["audio"] for line in (TASK / "items.jsonl").read_text().splitlines()]
    direct(files[:2])  # warm the file cache and CTranslate2 once for both sides
    times_direct, times_harness = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):  # alternate to spread machine noise over both sides
            times_direct.append(direct(files))
            times_harness.append(through_harness(Path(tmp) / str(i)))
    d, h = min(times_direct), min(times_harness)
    ratio = h / d
    print(f"Transcription of {len(files)} dictations (whisper tiny.en, int8, beam 5), best of 2")
    print(f"  faster-whisper called directly: {d:.2f} s")
    print(f"  harness run_suite end to end:   {h:.2f} s")
    print(f"  ratio harness / direct: {ratio:.3f} (target <= 1.10: {verdict(ratio <= 1.10, 'bench_asr')})")
    return {"direct_s": d, "harness_s": h, "ratio": ratio}


if __name__ == "__main__":
    main()
