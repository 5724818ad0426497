"""Issue 10, point 7: timed speaker turns read from the files corpora ship (TextGrid, STM,
CTM + RTTM, JSON), WER per reference speaker, and cpWER equal to meeteval's."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, write_jsonl, write_yaml
from rapidfuzz.distance import Levenshtein

from harness.config import TaskConfig
from harness.scoring.asr import edit_counts
from harness.scoring.speakers import SpeakerSettings, SpeakerWER, attributed_errors, cp_errors
from harness.segments import SegmentError, from_dicts, parse_value, read_file
from harness.store import iter_jsonl
from harness.types import Item, Response, Sample

TEXTGRID = '''File type = "ooTextFile short"
"TextGrid"

0
6.5
<exists>
2
"IntervalTier"
"Doctor"
0
6.5
3
0
2.0
"Any chest pain?"
2.0
4.0
""
4.0
6.5
"Take aspirin daily."
"IntervalTier"
"Patient"
0
6.5
2
0
2.5
""
2.5
4.0
"No, none at all."
'''


def test_textgrid_tiers_are_speakers_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "c1.TextGrid"
    path.write_text(TEXTGRID, encoding="utf-8")
    segments = read_file(path)
    assert [(s.speaker, s.start, s.text) for s in segments] == [
        ("Doctor", 0.0, "Any chest pain?"), ("Patient", 2.5, "No, none at all."),
        ("Doctor", 4.0, "Take aspirin daily.")]


def test_stm_ctm_rttm_and_json(tmp_path: Path) -> None:
    stm = tmp_path / "ref.stm"
    stm.write_text(";; comment line\n"
                   "c1 1 doctor 0.00 2.10 <o,f0,male> any chest pain\n"
                   "c1 1 patient 2.10 3.00 no none\n"
                   "c1 1 patient 3.00 3.50 IGNORE_TIME_SEGMENT_IN_SCORING\n"
                   "c2 A doctor 0.0 1.0 hello\n", encoding="utf-8")
    assert [(s.speaker, s.text) for s in read_file(stm, "c1")] == [("doctor", "any chest pain"), ("patient", "no none")]
    assert read_file(stm, "c2")[0].text == "hello"
    with pytest.raises(SegmentError, match=r"recording 'c3' not in ref\.stm"):
        read_file(stm, "c3")
    bad = tmp_path / "bad.stm"
    bad.write_text("c1 1 doctor 0.0 1.0 fine\nc1 1 doctor zero 1.0 broken\n", encoding="utf-8")
    with pytest.raises(SegmentError) as exc:
        read_file(bad, "c1")
    assert exc.value.line == 2

    ctm, rttm = tmp_path / "hyp.ctm", tmp_path / "hyp.rttm"
    ctm.write_text("c1 1 0.10 0.3 any 0.9\nc1 1 0.50 0.3 chest 0.9\nc1 1 0.90 0.3 pain 0.9\n"
                   "c1 1 2.20 0.3 no 0.9\nc1 1 2.60 0.3 none 0.9\n", encoding="utf-8")
    rttm.write_text("SPEAKER c1 1 0.00 2.00 <NA> <NA> spk_1 <NA> <NA>\n"
                    "SPEAKER c1 1 2.05 1.00 <NA> <NA> spk_0 <NA> <NA>\n", encoding="utf-8")
    assert [(s.speaker, s.text) for s in read_file(ctm, "c1", rttm)] == [("spk_1", "any chest pain"),
                                                                        ("spk_0", "no none")]
    assert [(s.speaker, s.text) for s in read_file(ctm, "c1")][:2] == [(None, "any"), (None, "chest")]  # timed words

    whisper_json = tmp_path / "out.json"
    whisper_json.write_text(json.dumps({"text": "x", "segments": [
        {"id": 0, "start": 1.0, "end": 2.0, "text": " second", "speaker": "B"},
        {"id": 1, "start": 0.0, "end": 1.0, "text": " first", "speaker": "A"}]}), encoding="utf-8")
    assert [s.text.strip() for s in read_file(whisper_json)] == ["first", "second"]

    assert [s.speaker for s in parse_value('[{"text": "a", "speaker": "x"}]', tmp_path, "c1")] == ["x"]
    assert parse_value("ref.stm#c2", tmp_path, "ignored")[0].text == "hello"
    assert parse_value("ref.stm", tmp_path, "c1")[0].text == "any chest pain"  # the item id picks the recording
    with pytest.raises(SegmentError, match="outside"):
        parse_value("../x.stm", tmp_path, "c1", allows=lambda p: p.is_relative_to(tmp_path))
    with pytest.raises(SegmentError, match="'text' string"):
        from_dicts([{"speaker": "a"}])


def test_cpwer_equals_meeteval() -> None:
    """60 random speaker sets whose cpWER meeteval 0.4.3 computed (scripts/make_cpwer_fixture.py)."""
    cases = json.loads((ROOT / "tests" / "data" / "cpwer_meeteval.json").read_text())["cases"]
    assert len(cases) == 60
    for case in cases:
        ref = {k: v.split() for k, v in case["reference"].items()}
        hyp = {k: v.split() for k, v in case["hypothesis"].items()}
        errors, mapping = cp_errors(ref, hyp)
        assert errors == case["errors"], case
        assert sum(map(len, ref.values())) == case["length"]
        # an optimal matching may differ when two are equally good; its cost may not
        theirs = {r: h for r, h in case["assignment"] if r is not None}
        assert sum(Levenshtein.distance(ref[r], hyp[h]) if h else len(ref[r]) for r, h in theirs.items()) \
            + sum(len(hyp[h]) for h in hyp if h not in theirs.values()) == errors
        assert set(mapping) == set(ref)


def test_cpwer_is_the_least_over_every_permutation() -> None:
    rng = random.Random(3)
    vocab = ["a", "b", "c", "d", "e", "f"]
    for _ in range(200):
        ref = {f"r{i}": [rng.choice(vocab) for _ in range(rng.randint(0, 6))] for i in range(rng.randint(1, 3))}
        hyp = {f"h{i}": [rng.choice(vocab) for _ in range(rng.randint(0, 6))] for i in range(rng.randint(1, 3))}
        names_r, names_h = list(ref) + [None] * len(hyp), list(hyp) + [None] * len(ref)
        best = min(
            sum(Levenshtein.distance(ref[r] if r else [], hyp[h] if h else [])
                for r, h in zip(names_r, perm, strict=True))
            for perm in itertools.permutations(names_h, len(names_r)))
        assert cp_errors(ref, hyp)[0] == best


def test_speaker_errors_add_up_to_the_wer_errors() -> None:
    rng = random.Random(11)
    vocab = ["no", "pain", "left", "right", "knee", "aspirin", "daily", "weekly"]
    for _ in range(300):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 15))]
        speakers = [rng.choice("DP") for _ in ref]
        hyp = [w for w in ref if rng.random() > 0.2] + [rng.choice(vocab) for _ in range(rng.randint(0, 3))]
        rng.shuffle(hyp) if rng.random() < 0.2 else None
        per = attributed_errors(ref, speakers, hyp)
        sub, dele, ins, _ = edit_counts(ref, hyp)
        assert sum(e for e, _ in per.values()) == sub + dele + ins
        assert sum(n for _, n in per.values()) == len(ref)


def test_doctor_only_errors_are_charged_to_the_doctor() -> None:
    task = TaskConfig.model_validate({"name": "t", "kind": "transcription", "language": "en", "data_class": "public",
                                      "dataset": {"path": "x.jsonl"}})
    scorer = SpeakerWER(task, SpeakerSettings(speakers=["doctor", "patient"]))
    item = Item("c1", {}, segments=from_dicts([
        {"speaker": "doctor", "start": 0, "text": "take aspirin daily"},
        {"speaker": "patient", "start": 2, "text": "no chest pain"}]))
    response = Response(output="take aspirin weekly no chest pain", segments=[
        {"speaker": "S1", "start": 0, "text": "take aspirin weekly no"},
        {"speaker": "S2", "start": 2, "text": "chest pain"}])
    score = asyncio.run(scorer.score(Sample(item, None, response)))
    assert score.values["wer_doctor"] == pytest.approx(1 / 3)
    assert score.values["wer_patient"] == 0
    # S1 said "no" though the patient did: one deletion for the patient, one insertion for S1's match
    assert score.values["cpwer_errors"] == 1 + 2
    assert score.details["mapping"] == {"doctor": "S1", "patient": "S2"}
    undiarized = asyncio.run(scorer.score(Sample(item, None, Response(output="take aspirin daily no chest pain"))))
    assert undiarized.values["cpwer"] is None and undiarized.values["wer_doctor"] == 0


def test_bundled_diarized_consultations(tmp_path: Path) -> None:
    """The example suite: TextGrid turns against a CTM + RTTM export, both normalizations."""
    res = run_cli("run", str(ROOT / "examples" / "consultation-speakers" / "suite.yaml"), "--quiet",
                  "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    rows = {(r["task"], r["metric"]): r for r in card["rows"]}
    for task in ("consultation-en-speakers", "consultation-en-speakers-whisper"):
        for metric in ("wer", "wer_item_mean", "wer_doctor", "wer_patient", "cpwer"):
            assert rows[(task, metric)]["n"] == 6, (task, metric)
        # the diarization slips (two patient answers given to the doctor's speaker) cost cpWER only
        assert rows[(task, "cpwer")]["value"] > rows[(task, "wer")]["value"]
    whisper, clinical = rows[("consultation-en-speakers-whisper", "wer")], rows[("consultation-en-speakers", "wer")]
    assert whisper["value"] < clinical["value"]
    for rec in iter_jsonl(tmp_path / "run" / "scores.jsonl"):
        details = rec["details"]["speaker_wer"]
        spoken = details["speakers"]
        assert sum(s["errors"] for s in spoken.values()) == rec["values"]["wer_errors"]
        assert details["mapping"] == {"doctor": "spk_B", "patient": "spk_A"}
    responses = list(iter_jsonl(tmp_path / "run" / "responses.jsonl"))
    assert {s["speaker"] for r in responses for s in r["segments"]} == {"spk_A", "spk_B"}
    md = (tmp_path / "run" / "scorecard.md").read_text()
    assert "Word errors by speaker" in md and "| doctor | spk_B | 6 |" in md


def test_segment_problems_are_exit_2(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.stm").write_text("c1 1 d 0 1 hello\n")
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    write_jsonl(suite_dir / "items.jsonl", [
        {"id": "c1", "turns": "../outside/x.stm"},
        {"id": "c2", "turns": [{"speaker": "d", "text": "fine"}]},
        {"id": "c3", "turns": "missing.TextGrid"}])
    write_yaml(suite_dir / "task.yaml", {
        "name": "t", "kind": "transcription", "language": "en", "data_class": "public",
        "dataset": {"path": "items.jsonl", "fields": {"segments": "turns"}},
        "scorers": ["wer", {"name": "speaker_wer", "speakers": ["d"]}]})
    (suite_dir / "out.csv").write_text("id,output\nc1,hello\nc2,fine\nc3,x\n")
    write_yaml(suite_dir / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    write_yaml(suite_dir / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("validate", str(suite_dir / "suite.yaml"))
    assert res.returncode == 2
    assert "items.jsonl:1: turns" in res.stderr and "outside the suite's folder tree" in res.stderr
    assert "items.jsonl:3: turns" in res.stderr and "segment file not found" in res.stderr

    write_yaml(suite_dir / "task.yaml", {
        "name": "t", "kind": "transcription", "language": "en", "data_class": "public",
        "dataset": {"path": "items.jsonl"},
        "scorers": [{"name": "speaker_wer", "speakers": ["doctor name"]}]})
    res = run_cli("validate", str(suite_dir / "suite.yaml"))
    assert res.returncode == 2 and "scorers[0].speakers" in res.stderr and "speaker label" in res.stderr


def test_bad_segments_beside_audio_an_adapter_reads_is_exit_2(tmp_path: Path) -> None:
    """The audio check used to build the item again and crash on its segments (exit 3)."""
    import shutil

    shutil.copy(ROOT / "tasks" / "dictation-en" / "audio" / "dict-001.ogg", tmp_path / "a.ogg")
    write_jsonl(tmp_path / "items.jsonl", [{"id": "c1", "audio": "a.ogg", "text": "hello",
                                            "turns": "missing.TextGrid"}])
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "transcription", "data_class": "public",
                                        "dataset": {"path": "items.jsonl",
                                                    "fields": {"reference": "text", "segments": "turns"}}})
    write_yaml(tmp_path / "asr.yaml", {"name": "asr", "kind": "faster-whisper", "settings": {"model": "tiny.en"}})
    write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["asr.yaml"]})
    res = run_cli("validate", str(tmp_path / "suite.yaml"))
    assert res.returncode == 2, res.stderr
    assert "items.jsonl:1: turns" in res.stderr and "segment file not found" in res.stderr


def test_segment_files_not_in_utf8_are_exit_2_with_their_line(tmp_path: Path) -> None:
    """An STM saved as latin-1 (accented speaker or words) crashed `harness validate` with a
    codec traceback (exit 3), as a reference in the dataset or as the export's segments_file."""
    (tmp_path / "ref.stm").write_bytes("c1 1 médecin 0 1 bonjour\nc1 1 patient 1 2 ça va\n".encode("latin-1"))
    (tmp_path / "hyp.stm").write_bytes("c1 1 A 0 1 bonjour\nc1 1 B 1 2 ça va\n".encode("latin-1"))
    write_jsonl(tmp_path / "items.jsonl", [{"id": "c1", "turns": "ref.stm"}])
    write_yaml(tmp_path / "task.yaml", {
        "name": "t", "kind": "transcription", "language": "fr", "data_class": "public",
        "dataset": {"path": "items.jsonl", "fields": {"segments": "turns"}}, "scorers": ["wer"]})
    (tmp_path / "out.csv").write_text("id,output\nc1,bonjour ça va\n", encoding="utf-8")
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay",
                                          "settings": {"path": "out.csv", "segments_file": "hyp.stm"}})
    write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("validate", str(tmp_path / "suite.yaml"))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "hyp.stm:2: cannot read segments_file: not valid UTF-8 (byte 0xe7)" in res.stderr, res.stderr
    (tmp_path / "hyp.stm").write_text("c1 1 A 0 1 bonjour\nc1 1 B 1 2 ça va\n", encoding="utf-8")
    res = run_cli("validate", str(tmp_path / "suite.yaml"))
    assert res.returncode == 2 and "items.jsonl:1: turns" in res.stderr and "not valid UTF-8" in res.stderr, res.stderr
