"""The embedded default suite, end to end, as `make run` runs it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, run_cli


def test_default_suite_runs_offline_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_cli("run", "suite.yaml", "--out", str(out), "--quiet",
                  env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, timeout=600)
    assert res.returncode == 0, res.stderr
    card = json.loads((out / "scorecard.json").read_text())
    rows = {(r["task"], r["metric"]): r for r in card["rows"]}
    wer = rows[("dictation-en", "wer")]
    assert wer["n"] >= 40 and wer["clusters"] == 16
    assert 0 < wer["ci_low"] <= wer["value"] <= wer["ci_high"]
    assert rows[("dictation-en", "error_rate")]["value"] == 0
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
    assert len(responses) == 48 + 40
    # the Markdown scorecard is what the CLI printed, and `report` recomputes it
    assert "| wer ↓ | whisper-tiny-local |" in res.stdout
    again = run_cli("report", str(out), "--format", "json")
    assert json.loads(again.stdout) == card


def test_validate_default_suite() -> None:
    res = run_cli("validate", "suite.yaml")
    assert res.returncode == 0, res.stderr
    assert "dictation-en (48 items) × whisper-tiny-local" in res.stdout


def test_audio_is_small_and_committed() -> None:
    audio = list((ROOT / "tasks" / "dictation-en" / "audio").glob("*.ogg"))
    assert len(audio) == 48
    assert sum(p.stat().st_size for p in audio) < 3_000_000
