"""Regenerate the bundled dictation audio (tasks/dictation-en, tasks/dictation-fr) with espeak-ng.

The audio is committed (Opus in Ogg, 16 kHz mono) so that running the default
suite needs no speech synthesiser; this script exists so that anyone can check
how it was made and rebuild it. Requires the Debian packages espeak-ng and
opus-tools (`apt-get install espeak-ng opus-tools`).

Usage: python scripts/make_dictation_audio.py [--task dictation-en] [--voice en-gb] [--speed 150]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TASKS = Path(__file__).resolve().parent.parent / "tasks"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="dictation-en", choices=["dictation-en", "dictation-fr"])
    parser.add_argument("--voice", default=None, help="default: en-gb, or fr for dictation-fr")
    parser.add_argument("--speed", type=int, default=150, help="words per minute")
    parser.add_argument("--bitrate", type=int, default=24, help="Opus kbit/s")
    args = parser.parse_args()
    for tool in ("espeak-ng", "opusenc"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found; apt-get install espeak-ng opus-tools", file=sys.stderr)
            return 2
    task_dir = TASKS / args.task
    voice = args.voice or ("fr" if args.task.endswith("-fr") else "en-gb")
    items = [json.loads(line) for line in (task_dir / "items.jsonl").read_text("utf-8").splitlines()]
    (task_dir / "audio").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for item in items:
            wav = Path(tmp) / f"{item['id']}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(args.speed), "-w", str(wav), item["text"]],
                check=True,
            )
            out = task_dir / item["audio"]
            subprocess.run(
                ["opusenc", "--quiet", "--bitrate", str(args.bitrate), "--downmix-mono", str(wav), str(out)],
                check=True,
            )
    print(f"wrote {len(items)} files under {task_dir / 'audio'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
