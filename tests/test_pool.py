"""CPU-bound scorers on every core (issue 10's scale, issue 16's process-pool item): the
scores do not depend on the number of scoring workers, and a scorer that raises or hangs in
a worker costs that item its values, as in-process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from test_plugins import ROWS, _boom_on_q3, _never_returns, _suite

from harness import run_suite
from harness.scoring import SCORERS, MetricSpec, Scorer
from harness.store import iter_jsonl


def _values(run_dir: Path) -> dict[tuple[str, str, str], tuple[dict[str, Any], dict[str, Any]]]:
    return {(r["task"], r["adapter"], r["item_id"]): (r["values"], r["details"])
            for r in iter_jsonl(run_dir / "scores.jsonl")}


def test_scores_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    source = ROOT / "examples" / "consultation" / "suite.yaml"
    config = yaml.safe_load(source.read_text())
    runs = {}
    for workers in (0, 2):
        suite = source.parent / f".pool-test-{workers}.yaml"  # beside the original: its relative paths hold
        suite.write_text(yaml.safe_dump({**config, "scoring_workers": workers}))
        try:
            result = run_suite(suite, out=tmp_path / f"w{workers}", quiet=True, cache=False)
        finally:
            suite.unlink()
        manifest = json.loads((result.run_dir / "manifest.json").read_text())
        assert manifest["scoring_workers"] == workers
        runs[workers] = _values(result.run_dir)
    assert runs[0] == runs[2] and len(runs[0]) == 12


@pytest.mark.parametrize(("name", "fn", "failing", "message"), [
    ("pooled_boom", _boom_on_q3, {"q3"}, "RuntimeError: cannot score q3"),
    ("pooled_hang", _never_returns, {r["id"] for r in ROWS}, "ran past 0.2 s"),
])
def test_a_scorer_failing_in_a_worker_is_an_item_error(tmp_path: Path, name: str, fn: Any, failing: set[str],
                                                       message: str) -> None:
    if name not in SCORERS:
        SCORERS.register(name)(type(name.title(), (Scorer,), {
            "name": name, "kinds": frozenset({"qa"}), "cpu_bound": True, "score_text": fn,
            "metrics": (MetricSpec(f"{name}_value", "mean", f"{name}_value"),)}))
    suite = _suite(tmp_path, scorers=["exact_match", name], scoring_timeout_s=0.2, scoring_workers=2)
    started = time.perf_counter()
    result = run_suite(suite, quiet=True)
    assert time.perf_counter() - started < 60
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["scoring_workers"] == 2
    for rec in iter_jsonl(result.run_dir / "scores.jsonl"):
        assert rec["values"]["correct"] == 1
        if rec["item_id"] in failing:
            assert rec["values"]["scoring_error"] == 1 and message in rec["details"][name]["error"]
        else:
            assert rec["values"]["scoring_error"] == 0
