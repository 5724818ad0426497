"""Issue 10, point 3: WER comparable with the field. The `whisper` preset is OpenAI Whisper's
English normalizer (what published ASR leaderboards use), checked equal to it on thousands of
random strings; fillers, equivalences, contractions and spelling adjust either preset, and the
scorecard states the normalization."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import run_cli, write_jsonl, write_yaml
from whisper_normalizer.english import EnglishTextNormalizer

from harness.config import NormalizerSpec
from harness.scoring.normalize import normalizer

VOCAB = ("it's", "I'm", "won't", "can't", "we'd", "they've", "y'all", "colour", "behaviour", "anaemia",
         "oedema", "paediatric", "haemoglobin", "um", "uh", "hmm", "mm", "mhm", "okay", "OK", "alright",
         "all", "right", "twenty", "five", "hundred", "1,000", "2.5", "5mg", "10%", "$20", "Dr.", "Mr.",
         "St.", "the", "patient", "denies", "chest", "pain", "left", "knee", "—", "...", "(", ")", "\"", "!",
         "?", ",", "first", "second", "3rd", "twice", "a", "day", "metformin", "500", "milligrams", "point",
         "nine", "o'clock", "can", "not", "gonna", "wanna", "Ms.", "vs", "etc.", "x-ray", "follow-up")


def _random_strings(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(1, 18))) for _ in range(n)]


def test_whisper_preset_equals_openai_whispers_english_normalizer() -> None:
    ours = normalizer("en", NormalizerSpec(preset="whisper"))
    reference = EnglishTextNormalizer()
    strings = _random_strings(3000)
    different = [s for s in strings if ours(s).split() != reference(s).split()]
    assert not different, different[:5]


def test_fillers_equivalences_contractions_and_spelling() -> None:
    whisper = normalizer("en", NormalizerSpec.model_validate(
        {"preset": "whisper", "equivalences": {"ok": "okay", "all right": "alright"}, "fillers": ["like"]}))
    assert whisper("Um, OK... all right, like, the colour's fine") == whisper("okay alright the color is fine")
    clinical = normalizer("en", NormalizerSpec())
    assert clinical("It's 5 milligrams") == "it s 5 mg"  # the clinical default splits, as before
    expand = normalizer("en", NormalizerSpec(contractions="expand"))
    assert expand("It's 5 milligrams") == expand("it is five mg") == "it is 5 mg"
    assert normalizer("en", NormalizerSpec(contractions="keep"))("It's here") == "its here"
    assert normalizer("en", NormalizerSpec(spelling="american"))("Colour of the behaviour") == "color of the behavior"
    assert normalizer("en", NormalizerSpec(preset="whisper", spelling="british"))("the color") == "the colour"
    french = normalizer("fr", NormalizerSpec(preset="whisper"))
    assert french("Euh, bah, le patient a mal, hein ?") == "le patient a mal"


def test_whisper_preset_refuses_to_keep_contractions(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "text": "hello"}])
    (tmp_path / "out.csv").write_text("id,output\na,hello\n", encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "normalizer": {"preset": "whisper", "contractions": "keep"},
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "normalizer" in res.stderr and "expands contractions" in res.stderr


@pytest.mark.parametrize(("normalization", "expected"), [
    ({}, 4 / 10),  # it s / is, ok / okay, colour / color, um deleted
    ({"preset": "whisper", "equivalences": {"ok": "okay"}}, 0.0),
])
def test_both_normalizations_on_one_conversation(tmp_path: Path, normalization: dict, expected: float) -> None:
    """The same transcript scored under the clinical default and under the published-results
    preset: fillers, contractions and spellings cost nothing under the latter."""
    write_jsonl(tmp_path / "items.jsonl", [{"id": "c1", "text": "It's OK, the colour is fine. Um, any pain?"}])
    (tmp_path / "out.csv").write_text('id,output\nc1,"it is okay the color is fine any pain"\n', encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "normalizer": normalization, "scorers": ["wer"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    wer = next(r for r in card["rows"] if r["metric"] == "wer")
    assert wer["value"] == pytest.approx(expected)
    stated = card["tasks"]["d"]["normalization"]
    assert stated.startswith("preset whisper" if normalization else "preset clinical")
    assert f"normalization: {stated}" in (tmp_path / "run" / "scorecard.md").read_text()
