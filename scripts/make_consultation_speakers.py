"""Write the speaker-labelled files of the bundled consultations (tasks/consultation-en/).

Reference: one Praat TextGrid per consultation (a tier per speaker, times at 0.35 s a word),
from the "Doctor:" / "Patient:" turns of items.jsonl. Output: a diarized export of the
(fictitious) ASR transcripts in transcripts.csv as a CTM of timed words and an RTTM of
anonymous speaker turns (spk_A, spk_B), as diarization pipelines write them, with two
deliberate diarization slips (a short patient answer given to the doctor's speaker).
Run once; the files are committed: `python scripts/make_consultation_speakers.py`.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from praatio import textgrid
from praatio.data_classes.interval_tier import IntervalTier

HERE = Path(__file__).resolve().parent.parent / "tasks" / "consultation-en"
WORD_S = 0.35
TURN = re.compile(r"(Doctor|Patient):\s*")
ANONYMOUS = {"doctor": "spk_B", "patient": "spk_A"}  # diarization does not know who is who
SLIPS = {("cons-02", 9), ("cons-05", 3)}  # (item, turn index) given to the other speaker


def turns(text: str) -> list[tuple[str, str]]:
    parts = TURN.split(text)
    return [(parts[i].lower(), parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def timed(pieces: list[tuple[str, str]]) -> list[tuple[str, float, float, str]]:
    out, t = [], 0.0
    for speaker, words in pieces:
        n = len(words.split())
        out.append((speaker, round(t, 2), round(t + n * WORD_S, 2), words))
        t += n * WORD_S + 0.5
    return out


def main() -> None:
    (HERE / "turns").mkdir(exist_ok=True)
    items = [json.loads(line) for line in (HERE / "items.jsonl").read_text().splitlines() if line.strip()]
    for item in items:
        segments = timed(turns(item["text"]))
        end = segments[-1][2]
        grid = textgrid.Textgrid()
        for speaker in ("doctor", "patient"):
            entries = [(s, e, w) for sp, s, e, w in segments if sp == speaker]
            grid.addTier(IntervalTier(speaker, entries, 0, end))
        grid.save(str(HERE / "turns" / f"{item['id']}.TextGrid"), format="long_textgrid", includeBlankSpaces=True)

    ctm, rttm, rows = [], [], []
    with (HERE / "transcripts.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            segments = timed(turns(row["output"]))
            for index, (speaker, start, end, words) in enumerate(segments):
                label = ANONYMOUS[speaker]
                if (row["id"], index) in SLIPS:
                    label = ANONYMOUS["doctor" if speaker == "patient" else "patient"]
                rttm.append(f"SPEAKER {row['id']} 1 {start:.2f} {end - start:.2f} <NA> <NA> {label} <NA> <NA>")
                for k, word in enumerate(words.split()):
                    ctm.append(f"{row['id']} 1 {start + k * WORD_S:.2f} {WORD_S - 0.05:.2f} {word} 0.93")
            rows.append({"id": row["id"], "output": " ".join(w for *_, w in segments)})
    (HERE / "diarized.ctm").write_text(";; words of the diarized export, one per line\n" + "\n".join(ctm) + "\n")
    (HERE / "diarized.rttm").write_text("\n".join(rttm) + "\n")
    with (HERE / "diarized.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["id", "output"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
