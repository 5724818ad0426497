"""A recorded latency is the system's: nothing the harness does on the event loop while
answers are in flight may lengthen it (an answer that arrives waits until the loop is free)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import write_jsonl, write_yaml

from harness.store import iter_jsonl
from harness.testing.openai_server import OpenAIServer

SLOW_SCORER = textwrap.dedent("""
    from harness.scoring import MetricSpec, Scorer, register_scorer
    from harness.types import Score

    @register_scorer("slow_cpu")
    class SlowCPU(Scorer):
        kinds = frozenset({"qa"})
        metrics = (MetricSpec("slow_cpu", "mean", "slow_cpu"),)
        cpu_bound = True
        def score_text(self, item, output):
            sum(range(10_000_000))  # C: holds the GIL, as a heavy scorer's inner loop does
            return Score({"slow_cpu": float(len(output) > 0)})
""")


def _suite(tmp_path: Path, server: OpenAIServer) -> Path:
    (tmp_path / "slow_plugin.py").write_text(SLOW_SCORER, encoding="utf-8")
    write_jsonl(tmp_path / "items.jsonl", [{"id": f"q{i}", "question": f"Q {i}? ANSWER=A", "answer": "A"}
                                           for i in range(8)])
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "choices": ["A", "B"], "scorers": ["exact_match", "slow_cpu"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "chat.yaml", {"name": "chat", "kind": "openai-chat",
                                        "settings": {"base_url": server.base_url, "model": "m"}})
    return write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["chat.yaml"],
                                                "concurrency": 4, "cache": False})


def _records(path: Path) -> list[dict]:
    return list(iter_jsonl(path))  # none while the file is missing; a half-written last line skipped


def _cli(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """The CLI in a fresh process that has the slow scorer registered."""
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import slow_plugin; "
            "from harness.cli import main; sys.argv = ['harness', *sys.argv[1:]]; main()")
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_cpu_bound_scoring_waits_until_the_answers_are_in(server: OpenAIServer, tmp_path: Path) -> None:
    """Scored on the event loop as each answer came, a CPU-bound scorer made the answers that
    arrived meanwhile wait: 48 transcriptions of a 50 ms server, 8 at a time, recorded a mean
    of 62.8 ms with wer, cer, drug_names and doses against 58.9 ms with wer alone. Below the
    scoring pool's threshold, such scorers now run once the answers are in."""
    server.latency_s = 0.05
    proc = _cli(tmp_path, "run", str(_suite(tmp_path, server)), "--quiet", "--out", str(tmp_path / "run"))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    latencies = [r["latency_s"] for r in _records(tmp_path / "run" / "responses.jsonl")]
    assert len(latencies) == 8 and max(latencies) < 0.15, latencies
    scores = _records(tmp_path / "run" / "scores.jsonl")
    assert sorted(s["item_id"] for s in scores) == [f"q{i}" for i in range(8)]
    assert all(s["values"]["slow_cpu"] == 1.0 and s["values"]["correct"] == 1 and s["values"]["scoring_error"] == 0
               for s in scores), scores


def test_a_run_stopped_before_its_waiting_scores_resumes_them_without_asking_again(
        server: OpenAIServer, tmp_path: Path) -> None:
    suite, run_dir = _suite(tmp_path, server), tmp_path / "run"
    proc = _cli(tmp_path, "run", str(suite), "--quiet", "--out", str(run_dir))
    deadline = time.monotonic() + 60
    while len(_records(run_dir / "responses.jsonl")) < 8 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)  # while the slow scorer works through the answers
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert len(_records(run_dir / "scores.jsonl")) < 8
    resumed = _cli(tmp_path, "run", str(suite), "--quiet", "--resume", str(run_dir))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    scores = _records(run_dir / "scores.jsonl")
    assert sorted(s["item_id"] for s in scores) == [f"q{i}" for i in range(8)]
    assert all(s["values"]["slow_cpu"] == 1.0 for s in scores)
    assert server.count("chat") == 8  # the answers were kept: none was asked again
