"""Issue 12 (HAS 1.6): `harness init` writes a suite that states its objective, indicator,
success and stop criteria and sample size, and that validates and runs at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from harness.power import items_for_proportion_drop


@pytest.mark.parametrize("kind", ["qa", "generation", "translation"])
def test_init_scaffolds_a_suite_that_runs_and_states_its_plan(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "eval"
    res = run_cli("init", str(folder), "--kind", kind, "--name", "first", "--objective",
                  "Decide whether the tool may draft answers", "--success", ">= 0.5", "--stop", "< 0.2",
                  "--baseline", "0.9", "--drop", "0.05")
    assert res.returncode == 0, res.stderr
    n = items_for_proportion_drop(0.9, 0.05)
    assert f"sample size: {n} items" in res.stdout
    suite_text = (folder / "suite.yaml").read_text()
    assert "Objective (HAS 1.6): Decide whether the tool may draft answers" in suite_text
    assert f"Sample size: {n} items" in suite_text
    assert run_cli("validate", str(folder / "suite.yaml")).returncode == 0
    run = run_cli("run", str(folder / "suite.yaml"), "--quiet", "--out", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr
    objectives = json.loads((tmp_path / "run" / "scorecard.json").read_text())["objectives"]
    assert len(objectives) == 1 and objectives[0]["success"] == ">= 0.5" and objectives[0]["stop"] == "< 0.2"
    assert objectives[0]["status"] in ("met", "not met", "inconclusive", "stop")


def test_init_never_overwrites_and_names_a_bad_kind(tmp_path: Path) -> None:
    assert run_cli("init", str(tmp_path), "--kind", "qa").returncode == 0
    before = (tmp_path / "suite.yaml").read_text()
    again = run_cli("init", str(tmp_path), "--kind", "qa")
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert (tmp_path / "suite.yaml").read_text() == before
    bad = run_cli("init", str(tmp_path / "other"), "--kind", "poetry")
    assert bad.returncode == 2 and "--kind" in bad.stderr and "poetry" in bad.stderr
