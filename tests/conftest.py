from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.testing.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parent.parent
SENTINEL_KEY = "sk-SENTINEL-7f3a9c2e-do-not-leak"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess."""
    full_env = {**os.environ, "PYTHONUTF8": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def slowed_import(folder: Path, module: str, action: str) -> dict[str, str]:
    """The environment of a fresh interpreter in which importing `module` first runs `action`
    (Python source; `time` is imported): a sitecustomize on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import importlib.abc, sys, time\n"
        "class _Hook(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        f"            {action}\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Hook())\n", encoding="utf-8")
    return {"PYTHONPATH": str(folder)}


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


QA_ROWS = [{"id": f"q{i}", "question": f"Question {i}? ANSWER={'ABCD'[i % 4]}", "answer": "ABCD"[i % 4]}
           for i in range(12)]


@pytest.fixture
def qa_suite(tmp_path: Path, server: OpenAIServer) -> Callable[..., Path]:
    """A QA suite against the local server; keyword arguments override parts of it."""

    def make(task: dict[str, Any] | None = None, adapter: dict[str, Any] | None = None,
             suite: dict[str, Any] | None = None, rows: list[dict[str, Any]] | None = None) -> Path:
        write_jsonl(tmp_path / "data" / "qa.jsonl", QA_ROWS if rows is None else rows)
        write_yaml(tmp_path / "tasks" / "qa.yaml", {
            "name": "qa-test", "kind": "qa", "language": "en", "data_class": "public",
            "dataset": {"path": "../data/qa.jsonl", "fields": {"reference": "answer"}},
            "prompt": "{{ question }}", "choices": ["A", "B", "C", "D"], **(task or {})})
        write_yaml(tmp_path / "adapters" / "chat.yaml", {
            "name": "local-chat", "kind": "openai-chat",
            "settings": {"base_url": server.base_url, "model": "local-test-model", "api_key_env": "TEST_API_KEY"},
            "declarations": {"provider": "test", "data_clearance": "public",
                             "prices": {"input_per_million_tokens": 1.0, "output_per_million_tokens": 2.0}},
            **(adapter or {})})
        return write_yaml(tmp_path / "suite.yaml", {
            "name": "qa-suite", "tasks": ["tasks/qa.yaml"], "adapters": ["adapters/chat.yaml"],
            "concurrency": 4, "output_dir": "runs", **(suite or {})})

    return make


def only_run(run_root: Path) -> Path:
    runs = [p for p in run_root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own response cache outside the repository: a test must never
    leave answers (or latencies) that a later `make run` would serve from the cache."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def replay_run(tmp_path: Path) -> Path:
    """A small finished run (4 QA items answered by a replay: 3 right, 1 wrong) in tmp_path/src/run."""
    from harness import run_suite

    write_jsonl(tmp_path / "src" / "items.jsonl", [{"id": f"q{i}", "question": "?", "answer": "A"} for i in range(4)])
    (tmp_path / "src" / "out.csv").write_text("id,output\nq0,A\nq1,B\nq2,A\nq3,A\n", encoding="utf-8")
    write_yaml(tmp_path / "src" / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public",
                                                "prompt": "{{ question }}",
                                                "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "src" / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    suite = write_yaml(tmp_path / "src" / "suite.yaml", {"name": "s", "tasks": ["task.yaml"],
                                                         "adapters": ["replay.yaml"]})
    return run_suite(suite, quiet=True, out=tmp_path / "src" / "run").run_dir
