"""Issue 7: `harness compare`, non-inferiority gates, history, stability, power, plan."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, only_run, run_cli, write_jsonl, write_yaml
from scipy.stats import binomtest

from harness.compare import holm, mcnemar_exact
from harness.power import items_for_proportion_drop
from harness.testing.openai_server import OpenAIServer

DRIFT = ROOT / "examples" / "drift"


@pytest.fixture(scope="module")
def drift_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("drift")
    for version in ("2026-10", "2026-11"):
        res = run_cli("run", str(DRIFT / f"suite-{version}.yaml"), "--out", str(tmp / version), "--quiet")
        assert res.returncode == 0, res.stderr
    return tmp / "2026-10", tmp / "2026-11"


def test_bundled_drift_example_exits_1_with_the_regression_named(drift_runs, tmp_path: Path) -> None:
    base, cand = drift_runs
    junit, md = tmp_path / "compare.xml", tmp_path / "summary.md"
    res = run_cli("compare", str(base), str(cand), "--junit", str(junit), "--markdown", str(md))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "**1 regression(s)**: drug-qa-en/accuracy (chatbot)" in res.stdout
    assert "passed → failed (14)" in res.stdout and "qa-001" in res.stdout
    row = next(line for line in res.stdout.splitlines() if line.startswith("| drug-qa-en | accuracy"))
    assert "exact McNemar" in row and "**regression**" in row and "| 0.05 |" in row
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "4"
    assert md.read_text(encoding="utf-8") + "\n" == res.stdout
    data = json.loads(run_cli("compare", str(base), str(cand), "--json").stdout)
    acc = next(m for m in data["metrics"] if m["metric"] == "accuracy")
    assert acc["difference"] == pytest.approx(-14 / 39) and acc["p_value"] == pytest.approx(2 * 0.5**14)
    assert acc["ci_high"] < -0.05


def test_a_margin_in_points_is_warned_of_not_a_regression_silently_hidden(drift_runs) -> None:
    """`--margin 5` (meant: 5 points) is larger than any change of a rate: any rate without a
    margin of its own in the suite could not regress, without a word. (Here the suite's own
    0.05 on accuracy still applies: the regression is still found.)"""
    base, cand = drift_runs
    res = run_cli("compare", str(base), str(cand), "--margin", "5")
    assert res.returncode == 1 and "**1 regression(s)**: drug-qa-en/accuracy" in res.stdout
    assert res.stderr.startswith("warning: --margin 5 is larger than any change of a rate (a proportion, 0 to 1): "
                                 "no rate can be a regression; 5 points is 0.05"), res.stderr
    assert "warning" not in run_cli("compare", str(base), str(cand), "--margin", "0.05").stderr


def test_a_run_against_itself_has_no_regression(drift_runs) -> None:
    base, _ = drift_runs
    res = run_cli("compare", str(base), str(base))
    assert res.returncode == 0 and "No regression." in res.stdout


def test_improvement_is_not_a_regression(drift_runs) -> None:
    base, cand = drift_runs
    res = run_cli("compare", str(cand), str(base), "--json")
    assert res.returncode == 0
    acc = next(m for m in json.loads(res.stdout)["metrics"] if m["metric"] == "accuracy")
    assert acc["verdict"] == "improvement"


def test_different_task_definitions_are_not_comparable(drift_runs, tmp_path: Path) -> None:
    base, _ = drift_runs
    task = (ROOT / "tasks/drug-qa-en/task.yaml").read_text(encoding="utf-8")
    (tmp_path / "task.yaml").write_text(task.replace("path: items.jsonl", f"path: {ROOT}/tasks/drug-qa-en/items.jsonl")
                                        .replace("{{ question }}", "Question: {{ question }}"), encoding="utf-8")
    write_yaml(tmp_path / "suite.yaml", {"name": "changed", "tasks": ["task.yaml"],
                                         "adapters": [str(DRIFT / "chatbot-2026-11.yaml")], "data_roots": [str(ROOT)]})
    assert run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), "--quiet").returncode == 0
    res = run_cli("compare", str(base), str(tmp_path / "run"))
    assert res.returncode == 2
    assert "Not comparable" in res.stdout and "task definitions differ (prompt)" in res.stdout


def test_changed_item_selection_is_not_comparable(drift_runs, tmp_path: Path) -> None:
    base, _ = drift_runs
    task = (ROOT / "tasks/drug-qa-en/task.yaml").read_text(encoding="utf-8")
    (tmp_path / "task.yaml").write_text(
        task.replace("path: items.jsonl", f"path: {ROOT}/tasks/drug-qa-en/items.jsonl\n  limit: 30"),
        encoding="utf-8")
    write_yaml(tmp_path / "suite.yaml", {"name": "fewer", "tasks": ["task.yaml"],
                                         "adapters": [str(DRIFT / "chatbot-2026-10.yaml")], "data_roots": [str(ROOT)]})
    assert run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), "--quiet").returncode == 0
    res = run_cli("compare", str(base), str(tmp_path / "run"))
    assert res.returncode == 2 and "task definitions differ (dataset)" in res.stdout


def test_different_item_sets_compare_on_the_intersection(drift_runs, tmp_path: Path) -> None:
    base, _ = drift_runs
    res = run_cli("run", str(DRIFT / "suite-2026-11.yaml"), "--shard", "1/2", "--out", str(tmp_path / "half"),
                  "--quiet")
    assert res.returncode == 0, res.stderr
    n_half = len((tmp_path / "half" / "responses.jsonl").read_text().splitlines())
    res = run_cli("compare", str(base), str(tmp_path / "half"), "--json")
    data = json.loads(res.stdout)
    assert data["comparable"]
    (warning,) = data["warnings"]
    assert f"comparing the {n_half} shared (baseline 40, candidate {n_half})" in warning
    acc = next(m for m in data["metrics"] if m["metric"] == "accuracy")
    assert acc["n_paired"] < 40


def test_unpaired_comparison_when_asked(drift_runs) -> None:
    base, cand = drift_runs
    res = run_cli("compare", str(base), str(cand), "--unpaired", "--json")
    acc = next(m for m in json.loads(res.stdout)["metrics"] if m["metric"] == "accuracy")
    assert acc["test"] == "unpaired z" and acc["n_paired"] == 0 and acc["verdict"] == "regression"


def test_non_inferiority_gate_uses_the_baseline(drift_runs, tmp_path: Path) -> None:
    base, _ = drift_runs
    gate = {"metric": "drug-qa-en/accuracy", "non_inferior_to": "baseline", "margin": 0.05}
    for version, expected in (("2026-11", 1), ("2026-10", 0)):
        suite = write_yaml(tmp_path / f"suite-{version}.yaml", {
            "name": "gated", "tasks": [str(ROOT / "tasks/drug-qa-en/task.yaml")],
            "adapters": [str(DRIFT / f"chatbot-{version}.yaml")], "baseline": str(base), "gates": [gate],
            "data_roots": [str(ROOT)]})
        res = run_cli("run", str(suite), "--out", str(tmp_path / f"run-{version}"), "--quiet",
                      "--junit", str(tmp_path / f"gates-{version}.xml"))
        assert res.returncode == expected, res.stdout + res.stderr
        card = json.loads((tmp_path / f"run-{version}" / "scorecard.json").read_text())
        (g,) = card["gates"]
        assert g["n_paired"] == 39
        if expected:
            assert "inferiority not excluded" in g["reason"] and g["ci_high"] < 0
        junit = ET.parse(tmp_path / f"gates-{version}.xml").getroot().find("testsuite")
        assert junit is not None
        failures = junit.get("failures")
        assert failures == str(expected)
        assert card["power"][0]["metric"] == "drug-qa-en/accuracy"
        assert card["power"][0]["underpowered"] is True  # 39 items cannot resolve a 5-point margin
        html = (tmp_path / f"run-{version}" / "report.html").read_text(encoding="utf-8")
        assert "<h2>Power</h2>" in html and "too few items to conclude at this margin" in html


def test_history_plots_and_silent_model_change(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with OpenAIServer() as server:
        from test_resilience import make_suite

        suite = make_suite(tmp_path, server, 20, suite={"cache": False})
        for model in ("gpt-x-2026-10-01", "gpt-x-2026-10-01", "gpt-x-2026-11-15"):
            server.model = model
            assert run_cli("run", str(suite), "--quiet").returncode == 0
    res = run_cli("history", str(runs))
    assert res.returncode == 0, res.stderr
    events = [line for line in res.stdout.splitlines() if line.startswith("EVENT")]
    assert len(events) == 1 and "gpt-x-2026-11-15" in events[0] and "profile unchanged" in events[0]
    assert "t/accuracy: chat=1  chat=1  chat=1" in res.stdout
    chart = runs / "history" / "t__accuracy.png"
    assert chart.stat().st_size > 5000 and chart.read_bytes()[:4] == b"\x89PNG"
    assert (runs / "history.sqlite").exists()


def test_stability_across_repeats(tmp_path: Path) -> None:
    def unstable(body: dict) -> str:
        text = body["messages"][-1]["content"]
        answer = text.split("ANSWER=")[1][0]
        wrong = zlib.crc32(f"{body['seed']}:{text}".encode()) % 4 == 0
        return f"The answer is {'D' if wrong and answer != 'D' else 'A' if wrong else answer}."

    with OpenAIServer(responder=unstable) as server:
        from test_resilience import make_suite

        run_cli("run", str(make_suite(tmp_path, server, 40, suite={"repeats": 3, "cache": False})), "--quiet")
    card = json.loads((only_run(tmp_path / "runs") / "scorecard.json").read_text())
    (stab,) = [s for s in card["stability"] if s["metric"] == "accuracy"]
    assert stab["repeats"] == 3 and stab["items"] == 40
    assert 0 < stab["flip_rate"] < 1 and stab["agreement"] == pytest.approx(1 - stab["flip_rate"])
    assert stab["run_to_run_sd"] > 0
    assert "## Stability across repeats" in (only_run(tmp_path / "runs") / "scorecard.md").read_text()
    assert "<h2>Stability across repeats</h2>" in (only_run(tmp_path / "runs") / "report.html").read_text()


def test_plan_command_and_formula() -> None:
    res = run_cli("plan", "--baseline", "0.85", "--drop", "0.05", "--discordance", "0.08")
    assert res.returncode == 0 and res.stdout.startswith("249 items")
    assert items_for_proportion_drop(0.85, 0.05) > items_for_proportion_drop(0.85, 0.05, discordance=0.08)
    assert run_cli("plan", "--drop", "0.05").returncode == 2


def test_mcnemar_and_holm() -> None:
    a = np.array([1] * 30 + [0] * 10 + [1] * 5 + [0] * 3, dtype=float)
    b = np.array([1] * 30 + [0] * 10 + [0] * 5 + [1] * 3, dtype=float)
    assert mcnemar_exact(a, b) == pytest.approx(binomtest(3, 8, 0.5).pvalue)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_html_report_puts_systems_side_by_side(tmp_path: Path) -> None:
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "tender", "tasks": [str(ROOT / "tasks/drug-qa-en/task.yaml")],
        "adapters": [str(ROOT / "adapters/chatbot-export-replay.yaml"), str(DRIFT / "chatbot-2026-11.yaml")],
        "data_roots": [str(ROOT)]})
    assert run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run")).returncode == 0
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "<th>chatbot-export</th><th>chatbot</th>" in page.replace("\n", "")
    row = next(line for line in page.splitlines() if line.startswith("<tr><td>accuracy ↑"))
    assert "0.7949" in page and "0.4359" in page and row
    assert "Example vendor (fictitious)" in page and "<script" not in page
    res = run_cli("report", str(tmp_path / "run"), "--format", "junit")
    assert res.returncode == 0 and res.stdout.startswith("<?xml")


def test_a_paired_comparison_resamples_whole_clusters(tmp_path: Path) -> None:
    """Items of one consultation fail together: the paired comparison resamples clusters, not
    items (a permutation test instead of McNemar), with the figures the statistics give for
    the clusters of the shared items; ignoring them would give a narrower interval."""
    from harness import run_suite
    from harness.compare import PairedValues, compare_runs, compare_values

    rows = [{"id": f"q{i:02d}", "question": "?", "answer": "A", "group": f"g{i // 10}"} for i in range(60)]
    write_jsonl(tmp_path / "items.jsonl", rows)
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "dataset": {"path": "items.jsonl",
                                                    "fields": {"reference": "answer", "cluster": "group"}}})
    runs = {}
    for name, wrong in (("base", set()), ("cand", {"g0", "g1"})):
        (tmp_path / f"{name}.csv").write_text("id,output\n" + "".join(
            f"{r['id']},{'B' if r['group'] in wrong else 'A'}\n" for r in rows), encoding="utf-8")
        write_yaml(tmp_path / f"{name}.yaml", {"name": "r", "kind": "replay", "settings": {"path": f"{name}.csv"}})
        suite = write_yaml(tmp_path / f"suite-{name}.yaml", {"name": "s", "tasks": ["task.yaml"],
                                                             "adapters": [f"{name}.yaml"]})
        runs[name] = run_suite(suite, quiet=True, out=tmp_path / name).run_dir
    acc = next(m for m in compare_runs(runs["base"], runs["cand"]).metrics if m.metric == "accuracy")
    a, b = np.ones(60), np.array([0.0 if r["group"] in {"g0", "g1"} else 1.0 for r in rows])
    clusters = np.array([r["group"] for r in rows], dtype=object)
    expected = compare_values(PairedValues(a, np.ones(60), b, np.ones(60), clusters), "proportion", binary=True)
    assert [acc.difference, acc.ci_low, acc.ci_high, acc.p_value] == pytest.approx(list(expected[2:6]))
    assert acc.test == expected[6] != "exact McNemar" and acc.n_paired == 60
    items = compare_values(PairedValues(a, np.ones(60), b, np.ones(60), None), "proportion", binary=True)
    assert acc.ci_high is not None and acc.ci_low is not None
    assert acc.ci_high - acc.ci_low > items[4] - items[3]
