"""Issue 5: clinical extraction on the annotated set, and the medical error analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, write_jsonl, write_yaml

from harness.clinical.analysis import analyse, classify_dose, lasa, phonetic_key
from harness.clinical.evaluate import evaluate
from harness.clinical.extract import extract
from harness.clinical.lexicon import load_lexicon

LEX = load_lexicon()


def test_annotated_set_precision_and_recall_at_least_095() -> None:
    results = evaluate()
    mentions = 0
    for lang, kinds in results.items():
        for kind, c in kinds.items():
            print(f"{lang} {kind}: P {c.precision:.3f} R {c.recall:.3f} (tp {c.tp}, fp {c.fp}, fn {c.fn})")
            assert c.precision >= 0.95 and c.recall >= 0.95, (lang, kind, c.errors)
            mentions += c.tp + c.fn
    assert mentions >= 200


@pytest.mark.parametrize(("text", "lang", "expected"), [
    ("deux cent cinquante milligrammes", "fr", (250.0, None, "mg", ())),
    ("zero point five milligrams", "en", (0.5, None, "mg", ())),
    ("1,5 g", "fr", (1.5, None, "g", ())),
    ("1,500 mg", "en", (1500.0, None, "mg", ())),
    ("5 000 UI", "fr", (5000.0, None, "units", ())),
    ("50 mg/kg/j", "fr", (50.0, None, "mg", ("kg", "day"))),
    ("5 microgrammes par kilo et par minute", "fr", (5.0, None, "µg", ("kg", "min"))),
    ("2 to 3 drops", "en", (2.0, 3.0, "drops", ())),
    ("75 mcg", "en", (75.0, None, "µg", ())),
    ("10 international units", "en", (10.0, None, "units", ())),
])
def test_dose_forms(text: str, lang: str, expected: tuple) -> None:
    (dose,) = extract(text, lang, LEX).doses
    assert dose.key() == expected


def test_routes_frequencies_negation_laterality() -> None:
    e = extract("No aspirin; give morphine 2 mg IV every 4 hours to the left arm", "en", LEX)
    assert e.routes == [(6, "iv")] and "every 4 hours" in e.frequencies
    assert [e.words[i] for i in e.negations] == ["no"] and e.laterality == [(12, "left")]
    f = extract("Pas d'aspirine, paracétamol per os deux fois par jour, genou droit", "fr", LEX)
    assert (5, "oral") in f.routes and "2 fois par jour" in f.frequencies and f.laterality[0][1] == "droit"


def _kinds(ref: str, out: str, lang: str = "en") -> list[tuple[str, str]]:
    return [(f.kind, f.severity) for f in analyse(ref, out, lang, LEX).findings]


@pytest.mark.parametrize(("ref", "out", "lang", "kind"), [
    ("Levothyroxine 75 micrograms daily", "levothyroxine 75 mg daily", "en", ("dose_unit_magnitude", "critical")),
    ("Morphine 2.5 mg", "morphine 25 mg", "en", ("dose_decimal_slip", "critical")),
    ("Enoxaparin 1 mg/kg", "enoxaparin 1 mg", "en", ("dose_per_unit", "critical")),
    ("Furosemide 40 mg", "furosemide 60 mg", "en", ("dose_value", "major")),
    ("Give 1 gram now", "give 1 now", "en", ("dose_unit_dropped", "major")),
    ("Give ondansetron 4 mg", "give ondansetron", "en", ("dose_dropped", "major")),
    ("Give ondansetron", "give ondansetron 4 mg", "en", ("dose_invented", "major")),
    ("The patient denies chest pain", "the patient has chest pain", "en", ("negation_lost", "critical")),
    ("Chest pain at rest", "no chest pain at rest", "en", ("negation_added", "critical")),
    ("Left knee effusion", "right knee effusion", "en", ("laterality_flip", "critical")),
    ("Il faut proscrire l'aspirine", "il faut prescrire l'aspirine", "fr", ("near_homophone_swap", "critical")),
    ("Start ceftriaxone", "start cefuroxime", "en", ("drug_substitution", "critical")),
    ("Start heparin", "start", "en", ("drug_lost", "critical")),
])
def test_error_classes(ref: str, out: str, lang: str, kind: tuple[str, str]) -> None:
    assert kind in _kinds(ref, out, lang)


def test_equivalent_doses_and_identical_text_are_not_errors() -> None:
    assert _kinds("Amoxicillin 1 g", "amoxicillin 1000 mg") == []
    assert _kinds("Paracétamol 500 mg", "Doliprane cinq cents milligrammes", "fr") == []
    a = analyse("Give hydroxyzine 25 mg at night", "give hydroxyzine 25 mg at night", "en", LEX)
    assert (a.drug_matched, a.dose_correct, a.severity_score) == (1, 1, 0.0)


def test_look_alike_sound_alike() -> None:
    assert "known confusable" in (lasa(LEX, "hydroxyzine", "hydralazine") or "")
    assert "look-alike" in (lasa(LEX, "lorazepam", "clonazepam") or "")  # not on the list
    assert "Tall Man" in (lasa(LEX, "hydrocodone", "oxycodone") or "")
    assert phonetic_key("ceftriaxone") == phonetic_key("sephtriaxone")
    assert lasa(LEX, "aspirin", "furosemide") is None
    (f,) = [f for f in analyse("Start enoxaparin", "start they knock supper in", "en", LEX).findings]
    assert f.kind == "drug_lost" and "sound-alike" in f.detail


def test_classify_dose_magnitudes() -> None:
    e = extract("1 g 1000 mg 100 mg 1 mg", "en", LEX)
    g1, mg1000, mg100, mg1 = e.doses
    assert classify_dose(g1, mg1000) is None
    assert classify_dose(g1, mg100) == "decimal_slip"
    assert classify_dose(g1, mg1) == "unit_magnitude"


def test_user_formulary_and_extra_terms_through_a_run(tmp_path: Path) -> None:
    (tmp_path / "formulary.csv").write_text("variant,canonical\nhospicef,ceftriaxone\n", encoding="utf-8")
    write_jsonl(tmp_path / "items.jsonl", [
        {"id": "1", "audio": "a.ogg", "text": "Start Hospicef 1 g IV, ileum resection"},
        {"id": "2", "audio": "a.ogg", "text": "Start cefuroxime 750 mg"}])
    (tmp_path / "a.ogg").write_bytes(b"")
    (tmp_path / "out.csv").write_text("id,text\n1,Start cefuroxime 1 g IV ilium resection\n2,Start cefuroxime 750 mg\n",
                                      encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {
        "name": "d", "kind": "transcription", "data_class": "public", "formulary": "formulary.csv",
        "critical_terms": [["ileum", "ilium"]], "scorers": ["wer", "drug_names", "doses", "critical_terms"],
        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay",
                                          "settings": {"path": "out.csv", "output_column": "text"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    rows = {r["metric"]: r for r in card["rows"]}
    assert rows["drug_recall"]["value"] == 0.5 and rows["dose_accuracy"]["value"] == 1.0
    assert rows["critical_term_error_rate"]["value"] == 1.0  # ileum → ilium, the one critical term
    (m,) = [s["data"] for s in card["sections"] if s["scorer"] == "drug_names"]
    assert m["top_drug_errors"][0]["reference"] == "ceftriaxone" and m["top_drug_errors"][0]["output"] == "cefuroxime"
    assert "ceftriaxone | cefuroxime" in (tmp_path / "run" / "scorecard.md").read_text()


def test_numeric_fidelity_on_a_generation_task(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [
        {"id": "1", "source": "Discharge on amoxicillin 500 mg three times daily for 7 days."},
        {"id": "2", "source": "Warfarin 5 mg; INR 2.4 today."}])
    (tmp_path / "out.csv").write_text(
        'id,summary\n1,"Amoxicillin 500 mg, three times a day, 7 days."\n'
        '2,"Warfarin 50 mg; INR 2.4; review in 3 days."\n',
        encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {"name": "g", "kind": "generation", "data_class": "public",
                                        "prompt": "Summarise: {{ source }}", "dataset": {"path": "items.jsonl"}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay",
                                          "settings": {"path": "out.csv", "output_column": "summary"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    # item 1: 500 mg, 3 (times) and 7 supported; item 2: "50 mg" and "3" unsupported, 2.4 supported
    assert rows["unsupported_number_rate"]["value"] == pytest.approx(2 / 6)
    assert rows["outputs_with_unsupported_numbers"]["value"] == 0.5
    scores = [json.loads(line) for line in (tmp_path / "run" / "scores.jsonl").read_text().splitlines()]
    unsupported = {s["item_id"]: s["details"]["numeric_fidelity"]["unsupported"] for s in scores}
    assert unsupported["2"] == ["50 mg", "3"]


def test_a_lost_mention_is_attributed_by_position_not_as_a_multiset() -> None:
    """Issue 10 (5): the second 'ibuprofen' was heard; the first was lost, heard as 'it'."""
    from harness.clinical.analysis import analyse
    from harness.clinical.lexicon import load_lexicon

    a = analyse("Take ibuprofen 400 mg now. Later take ibuprofen again at night.",
                "Take it 400 mg now. Later take ibuprofen again at night.", "en", load_lexicon(None), ())
    assert a.drug_matched == 1
    assert [(f.kind, f.reference, f.output) for f in a.findings] == [("drug_lost", "ibuprofen", "it")]
    reordered = analyse("Give amoxicillin then paracetamol.", "Give paracetamol then amoxicillin.", "en",
                        load_lexicon(None), ())
    assert reordered.drug_matched == 2 and not reordered.findings  # a reordered list loses nothing


def test_substitution_rate_counts_only_drugs_replaced_by_another_drug() -> None:
    """Issue 10 (6): it used to equal 1 − recall."""
    from harness.config import TaskConfig
    from harness.scoring.medical import DrugNames
    from harness.types import Item

    task = TaskConfig.model_validate({"name": "t", "kind": "transcription", "data_class": "public",
                                      "dataset": {"path": "x.jsonl"}})
    values = DrugNames(task).score_text(Item("1", {}, reference="Give ceftriaxone and amoxicillin."),
                                        "Give cefuroxime and a mock sillin.").values
    assert values["drug_ref"] == 2 and values["drug_matched"] == 0
    assert values["drug_substituted"] == 1  # ceftriaxone → cefuroxime; amoxicillin was lost, not substituted


@pytest.mark.parametrize(("text", "lang", "expected"), [
    ("Take one 500 mg paracetamol tablet every six hours.", "en", [(500.0, "mg")]),
    ("Take two 250 mg capsules three times a day.", "en", [(250.0, "mg")]),
    ("Prenez deux comprimés de 500 mg.", "fr", [(500.0, "mg")]),
    ("Give 1,000 units of heparin.", "en", [(1000.0, "units")]),
    ("5 000 UI d'héparine.", "fr", [(5000.0, "units")]),
    ("cinq mille unités", "fr", [(5000.0, "units")]),
])
def test_a_count_in_words_before_a_dose_is_not_a_thousands_group(text: str, lang: str,
                                                                  expected: list[tuple[float, str]]) -> None:
    """Found by the translation example: "one 500 mg tablet" read as 1500 mg, because "one"
    became "1" and "1 500" then looked like a thousands group."""
    assert [(d.value, d.unit) for d in extract(text, lang, load_lexicon(None)).doses] == expected


def _schedules_by_counting(folded: str, lang: str) -> list:
    """The schedule finder as first written (quadratic: overlaps checked pairwise, each token
    index counted from the start of the text): the reference for the linear one."""
    from harness.clinical.extract import SCHEDULES, TOKEN, Schedule

    taken: list[tuple[int, int]] = []
    out: list[tuple[int, float, str]] = []
    for pattern, rate in SCHEDULES[lang]:
        for m in pattern.finditer(folded):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            taken.append(m.span())
            out.append((m.start(), rate(m), m.group()))
    out.sort()
    return [Schedule(len(TOKEN.findall(folded, 0, start)), round(per_day, 6), text) for start, per_day, text in out]


def test_schedules_are_found_as_by_the_quadratic_reference() -> None:
    """Every text of the bundled tasks and examples, and the edges of the token lookup (a
    range "3-4 fois", decimals, hyphenated words, a schedule at the very start), in both
    languages: the same schedules at the same token indices."""
    from harness.clinical.extract import _schedules, tokenize

    texts: list[str] = [
        "3-4 fois par jour", "prendre 1-2 comprimés 3 fois par jour puis 2 fois par jour", "1.5 fois par jour",
        "deux-fois par jour", "x-2 fois par jour", "twice daily then 2-3 times a day, every 8 hours",
        "matin et soir, matin, midi et soir, tous les 2 jours, un jour sur deux", "bid tid qid 3x/day",
        "toutes les 6 h – 3–4 fois par jour", "", "fois par jour",
    ]
    for path in [*ROOT.glob("tasks/*/*.jsonl"), *ROOT.glob("examples/*/*.jsonl"), *ROOT.glob("examples/*/*/*.jsonl")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            texts.extend(v for v in json.loads(line).values() if isinstance(v, str) and len(v) > 20)
    assert len(texts) > 300
    for text in texts:
        for lang in ("en", "fr"):
            folded, _ = tokenize(text, lang)
            assert _schedules(folded, lang) == _schedules_by_counting(folded, lang), (lang, text[:200])


def test_a_formulary_is_checked_by_validate(tmp_path: Path) -> None:
    """A formulary was read only when the run built the scorer: French headers, a latin-1
    file or an empty cell crashed it (exit 3). Validation names the file and the line; a
    byte-order mark (Excel) is read."""
    write_jsonl(tmp_path / "items.jsonl", [{"id": "1", "audio": "a.ogg", "text": "Start Hospicef 1 g IV"}])
    (tmp_path / "a.ogg").write_bytes(b"")
    (tmp_path / "out.csv").write_text("id,text\n1,Start cefuroxime 1 g IV\n", encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {
        "name": "d", "kind": "transcription", "data_class": "public",
        "scorers": ["wer", {"name": "drug_names", "formulary": "formulary.csv"}],
        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay",
                                          "settings": {"path": "out.csv", "output_column": "text"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    for content, expected in ((b"nom,dci\nhospicef,ceftriaxone\n", "formulary.csv:1: header lacks variant"),
                              ("variant,canonical\nhospicéf,ceftriaxone\n".encode("latin-1"), "not valid UTF-8"),
                              (b"variant,canonical\nhospicef,\n", "formulary.csv:2: empty variant or canonical")):
        (tmp_path / "formulary.csv").write_bytes(content)
        res = run_cli("validate", str(suite))
        assert res.returncode == 2 and expected in res.stderr and "Traceback" not in res.stderr, res.stderr
    (tmp_path / "formulary.csv").write_bytes(b"\xef\xbb\xbfvariant,canonical\r\nhospicef,ceftriaxone\r\n")
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    assert rows["drug_recall"]["value"] == 0.0  # Hospicef is ceftriaxone, heard as cefuroxime
