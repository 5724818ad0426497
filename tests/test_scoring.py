"""WER/CER against jiwer, the EN/FR normalizer, answer extraction."""

from __future__ import annotations

import random

import jiwer
import pytest

from harness.config import NormalizerSpec, TaskConfig
from harness.scoring.asr import CER, WER, edit_counts
from harness.scoring.normalize import normalizer
from harness.scoring.qa import ExactMatch
from harness.types import Item

VOCAB = ["the", "patient", "denies", "chest", "pain", "give", "5", "mg", "ceftriaxone", "cefuroxime",
         "left", "right", "not", "once", "daily"]


def test_edit_counts_match_jiwer_on_random_pairs() -> None:
    rng = random.Random(3)
    for _ in range(500):
        ref = " ".join(rng.choices(VOCAB, k=rng.randint(1, 15)))
        hyp = " ".join(rng.choices(VOCAB, k=rng.randint(0, 15)))
        if not hyp:
            continue
        out = jiwer.process_words(ref, hyp)
        sub, dele, ins, hits = edit_counts(ref.split(), hyp.split())
        assert (sub + dele + ins) == (out.substitutions + out.deletions + out.insertions)
        assert (sub, dele, ins, hits) == (out.substitutions, out.deletions, out.insertions, out.hits)
        char = jiwer.process_characters(ref, hyp)
        s, d, i, _ = edit_counts(ref, hyp)
        assert s + d + i == char.substitutions + char.deletions + char.insertions


def _task(language: str = "en", **kw) -> TaskConfig:
    return TaskConfig.model_validate({"name": "t", "kind": "transcription", "language": language,
                                      "data_class": "public", "dataset": {"path": "x"}, **kw})


def test_wer_scorer_values() -> None:
    score = WER(_task()).score_text(Item("1", {}, reference="Give five milligrams of ceftriaxone."),
                               "give 5 mg of cefuroxime")
    assert score.values["wer_errors"] == 1 and score.values["wer_ref"] == 5 and score.values["wer"] == 0.2
    assert score.values["wer_sub"] == 1
    assert CER(_task()).score_text(Item("1", {}, reference="abc"), "abd").values["cer"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(("language", "a", "b"), [
    ("en", "Give five hundred milligrams IV.", "give 500 mg intravenously"),
    ("en", "Digoxin sixty two point five micrograms", "digoxin 62.5 mcg"),
    ("en", "Enoxaparin 1 mg/kg", "enoxaparin one milligram per kilogram"),
    ("en", "1,000 units", "one thousand units"),
    ("en", "The patient’s LEFT knee!", "the patient's left knee"),
    ("fr", "Paracétamol un gramme toutes les six heures", "paracétamol 1 g toutes les 6 heures"),
    ("fr", "Céfuroxime 1,5 g en intraveineuse", "céfuroxime 1.5 grammes en IV"),
    ("fr", "deux cent cinquante milligrammes par kilo", "250 mg/kg"),
    ("fr", "10 unités internationales, 2 pour cent", "dix UI, 2 %"),
    ("fr", "L’aspirine n’est pas prescrite", "l'aspirine n'est pas prescrite"),
    # thousands as French and SI typography group them: a space, no-break or narrow
    ("fr", "Héparine 10 000 UI", "héparine dix mille UI"),
    ("fr", "Cholécalciférol 200\u202f000 UI", "cholécalciférol 200000 UI"),
    ("fr", "1\u00a0500\u00a0000 UI", "un million cinq cent mille UI"),
    ("en", "heparin 10 000 units", "heparin ten thousand units"),
])
def test_normalizer_equates(language: str, a: str, b: str) -> None:
    n = normalizer(language)
    assert n(a) == n(b)


@pytest.mark.parametrize(("language", "a", "b"), [
    ("en", "5 mg", "5 µg"),
    ("en", "left knee", "right knee"),
    ("en", "2.5 mg", "25 mg"),
    ("fr", "prescrire", "proscrire"),
    ("fr", "0,5 mg", "5 mg"),
    ("en", "one 500 mg tablet", "1 500 mg tablet"),  # a count before a dose is not a thousands group
])
def test_normalizer_keeps_what_matters_apart(language: str, a: str, b: str) -> None:
    n = normalizer(language)
    assert n(a) != n(b)


def test_normalizer_options_can_be_turned_off() -> None:
    raw = normalizer("en", NormalizerSpec(lowercase=False, punctuation=False, numbers=False, units=False))
    assert raw("Give five mg.") == "Give five mg."


QA = TaskConfig.model_validate({"name": "q", "kind": "qa", "data_class": "public", "dataset": {"path": "x"},
                                "prompt": "p", "choices": ["A", "B", "C", "D"]})


@pytest.mark.parametrize(("output", "expected"), [
    ("The answer is B.", "B"), ("B) micrograms", "B"), ("Answer: c", "C"), ("**D**. Because...", "D"),
    ("(A)", "A"), ("I think it's A because B is wrong", None), ("Both could be right.", None),
    ("Réponse : B", "B"),
    ("b", "B"), (" (c) ", "C"), ("**d**.", "D"), ("a", "A"),  # a lone label in lower case (small models)
])
def test_choice_extraction(output: str, expected: str | None) -> None:
    assert ExactMatch(QA).extract(output) == expected


def test_exact_match_counts_unextractable_as_wrong() -> None:
    scorer = ExactMatch(QA)
    assert scorer.score_text(Item("1", {}, reference="B"), "The answer is B").values == {
        "correct": 1, "unextractable": 0}
    assert scorer.score_text(Item("1", {}, reference="B"), "no idea").values == {"correct": 0, "unextractable": 1}


def test_a_list_of_acceptable_answers() -> None:
    """A reference list was compared as its text ("['paracetamol', 'acetaminophen']"): never equal."""
    scorer = ExactMatch(QA.model_copy(update={"choices": None}))
    item = Item("1", {}, reference=["paracetamol", "acetaminophen"])
    assert scorer.score_text(item, "Acetaminophen").values["correct"] == 1
    assert scorer.score_text(item, "ibuprofen").values["correct"] == 0
    assert scorer.score_text(Item("2", {}, reference=2.5), "2.5").values["correct"] == 1


def test_answer_pattern() -> None:
    task = QA.model_copy(update={"answer_pattern": r"dose:\s*([\d.]+ ?mg)", "choices": None})
    scorer = ExactMatch(task)
    assert scorer.score_text(Item("1", {}, reference="2.5 mg"), "Dose: 2.5mg twice").values["correct"] == 1
