"""Whole consultations at corpus scale (issue 10): a replay of 2,310 doctor-patient
consultations (3.5 M reference words, generated text of the size of a public medical ASR
leaderboard) scored with every transcription and medical scorer (wer, cer, drug_names, doses,
critical_terms): the whole `harness run` process timed, then run again with its memory sampled.

Targets: under 30 s and peak memory under 500 MB on 2 cores (PSS of the process tree: the
scoring workers included, shared pages once), and the memory flat in the number of
files (a quarter of the corpus is run too, for the ratio).
Run: python bench/bench_consultations.py [--files N] [--words-per-file W]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from targets import verdict

DRUGS = ["amoxicillin", "ibuprofen", "ramipril", "metformin", "atorvastatin", "warfarin", "apixaban",
         "salbutamol", "omeprazole", "sertraline", "furosemide", "bisoprolol", "levothyroxine", "paracetamol"]
LOOKALIKE = {"amoxicillin": "ampicillin", "ramipril": "enalapril", "sertraline": "cetirizine",
             "metformin": "metoprolol", "warfarin": "heparin"}
DOCTOR = [
    "Right, okay, so how have you been since we last spoke about the {body}?",
    "I would like you to take {drug} {dose} mg {freq}.",
    "Any pain in your {side} {body} when you walk or climb the stairs?",
    "There is no sign of infection in the {side} {body}, which is good news.",
    "Are you still taking the {drug}, or did you stop it after the last visit?",
    "We will check your blood pressure again and repeat the blood tests in two weeks.",
    "All right, let me have a listen to your chest, breathe in deeply for me.",
]
PATIENT = [
    "No, not really, it's been much the same, um, maybe a little better in the mornings.",
    "I've been taking {drug} {dose} mg {freq} like you said.",
    "Yes, the {side} {body} still hurts when I get up from a chair.",
    "I don't have any fever and no cough either, just the tiredness.",
    "Okay, so should I keep going with the {drug} or stop it?",
    "Well, you know, my daughter thinks I should rest more, but I can't really.",
]
BODY = ["knee", "hip", "shoulder", "ankle", "wrist", "chest", "flank", "ear", "eye", "foot"]
FREQ = ["once a day", "twice a day", "three times a day", "every eight hours", "at night"]
FILLERS = ["um", "uh", "you know"]


def sentence(rng: random.Random, pool: list[str]) -> str:
    return rng.choice(pool).format(drug=rng.choice(DRUGS), dose=rng.choice([5, 10, 20, 40, 250, 500]),
                                   freq=rng.choice(FREQ), side=rng.choice(["left", "right"]), body=rng.choice(BODY))


def heard(rng: random.Random, text: str) -> str:
    """What an ASR system of about 8% WER makes of it, with the errors that matter."""
    out = []
    for word in text.split():
        r = rng.random()
        bare = word.strip(",.?").lower()
        if bare in LOOKALIKE and r < 0.05:
            out.append(word.replace(bare, LOOKALIKE[bare]))
        elif bare in ("left", "right") and r < 0.03:
            out.append("right" if bare == "left" else "left")
        elif (bare in ("no", "not", "don't") and r < 0.05) or r < 0.03:
            continue
        elif r < 0.06:
            out.append(rng.choice(["the", "and", "a", "to", "it"]))
        elif r < 0.07:
            out.extend([word, rng.choice(FILLERS)])
        else:
            out.append(word)
    return " ".join(out)


def write_corpus(work: Path, files: int, words: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    total = 0
    with (work / "items.jsonl").open("w", encoding="utf-8") as items, \
            (work / "outputs.csv").open("w", encoding="utf-8", newline="") as outputs:
        writer = csv.writer(outputs)
        writer.writerow(["id", "output"])
        for i in range(files):
            turns, count = [], 0
            while count < words:
                doctor = rng.random() < 0.55
                text = sentence(rng, DOCTOR if doctor else PATIENT)
                turns.append(("Doctor: " if doctor else "Patient: ") + text)
                count += len(text.split()) + 1
            reference = "\n".join(turns)  # line breaks inside the CSV field, as exports have them
            total += count
            items.write(json.dumps({"id": f"c{i:05d}", "text": reference}) + "\n")
            writer.writerow([f"c{i:05d}", heard(rng, reference)])
    (work / "task.yaml").write_text(
        "name: consultations\nkind: transcription\nlanguage: en\ndata_class: public\n"
        "dataset: {path: items.jsonl, fields: {reference: text}}\n"
        "scorers: [wer, cer, drug_names, doses, critical_terms]\n", encoding="utf-8")
    (work / "replay.yaml").write_text("name: asr\nkind: replay\nsettings: {path: outputs.csv}\n", encoding="utf-8")
    (work / "suite.yaml").write_text("name: scale\ntasks: [task.yaml]\nadapters: [replay.yaml]\n", encoding="utf-8")
    return total


def _tree(pid: int) -> list[int]:
    """The process and its descendants (the scoring workers)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def _memory(pid: int) -> float:
    """Proportional set size of the process tree in MB: shared pages (the lexicon the forked
    workers inherit) counted once, not once per process as RSS sums would."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run(work: Path, out: str = "run") -> tuple[float, float, float]:
    """Wall seconds of the whole `harness run` process, the peak memory of its process tree
    (PSS, sampled every 0.1 s) and the largest single process's peak RSS (from the kernel).
    The sampling takes CPU from the run (about 4% on 2 cores): `timed` gives the time."""
    cmd = [sys.executable, "-m", "harness", "run", str(work / "suite.yaml"), "--quiet", "--out", str(work / out)]
    env = {**os.environ, "HARNESS_CACHE_DIR": str(work / f"cache-{out}")}
    peak = [0.0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def sample() -> None:
        while proc.returncode is None:
            peak[0] = max(peak[0], _memory(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"harness run exited {proc.returncode}: "
                           f"{proc.stderr.read().decode()[-1500:]}")  # type: ignore[union-attr]
    return elapsed, peak[0], usage.ru_maxrss / 1024


def timed(work: Path, out: str = "timed") -> float:
    """Wall seconds of the whole `harness run` process, with nothing else measuring it."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", "run", str(work / "suite.yaml"), "--quiet", "--out",
                    str(work / out)], check=True, capture_output=True,
                   env={**os.environ, "HARNESS_CACHE_DIR": str(work / f"cache-{out}")})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2310)
    parser.add_argument("--words-per-file", type=int, default=1515)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for files in (args.files // 4, args.files):
            work = Path(tmp) / f"n{files}"
            work.mkdir()
            words = write_corpus(work, files, args.words_per_file)
            seconds = timed(work)
            _, rss, largest = run(work)
            results[files] = (seconds, rss)
            workers = json.loads((work / "run" / "manifest.json").read_text()).get("scoring_workers", 0)
            print(f"{files:,} consultations, {words / 1e6:.2f} M reference words, 5 scorers, {workers} scoring "
                  f"workers: {seconds:.1f} s ({words / seconds:,.0f} words/s), peak memory {rss:.0f} MB "
                  f"(PSS of the process tree; largest process RSS {largest:.0f} MB)")
        (small_s, small_rss), (big_s, big_rss) = results[args.files // 4], results[args.files]
        print(f"  whole process {big_s:.1f} s (target < 30 s: {verdict(big_s < 30, 'consultations time')}); "
              f"peak memory {big_rss:.0f} MB (target < 500 MB: {verdict(big_rss < 500, 'consultations memory')})")
        print(f"  4x the files took {big_s / small_s:.2f}x the time (the fixed start-up is amortized)")
        print(f"  memory at 4x the files: {big_rss / small_rss:.2f}x (flat: <= 1.25x: "
              f"{verdict(big_rss / small_rss <= 1.25, 'consultations memory flat')})")


if __name__ == "__main__":
    main()
