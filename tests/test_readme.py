"""The README's examples run as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _copy_project(tmp: Path) -> Path:
    for name in ("suite.yaml",):
        shutil.copy(ROOT / name, tmp / name)
    for name in ("tasks", "adapters", "examples"):
        shutil.copytree(ROOT / name, tmp / name)
    return tmp


def _env(tmp: Path) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HARNESS_CACHE_DIR": str(tmp / "cache"),
            "PYTHONPATH": str(ROOT)}


def _run_block(containing: str, tmp_path: Path, *, stop_on_error: bool,
               timeout: int = 600) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the README's first sh block that contains `containing`, in a copy of the project."""
    block = next(b for b in _blocks("sh") if containing in b)
    project = _copy_project(tmp_path)
    flags = "-euo" if stop_on_error else "-uo"
    res = subprocess.run(["bash", flags, "pipefail", "-c", block], cwd=project, capture_output=True, text=True,
                         env=_env(tmp_path), timeout=timeout)
    return project, res


def test_python_example(tmp_path: Path) -> None:
    code = next(b for b in _blocks("python") if "load_suite" in b)
    project = _copy_project(tmp_path)
    res = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
                         env=_env(tmp_path), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "('dictation-en', 'whisper-tiny-local')" in res.stdout


def test_shard_and_merge_example(tmp_path: Path) -> None:
    project, res = _run_block("harness merge", tmp_path, stop_on_error=True)
    assert res.returncode == 0, res.stderr
    merged = project / "runs" / "merged"
    assert len((merged / "responses.jsonl").read_text().splitlines()) == 48 + 20 + 40 + 8
    card = json.loads((merged / "scorecard.json").read_text())
    assert next(r for r in card["rows"] if r["metric"] == "wer")["n"] == 48


def test_validate_example(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    assert "harness validate suite.yaml" in README
    res = subprocess.run(["harness", "validate", "suite.yaml"], cwd=project, capture_output=True, text=True,
                         env=_env(tmp_path), timeout=120)
    assert res.returncode == 0, res.stderr


def test_drift_example_exits_1(tmp_path: Path) -> None:
    project, res = _run_block("harness compare", tmp_path, stop_on_error=False, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "**1 regression(s)**: drug-qa-en/accuracy (chatbot)" in res.stdout
    assert "-0.359 [-0.5128, -0.2051]" in res.stdout and "| 0.000488 |" in res.stdout
    assert (project / "compare.xml").exists() and (project / "compare.md").exists()


def test_analyst_example(tmp_path: Path) -> None:
    """The notebook-style example: load a run as DataFrames, export its tables."""
    shell = next(b for b in _blocks("sh") if "--format parquet" in b)
    code = next(b for b in _blocks("python") if "load_run" in b)
    project = _copy_project(tmp_path)
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], cwd=project, capture_output=True, text=True,
                         env=_env(tmp_path), timeout=300)
    assert res.returncode == 0, res.stderr
    assert (project / "runs" / "estimer" / "tables" / "scores.parquet").is_file()
    res = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
                         env=_env(tmp_path), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "mt-vendor-a" in res.stdout and "interpreter-service" in res.stdout and "chrf" in res.stdout
