"""Issue 11: the PII detector, rule by rule, its figures on the held-out half of the bundled
annotated notes, and `harness pii scan` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from harness.pii.detect import iban_ok, nhs_ok, nir_key_ok, scan
from harness.pii.evaluate import evaluate, parse


def kinds(text: str, *patterns: str) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in scan(text, patterns)]


def test_nir_structure_key_and_corsica() -> None:
    assert nir_key_ok("151027511542324") and not nir_key_ok("151027511542325")
    assert nir_key_ok("284052A00401764")  # 2A counts as 19 in the key
    assert kinds("NIR 1 51 02 75 115 423 24.") == [("NIR", "1 51 02 75 115 423 24")]
    assert kinds("NIR 1.51.02.75.115.423.24") == [("NIR", "1.51.02.75.115.423.24")]
    (e,) = scan("NIR 1 51 02 75 115 423 25")
    assert e.kind == "NIR" and "key" in e.detail  # a typo in the key is still somebody's number
    assert kinds("Lot 151027511542") == []  # 12 digits: not a NIR


def test_phones_emails_iban() -> None:
    assert kinds("Tél. 06 12 34 56 78, 01.45.67.89.10 ou +33 (0)6 45 67 89 01") == [
        ("PHONE", "06 12 34 56 78"), ("PHONE", "01.45.67.89.10"), ("PHONE", "+33 (0)6 45 67 89 01")]
    assert kinds("Call 07700 900123 or (212) 555-0147 or +44 20 7946 0321") == [
        ("PHONE", "07700 900123"), ("PHONE", "(212) 555-0147"), ("PHONE", "+44 20 7946 0321")]
    assert kinds("Cholécalciférol 100 000 UI, 0,5 mg/kg, Seretide 250/50 µg") == []  # phone-like doses
    assert kinds("écrire à claire.rousseau58@exemple.fr.") == [("EMAIL", "claire.rousseau58@exemple.fr")]
    assert iban_ok("FR76 3000 6000 0112 3456 7890 189") and not iban_ok("FR76 3000 6000 0112 3456 7890 188")
    assert kinds("IBAN GB82 WEST 1234 5698 7654 32") == [("IBAN", "GB82 WEST 1234 5698 7654 32")]
    assert kinds("IBAN GB82 WEST 1234 5698 7654 33") == []


def test_dates_birth_dates_ages() -> None:
    assert kinds("Vu le 12/03/2024 et le 2 février 2025, revu le lundi 12 mai 2025.") == [
        ("DATE", "12/03/2024"), ("DATE", "2 février 2025"), ("DATE", "lundi 12 mai 2025")]
    assert kinds("Seen on April 15, 2025 and 2025-01-17.") == [("DATE", "April 15, 2025"), ("DATE", "2025-01-17")]
    assert kinds("1/2 comprimé pendant 3/7 jours, tension 13/8.") == []  # dates inside doses
    assert kinds("née le 4 juillet 1958") == [("BIRTH_DATE", "née le 4 juillet 1958")]
    assert kinds("Date de naissance : 05/05/1928") == [("BIRTH_DATE", "Date de naissance : 05/05/1928")]
    assert kinds("DOB 04/07/1958") == [("BIRTH_DATE", "DOB 04/07/1958")]
    assert kinds("Patiente de 94 ans, son mari a 88 ans; a 96-year-old man; a 92 year old") == [
        ("AGE", "94 ans"), ("AGE", "96-year-old"), ("AGE", "92 year old")]


def test_addresses_hospital_ids_and_site_patterns() -> None:
    assert kinds("demeurant 12 rue des Lilas, 69003 Lyon.") == [
        ("ADDRESS", "12 rue des Lilas"), ("POSTCODE_CITY", "69003 Lyon")]
    assert kinds("lives at 12 Lilac Road, Leeds LS6 2AB.") == [
        ("ADDRESS", "12 Lilac Road"), ("POSTCODE_CITY", "Leeds LS6 2AB")]
    assert kinds("IPP 8004521337, épisode EP-2025-004417") == [
        ("HOSPITAL_ID", "8004521337"), ("HOSPITAL_ID", "EP-2025-004417")]
    assert nhs_ok("943 476 5919") and kinds("ref 943 476 5919") == [("HOSPITAL_ID", "943 476 5919")]
    assert kinds("ref 943 476 5918") == []  # 3-3-4 digits without the check and without the cue
    assert kinds("Bracelet HX-00123-Z") == []
    assert kinds("Bracelet HX-00123-Z", r"\bHX-\d{5}-[A-Z]\b") == [("HOSPITAL_ID", "HX-00123-Z")]


def test_names_with_titles_lists_and_context() -> None:
    assert kinds("adressé par le Dr Lefèvre et M. Jean-Pierre Morel") == [
        ("NAME", "Dr Lefèvre"), ("NAME", "M. Jean-Pierre Morel")]
    assert kinds("DUPONT Marie, hospitalisée") == [("NAME", "DUPONT Marie")]
    assert kinds("Contact : Sophie Dupont. Son fils Youssef viendra.") == [
        ("NAME", "Sophie Dupont"), ("NAME", "Youssef")]
    assert kinds("Friend: Ocean Blanchard.") == [("NAME", "Ocean Blanchard")]
    assert kinds("Nurse Camilla Lee reports a fall.") == [("NAME", "Camilla Lee")]  # the cue is not a name
    # names that are words or streets: only as names
    assert kinds("Rose de Noël posée sur la table. Pierre rénale expulsée.") == []
    assert kinds("45 boulevard Victor Hugo.") == [("ADDRESS", "45 boulevard Victor Hugo")]


def test_annotated_parser_keeps_offsets() -> None:
    text, gold = parse("Patient [NAME:Jean Morel], tél. [PHONE:06 12 34 56 78].")
    assert text == "Patient Jean Morel, tél. 06 12 34 56 78."
    assert [(g.kind, text[g.start:g.end]) for g in gold] == [("NAME", "Jean Morel"), ("PHONE", "06 12 34 56 78")]


@pytest.mark.parametrize("which", ["dev", "test"])
def test_figures_on_the_annotated_notes(which: str) -> None:
    s = evaluate(("fr", "en"), which)
    total = sum(s.tp.values()) + sum(s.fn.values())
    assert total >= 300, total
    assert s.recall() >= 0.97 and s.precision() >= 0.90, s.errors
    for kind in ("NIR", "EMAIL", "PHONE"):
        assert s.recall(kind) == 1.0, (kind, [e for e in s.errors if kind in e])


def test_pii_scan_cli(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Patient : M. Jean Morel, né le 4 juillet 1958.\nRien ici.\nTél. 06 12 34 56 78\n",
                     encoding="utf-8")
    res = run_cli("pii", "scan", str(notes))
    assert res.returncode == 1
    assert f"{notes}:1:11: NAME 'M. Jean Morel'" in res.stdout and f"{notes}:3:6: PHONE" in res.stdout
    assert "3 identifiers" in res.stderr
    res = run_cli("pii", "scan", str(notes), "--json", "--mask")
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["type"] for r in rows] == ["NAME", "BIRTH_DATE", "PHONE"] and "Morel" not in res.stdout
    clean = tmp_path / "clean.txt"
    clean.write_text("Amoxicilline 1 g trois fois par jour.\n", encoding="utf-8")
    assert run_cli("pii", "scan", str(clean)).returncode == 0
    res = run_cli("pii", "scan", str(tmp_path / "missing.txt"))
    assert res.returncode == 2 and "cannot read" in res.stderr


def test_parallel_scan_finds_what_one_process_finds() -> None:
    from harness.pii.detect import scan_parallel

    notes = [parse(line)[0] for line in (Path(__file__).parent.parent / "harness" / "pii" / "data" / "annotated"
                                         / "fr-test.txt").read_text(encoding="utf-8").splitlines() if line]
    text = "\n".join(notes * 500) + "\n"
    assert len(text) > 2_000_000
    assert scan_parallel(text, workers=2) == scan(text)


def test_texts_without_digits_skip_only_rules_that_need_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text without a digit (or an "@") skips the rules that match one; what they find is
    what every rule finds, on the annotated notes with and without their digits, and a
    hospital's own pattern runs on any text."""
    from harness.pii import detect

    assert kinds("Suivi par le Dr Lefèvre, écrire à claire.rousseau@exemple.fr, dossier PATQXKZW.", r"PAT[A-Z]{5}") == [
        ("NAME", "Dr Lefèvre"), ("EMAIL", "claire.rousseau@exemple.fr"), ("HOSPITAL_ID", "PATQXKZW")]
    folder = Path(__file__).parent.parent / "harness" / "pii" / "data" / "annotated"
    notes = [parse(line)[0] for path in sorted(folder.glob("*.txt"))
             for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    texts = notes + ["".join(c for c in note if not c.isdigit()) for note in notes] + \
        [note.replace("@", " ") for note in notes]
    gated = [scan(text, (r"PAT[A-Z]{5}",)) for text in texts]
    every_rule = [(kind, pattern, accept, "") for kind, pattern, accept, _ in detect._compiled((r"PAT[A-Z]{5}",))]
    monkeypatch.setattr(detect, "_compiled", lambda patterns: every_rule)
    assert [scan(text, (r"PAT[A-Z]{5}",)) for text in texts] == gated
    assert sum(map(len, gated)) > 300


def test_deidentification_kind_scores_what_is_left_and_what_is_over_masked() -> None:
    from harness.config import TaskConfig
    from harness.scoring.deid import Deidentification, DeidSettings
    from harness.types import Item

    task = TaskConfig.model_validate({"name": "d", "kind": "deidentification", "data_class": "personal",
                                      "prompt": "{{ input }}", "dataset": {"path": "x.jsonl"}})
    scorer = Deidentification(task, DeidSettings())
    text = "Patient Jean Morel, tél. 06 12 34 56 78, allergique à la pénicilline."
    item = Item("n1", {"input": text}, reference="Patient [NAME:Jean Morel], tél. [PHONE:06 12 34 56 78], "
                                                 "allergique à la pénicilline.")
    perfect = scorer.score_text(item, "Patient [NAME], tél. [PHONE], allergique à la pénicilline.")
    assert perfect.values["deid_caught"] == 2 and perfect.values["deid_tp"] == perfect.values["deid_masked"] == 7
    leaky = scorer.score_text(item, "Patient Jean [NAME], tél. [PHONE], allergique à la [DRUG].")
    assert leaky.values["deid_caught"] == 1 and leaky.values["deid_caught_NAME"] == 0
    masked, tp = leaky.values["deid_masked"], leaky.values["deid_tp"]
    assert masked is not None and tp is not None and masked - tp == 1  # "pénicilline" masked for nothing
    assert leaky.details["missed_types"] == ["NAME"]


def test_bundled_redactor_on_the_held_out_notes(tmp_path: Path) -> None:
    from conftest import ROOT

    from harness.pii.redact import redact_text
    from harness.store import iter_jsonl

    res = run_cli("run", str(ROOT / "examples" / "deidentification" / "suite.yaml"), "--quiet",
                  "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    rows = {r["metric"]: r for r in card["rows"]}
    # independent count: a gold identifier is caught when its text is gone from the redacted note
    gold = caught = 0
    for row in iter_jsonl(ROOT / "tasks" / "deid-notes" / "items.jsonl"):
        _, entities = parse(row["gold"])
        redacted = redact_text(row["text"])
        gold += len(entities)
        caught += sum(1 for e in entities if e.text not in redacted)
    assert gold == 311 and rows["deid_entity_recall"]["value"] == caught / gold
    assert rows["deid_entity_recall"]["value"] >= 0.97 and rows["deid_token_precision"]["value"] >= 0.95
