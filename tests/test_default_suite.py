"""The embedded default suite, end to end, as `make run` runs it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, run_cli


def test_default_suite_runs_offline_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cache_before = _cache_state() if (ROOT / ".harness-cache").exists() else None
    res = run_cli("run", "suite.yaml", "--out", str(out), "--quiet",
                  env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, timeout=600)
    assert res.returncode == 0, res.stderr
    card = json.loads((out / "scorecard.json").read_text())
    rows = {(r["task"], r["metric"]): r for r in card["rows"]}
    wer = rows[("dictation-en", "wer")]
    assert wer["n"] >= 40 and wer["clusters"] == 16
    assert 0 < wer["ci_low"] <= wer["value"] <= wer["ci_high"]
    assert rows[("dictation-en", "error_rate")]["value"] == 0
    # the medical scorers run on the default dictation task
    for metric in ("drug_recall", "dose_accuracy", "critical_term_error_rate", "severity_weighted_error_rate"):
        assert rows[("dictation-en", metric)]["n"] == 48
    # the French path: a replayed cloud service whose errors are the HAS guide's examples
    assert rows[("dictation-fr", "wer")]["value"] < 0.10
    # 21 critical terms (negations, sides, near-homophones, 12 dosing schedules), 6 of them wrong:
    # 3 negations lost, prescrire / proscrire and hypo- / hyperkaliémie swapped, gauche → droite
    assert rows[("dictation-fr", "critical_term_error_rate")]["value"] == 6 / 21
    fr = {s["scorer"]: s["data"] for s in card["sections"] if s["task"] == "dictation-fr"}
    assert any(e["reference"] == "cefuroxime" and e["output"] == "ceftriaxone"
               for e in fr["drug_names"]["top_drug_errors"])
    assert fr["doses"]["by_kind"]["dose_unit_magnitude"] == 1
    assert fr["critical_terms"]["by_kind"] == {"negation_lost": 3, "near_homophone_swap": 2, "laterality_flip": 1}
    acc = rows[("drug-qa-en", "accuracy")]
    # 39 exported answers: 6 wrong on purpose, 2 unextractable → 31 / 39
    assert acc["value"] == 31 / 39 and acc["n"] == 39
    assert rows[("drug-qa-en", "missing_rate")]["value"] == 1 / 40
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["adapters"]["whisper-tiny-local"]["declarations"]["hosting"] == "this machine, no network"
    assert any(p.endswith("dictation-en/items.jsonl") for p in manifest["file_hashes"])
    digest, n_audio = manifest["tasks"]["dictation-en"]["audio_digest"]
    assert len(digest) == 64 and n_audio == 48
    assert manifest["packages"]["faster-whisper"]
    responses = (out / "responses.jsonl").read_text().splitlines()
    assert len(responses) == 48 + 20 + 40 + 8
    # faster-whisper's timed segments are kept in the record (issue 10, point 7)
    whisper = [json.loads(line) for line in responses if '"whisper-tiny-local"' in line]
    assert all(r["segments"] and r["segments"][0]["end"] > r["segments"][0]["start"] >= 0 for r in whisper)
    assert all(" ".join(seg["text"] for seg in r["segments"]) == r["output"] for r in whisper)
    assert rows[("health-citations-en", "fabricated_rate")]["value"] > 0
    # the CLI printed one screen that says what was decided (issue 13): objectives, gates,
    # the exit code's reason, key figures with CI and n, and where the full report is
    lines = res.stdout.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 100, res.stdout
    assert "Objectives (HAS 1.6)" in res.stdout and "Gates" in res.stdout and "Exit 0:" in res.stdout
    assert lines.index("Objectives (HAS 1.6)") < 5  # the verdicts first, not the description
    assert "Word error rate ↓" in res.stdout and "| wer ↓ |" not in res.stdout
    assert f"Full report: {out}/report.html" in res.stdout
    # the small-n legend warns only when a figure is marked (a million-item run is not an alarm)
    assert ("⚠ n < 30" in res.stdout) == any(r["small_n"] for r in card["rows"]) and "95% CI in [ ]" in res.stdout
    # `report` recomputes the Markdown scorecard that `--format md` prints
    assert "| wer ↓ | whisper-tiny-local |" in (out / "scorecard.md").read_text()
    again = run_cli("report", str(out), "--format", "json")
    assert json.loads(again.stdout) == card
    _valid_against_the_published_schema(out)
    # the tests' response cache is not the repository's (a later `make run` must not reuse it)
    assert not (ROOT / ".harness-cache").exists() or cache_before == _cache_state()


def _cache_state() -> list[tuple[str, int]]:
    return sorted((p.name, p.stat().st_mtime_ns) for p in (ROOT / ".harness-cache").rglob("*"))


def _valid_against_the_published_schema(run_dir: Path) -> None:
    """Every file of the default run validates against docs/record.schema.json."""
    import jsonschema

    schema = json.loads((ROOT / "docs" / "record.schema.json").read_text(encoding="utf-8"))
    files = {"manifest.json": [json.loads((run_dir / "manifest.json").read_text())]}
    for name in ("responses.jsonl", "scores.jsonl", "requests.jsonl"):
        files[name] = [json.loads(line) for line in (run_dir / name).read_text().splitlines()]
    assert files["manifest.json"][0]["format_version"] == 3 and files["requests.jsonl"]
    for name, records in files.items():
        validator = jsonschema.Draft202012Validator({**schema, "$ref": schema["x-files"][name]})
        for record in records:
            validator.validate(record)


def test_validate_default_suite() -> None:
    res = run_cli("validate", "suite.yaml")
    assert res.returncode == 0, res.stderr
    assert "dictation-en (48 items) × whisper-tiny-local" in res.stdout
    assert "dictation-fr (20 items) × dictee-cloud" in res.stdout


def test_audio_is_small_and_committed() -> None:
    audio = list((ROOT / "tasks").glob("dictation-*/audio/*.ogg"))
    assert len(audio) == 48 + 20
    assert sum(p.stat().st_size for p in audio) < 3_000_000


def test_help_keeps_sentences_whole_and_placeholders_visible() -> None:
    """Rich mode printed a docstring's line breaks mid-sentence in the command list; markdown
    mode reflows them, and would hide placeholders written in angle brackets."""
    res = run_cli("--help", env={"COLUMNS": "250"})
    assert res.returncode == 0
    row = next(line for line in res.stdout.splitlines() if "│ report" in line)
    assert "the committee's page (decisions, every figure with CI" in row, res.stdout
    res = run_cli("report", "--help", env={"COLUMNS": "250"})
    assert "runs/RUN_ID" in res.stdout and "RUN/report.LANG.html" in res.stdout
