"""When the report's imports are made ahead (harness.runner._warm_imports): only while the run
waits on slow answers; never while answers arrive faster than the event loop can idle, nor in
a run answered from the cache, where the importing thread would only hold the GIL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import harness.runner as runner_module
from harness import run_suite
from harness.testing.openai_server import OpenAIServer


@pytest.fixture
def warm_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The real warm-up, counted."""
    monkeypatch.setenv("TEST_API_KEY", "k")
    calls: list[Any] = []
    real = runner_module._warm_imports

    def counted() -> Any:
        thread = real()
        calls.append(thread)
        return thread

    monkeypatch.setattr(runner_module, "_warm_imports", counted)
    return calls


def test_slow_answers_warm_the_report_imports_once_and_the_thread_is_joined(
        qa_suite: Callable[..., Path], server: OpenAIServer, warm_calls: list[Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server.latency_s = 0.05  # concurrency 4: an answer every 12.5 ms, above WARM_GAP_S
    monkeypatch.setattr(runner_module, "WARM_LEFT_S", 0.1)  # 12 answers: 0.15 s of them left
    result = run_suite(qa_suite(), out=tmp_path / "slow", quiet=True)
    assert result.scorecard["rows"]
    assert len(warm_calls) == 1
    assert not warm_calls[0].is_alive()  # joined before run_suite returned


def test_fast_and_cached_answers_do_not_warm(qa_suite: Callable[..., Path], warm_calls: list[Any],
                                             tmp_path: Path) -> None:
    suite = qa_suite()
    first = run_suite(suite, out=tmp_path / "fast", quiet=True)
    again = run_suite(suite, out=tmp_path / "cached", quiet=True)
    assert warm_calls == []
    # the figures do not depend on it: the report imports what it needs itself
    assert [r["value"] for r in first.scorecard["rows"] if r["metric"] == "accuracy"] == \
        [r["value"] for r in again.scorecard["rows"] if r["metric"] == "accuracy"] == [1.0]
    manifest = (tmp_path / "cached" / "manifest.json").read_text()
    assert '"hits": 12' in manifest


def test_a_replay_of_slow_recorded_answers_does_not_warm(warm_calls: list[Any], tmp_path: Path) -> None:
    """A replay never waits: the latencies in its export (here 2 s each, concurrency 64: a gap
    of 31 ms) were measured elsewhere, and its answers come as fast as they are read."""
    import json

    import yaml

    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"id": f"i{i}", "question": "Q?", "answer": "A"}) + "\n"
                                                  for i in range(20)))
    (tmp_path / "out.csv").write_text("id,output,latency\n" + "".join(f"i{i},A,2.0\n" for i in range(20)))
    (tmp_path / "task.yaml").write_text(yaml.safe_dump({
        "name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}", "choices": ["A", "B"],
        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}}))
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump({
        "name": "r", "kind": "replay", "settings": {"path": "out.csv", "latency_column": "latency"}}))
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"name": "s", "tasks": ["task.yaml"],
                                                         "adapters": ["replay.yaml"]}))
    result = run_suite(tmp_path / "suite.yaml", out=tmp_path / "run", quiet=True)
    assert [r["value"] for r in result.scorecard["rows"] if r["metric"] == "latency_s"] == [2.0]
    assert warm_calls == []


def test_a_short_run_is_not_warmed_and_its_latencies_are_the_systems(qa_suite: Callable[..., Path],
                                                                     server: OpenAIServer, tmp_path: Path) -> None:
    """The importing thread holds the GIL while answers wait to be read: 40 answers of a 50 ms
    server, 8 at a time, recorded a mean of 60.1 ms with it and 53.6 ms without (a bare loop:
    53.5). It starts only when enough answers remain for the few it delays to weigh little."""
    import json

    from conftest import run_cli, slowed_import

    server.latency_s = 0.05  # concurrency 4: an answer every 12.5 ms, above WARM_GAP_S
    suite = qa_suite(suite={"cache": False})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"),
                  # numpy's import holds the GIL a while: a C loop does not let the event loop in
                  env={"TEST_API_KEY": "k", **slowed_import(tmp_path / "hog", "numpy", "sum(range(100_000_000))")})
    assert res.returncode == 0, res.stderr
    latencies = [json.loads(line)["latency_s"] for line in (tmp_path / "run" / "responses.jsonl").open()]
    assert len(latencies) == 12 and max(latencies) < 0.25, latencies
