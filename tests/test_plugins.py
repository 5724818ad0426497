"""Issue 16, "One shape for every plugin": scorer failures are item errors, the system under
test never sees the reference, scorers take options, the registry is guarded, and a
third-party package adds an adapter and a scorer with options."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_cli, write_jsonl, write_yaml

from harness import run_suite
from harness.scoring import SCORERS, MetricSpec, Scorer
from harness.store import iter_jsonl
from harness.types import Item, Sample, Score

ROWS = [{"id": f"q{i}", "question": f"Question {i}", "answer": "ABCD"[i % 4]} for i in range(8)]


def _suite(tmp_path: Path, scorers: list[Any] | None = None, adapter: dict | None = None, **suite: Any) -> Path:
    write_jsonl(tmp_path / "items.jsonl", ROWS)
    (tmp_path / "out.csv").write_text("id,output\n" + "".join(f"{r['id']},{r['answer']}\n" for r in ROWS),
                                      encoding="utf-8")
    task: dict[str, Any] = {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                            "choices": ["A", "B", "C", "D"],
                            "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}}
    if scorers is not None:
        task["scorers"] = scorers
    write_yaml(tmp_path / "task.yaml", task)
    replay = {"kind": "replay", "settings": {"path": "out.csv"}}
    write_yaml(tmp_path / "sut.yaml", {"name": "sut", **(adapter or replay)})
    return write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["sut.yaml"],
                                                **suite})


def _register(name: str, score: Any, *, is_async: bool = False) -> None:
    """A scorer registered in this process (the entry-point path is tested below)."""
    if name in SCORERS:
        return
    attrs: dict[str, Any] = {"kinds": frozenset({"qa"}),
                             "metrics": (MetricSpec(f"{name}_value", "mean", f"{name}_value"),)}
    attrs["score" if is_async else "score_text"] = score
    SCORERS.register(name)(type(name.title(), (Scorer,), {**attrs, "name": name}))


def _boom_on_q3(self: Scorer, item: Item, output: str) -> Score:
    if item.id == "q3":
        raise RuntimeError("cannot score q3")
    return Score({"boom_one_value": 1.0})


def _boom_always(self: Scorer, item: Item, output: str) -> Score:
    raise ValueError("broken scorer")


def _never_returns(self: Scorer, item: Item, output: str) -> Score:
    while True:
        time.sleep(0.01)


async def _never_returns_async(self: Scorer, sample: Sample) -> Score:
    await asyncio.sleep(3600)
    return Score()


@pytest.mark.parametrize(("name", "fn", "is_async", "failing", "message"), [
    ("boom_one", _boom_on_q3, False, {"q3"}, "RuntimeError: cannot score q3"),
    ("boom_all", _boom_always, False, {r["id"] for r in ROWS}, "ValueError: broken scorer"),
    ("hangs", _never_returns, False, {r["id"] for r in ROWS}, "ran past 0.2 s"),
    ("hangs_async", _never_returns_async, True, {r["id"] for r in ROWS}, "TimeoutError"),
])
def test_a_failing_scorer_is_an_item_error_never_a_hang(tmp_path: Path, name: str, fn: Any, is_async: bool,
                                                        failing: set[str], message: str) -> None:
    _register(name, fn, is_async=is_async)
    suite = _suite(tmp_path, scorers=["exact_match", name], scoring_timeout_s=0.2)
    started = time.perf_counter()
    result = run_suite(suite, quiet=True)
    assert time.perf_counter() - started < 60
    assert result.exit_code == 0
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    scores = {r["item_id"]: r for r in iter_jsonl(result.run_dir / "scores.jsonl")}
    assert len(scores) == len(ROWS)
    for item_id, rec in scores.items():
        assert rec["values"]["correct"] == 1, "the other scorers still score every item"
        if item_id in failing:
            assert rec["values"]["scoring_error"] == 1
            assert message in rec["details"][name]["error"] and "Traceback" in rec["details"][name]["traceback"]
        else:
            assert rec["values"]["scoring_error"] == 0 and f"{name}_value" in rec["values"]
    row = next(r for r in result.scorecard["rows"] if r["metric"] == "scoring_error_rate")
    assert row["value"] == len(failing) / len(ROWS) and row["n"] == len(ROWS)


def test_cli_warns_about_scorer_failures_and_keeps_the_exit_code(tmp_path: Path) -> None:
    plugin = tmp_path / "boom_plugin.py"
    plugin.write_text(textwrap.dedent("""
        from harness.scoring import MetricSpec, Scorer, register_scorer

        @register_scorer("boom_cli")
        class Boom(Scorer):
            kinds = frozenset({"qa"})
            metrics = (MetricSpec("boom", "mean", "boom"),)
            def score_text(self, item, output):
                raise RuntimeError("no")
    """), encoding="utf-8")
    suite = _suite(tmp_path, scorers=["exact_match", "boom_cli"])
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import boom_plugin; "
            "from harness.cli import main; sys.argv = ['harness', 'run', sys.argv[1], '--quiet']; main()")
    res = subprocess.run([sys.executable, "-c", code, str(suite)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "a scorer failed on 100.0% of 8 items" in res.stderr


def test_the_system_under_test_never_sees_the_reference(tmp_path: Path) -> None:
    (tmp_path / "cheat.py").write_text(textwrap.dedent("""
        def answer(request):
            item = getattr(request, "item", None)
            gold = getattr(item, "reference", None) or request.inputs.get("answer") or request.inputs.get("reference")
            return gold or "I see only: " + ", ".join(sorted(request.inputs))
    """), encoding="utf-8")
    suite = _suite(tmp_path, adapter={"kind": "python", "settings": {"callable": "cheat:answer", "path": ["."]}})
    result = run_suite(suite, quiet=True)
    acc = next(r for r in result.scorecard["rows"] if r["metric"] == "accuracy")
    assert acc["value"] == 0.0 and acc["n"] == len(ROWS), "the adapter read the gold answer"
    outputs = {r["output"] for r in iter_jsonl(result.run_dir / "responses.jsonl")}
    assert outputs == {"I see only: question"}


# --- scorer options ------------------------------------------------------------------

def test_scorer_options_are_validated_with_file_field_and_line(tmp_path: Path) -> None:
    suite = _suite(tmp_path, scorers=["exact_match", {"name": "drug_names", "formulary": "nope.csv"},
                                      {"name": "citations", "catalog": ["x.bib"]}])
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    assert "task.yaml:17: scorers[1].formulary: formulary file not found" in res.stderr
    assert "scorers[2].catalog: unknown field" in res.stderr and "did you mean 'catalogue'?" in res.stderr


def test_task_level_options_still_read_with_a_deprecation_note(tmp_path: Path) -> None:
    (tmp_path / "formulary.csv").write_text("variant,canonical\nhospicef,ceftriaxone\n", encoding="utf-8")
    suite = _suite(tmp_path, scorers=["exact_match", "drug_names"])
    data = (tmp_path / "task.yaml").read_text() + "formulary: formulary.csv\n"
    (tmp_path / "task.yaml").write_text(data, encoding="utf-8")
    res = run_cli("validate", str(suite))
    assert res.returncode == 0, res.stderr
    assert "`formulary:` at task level is deprecated" in res.stdout
    result = run_suite(suite, quiet=True)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["tasks"]["t"]["scorer_settings"]["drug_names"]["formulary"] == str(tmp_path / "formulary.csv")


# --- the registry ----------------------------------------------------------------------

def _install(tmp_path: Path, name: str, entry_points: dict[str, dict[str, str]], code: str) -> Path:
    pkg = tmp_path / f"src-{name}"
    module = name.replace("-", "_")
    (pkg / module).mkdir(parents=True)
    groups = "".join(f'[project.entry-points."{g}"]\n' + "".join(f'{k} = "{v}"\n' for k, v in eps.items())
                     for g, eps in entry_points.items())
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "0.0.1"\n{groups}', encoding="utf-8")
    (pkg / module / "__init__.py").write_text(textwrap.dedent(code), encoding="utf-8")
    target = tmp_path / f"site-{name}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(pkg)], check=True, capture_output=True)
    return target


def test_a_plugin_named_like_a_built_in_is_refused_naming_both(tmp_path: Path) -> None:
    site = _install(tmp_path, "evil-replay", {"harness.adapters": {"replay": "evil_replay:Replay"}},
                    "from harness.adapters import Adapter\nclass Replay(Adapter):\n    pass\n")
    res = run_cli("validate", str(_suite(tmp_path)), env={"PYTHONPATH": f"{site}:{ROOT}"})
    assert res.returncode == 2, res.stderr
    assert "two adapter kinds are named 'replay'" in res.stderr and "package 'evil-replay'" in res.stderr
    assert "avec-harness (built-in)" in res.stderr and "Traceback" not in res.stderr


def test_a_broken_plugin_only_matters_to_a_suite_that_uses_it(tmp_path: Path) -> None:
    site = _install(tmp_path, "broken-plugin", {"harness.adapters": {"shaky": "broken_plugin:Shaky"}},
                    "import a_module_that_does_not_exist\n")
    env = {"PYTHONPATH": f"{site}:{ROOT}"}
    res = run_cli("validate", str(_suite(tmp_path)), env=env)
    assert res.returncode == 0, res.stderr
    assert "adapter kind plugin 'shaky' from package 'broken-plugin' failed to load" in res.stderr
    uses = tmp_path / "uses"
    res = run_cli("validate", str(_suite(uses, adapter={"kind": "shaky"})), env=env)
    assert res.returncode == 2
    assert "kind: the adapter kind plugin 'shaky' could not be loaded" in res.stderr
    assert "ModuleNotFoundError" in res.stderr


def test_task_kinds_are_pluggable(tmp_path: Path) -> None:
    site = _install(tmp_path, "kind-plugin", {"harness.kinds": {"triage": "kind_plugin:TRIAGE"}}, """
        from harness.kinds import TaskKind
        TRIAGE = TaskKind("triage", "text", ("id", "reference"), ("exact_match",), needs_prompt=True)
    """)
    suite = _suite(tmp_path)
    data = (tmp_path / "task.yaml").read_text().replace("kind: qa", "kind: triage")
    (tmp_path / "task.yaml").write_text(data, encoding="utf-8")
    res = run_cli("validate", str(suite), env={"PYTHONPATH": f"{site}:{ROOT}"})
    assert "scorer 'exact_match' does not apply to 'triage' tasks" in res.stderr  # known kind, checked like any
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "unknown task kind" in res.stderr


# --- the README's plugin example, installed as a package -------------------------------

def test_the_readme_plugin_package_runs(tmp_path: Path) -> None:
    example = ROOT / "examples" / "plugin"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in (example / "pyproject.toml", example / "harness_example_plugin" / "__init__.py"):
        assert path.read_text(encoding="utf-8").strip() in readme, f"README shows an outdated {path.name}"
    site = tmp_path / "site"
    shutil.copytree(example, tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(tmp_path / "src")], check=True, capture_output=True)
    env = {"PYTHONPATH": f"{site}:{ROOT}"}
    suite = _suite(tmp_path, scorers=["exact_match", {"name": "length_ratio", "unit": "characters"}],
                   adapter={"kind": "constant", "settings": {"answer": "B"}})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"), env=env)
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    rows = {r["metric"]: r for r in card["rows"]}
    assert rows["accuracy"]["value"] == 0.25  # B is right for 2 of 8
    assert rows["length_ratio"]["value"] == len("The answer is B.")  # 16 characters per 1-character answer
    assert card["adapters"]["sut"]["provider_models"] == ["constant-1"]
    bad = _suite(tmp_path / "bad", scorers=["exact_match", {"name": "length_ratio", "unit": "lines"}],
                 adapter={"kind": "constant"})
    res = run_cli("validate", str(bad), env=env)
    assert res.returncode == 2
    assert "task.yaml:17: scorers[1].unit" in res.stderr and "'lines'" in res.stderr


# --- merge ----------------------------------------------------------------------------

def test_merge_never_deletes_a_folder_it_did_not_write(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    shards = [run_suite(suite, quiet=True, shard=f"{i}/2", out=tmp_path / f"s{i}").run_dir for i in (1, 2)]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("years of work", encoding="utf-8")
    res = run_cli("merge", *map(str, shards), "--out", str(mine))
    assert res.returncode == 2 and "nothing was deleted" in res.stderr
    assert (mine / "thesis.docx").read_text(encoding="utf-8") == "years of work"
    for _ in range(2):  # an earlier merge of the same suite may be replaced
        assert run_cli("merge", *map(str, shards), "--out", str(tmp_path / "merged")).returncode == 0
