"""Issue 12 (Estimer): the correction burden (edit rate from an output to its professional
correction, the share used unchanged, the time to correct) and latency percentiles with the
cost per 1,000 items, from real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, write_jsonl, write_yaml

from harness.scoring.asr import edit_counts

ROWS = [
    {"id": "l1", "source": "Admitted for pneumonia, treated with amoxicillin.",
     "post_edit": "Patient admitted for pneumonia and treated with amoxicillin.", "correction_seconds": 40},
    {"id": "l2", "source": "Fall at home, no fracture.", "post_edit": "Fall at home without fracture.",
     "correction_seconds": 0},
    {"id": "l3", "source": "Heart failure, furosemide increased.",
     "post_edit": "Heart failure; furosemide increased to 80 mg.", "correction_seconds": 75},
]
OUTPUTS = {"l1": "Patient admitted for pneumonia, treated with amoxicillin.",
           "l2": "Fall at home without fracture.",
           "l3": "Heart failure, furosemide stopped."}


def test_post_edit_rate_unchanged_share_and_time(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", ROWS)
    (tmp_path / "out.csv").write_text("id,output\n" + "".join(f'{k},"{v}"\n' for k, v in OUTPUTS.items()),
                                      encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {"name": "letters", "kind": "generation", "data_class": "public",
                                        "prompt": "Write a discharge summary: {{ source }}",
                                        "dataset": {"path": "items.jsonl"}, "scorers": ["post_edit"]})
    write_yaml(tmp_path / "vendor.yaml", {"name": "vendor", "kind": "replay", "settings": {"path": "out.csv"}})
    write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["vendor.yaml"]})
    res = run_cli("run", str(tmp_path / "suite.yaml"), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    # independent count with the same word alignment on lowercased, punctuation-free words
    def words(text: str) -> list[str]:
        return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()
    edits = sum(sum(edit_counts(words(str(r["post_edit"])), words(OUTPUTS[str(r["id"])]))[:3]) for r in ROWS)
    total = sum(len(words(str(r["post_edit"]))) for r in ROWS)
    assert rows["post_edit_rate"]["value"] == pytest.approx(edits / total)
    assert rows["used_unchanged_rate"]["value"] == pytest.approx(1 / 3)
    assert rows["time_to_correct_s"]["value"] == pytest.approx(115 / 3) and rows["time_to_correct_s"]["n"] == 3


def test_a_task_without_corrections_is_refused_with_the_field(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "source": "x"}])
    (tmp_path / "out.csv").write_text("id,output\na,y\n", encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "generation", "data_class": "public",
                                        "prompt": "{{ source }}", "dataset": {"path": "items.jsonl"},
                                        "scorers": ["post_edit"]})
    write_yaml(tmp_path / "r.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["r.yaml"]})
    res = run_cli("validate", str(tmp_path / "suite.yaml"))
    assert res.returncode == 2 and "post_edit" in res.stderr and "required field" in res.stderr


def test_latency_percentiles_and_cost_per_thousand(qa_suite, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from harness.store import iter_jsonl

    server.latency_s = 0.01
    suite = qa_suite()
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "runs").iterdir())
    latencies = [r["latency_s"] for r in iter_jsonl(run / "responses.jsonl")]
    costs = [r["cost"] for r in iter_jsonl(run / "responses.jsonl")]
    card = json.loads((run / "scorecard.json").read_text())
    section = next(s for s in card["sections"] if s["title"] == "Latency and cost")
    data = section["data"]
    assert data["n"] == 12 and min(latencies) >= 0.01
    for q in (50, 95, 99):
        assert data[f"p{q}"]["value"] == pytest.approx(float(np.percentile(latencies, q)))
        assert data[f"p{q}"]["ci_low"] <= data[f"p{q}"]["value"]
    assert data["p50"]["value"] <= data["p50"]["ci_high"]
    # 12 responses cannot bound p95 or p99 from above at 95%: shown open, not invented
    assert data["p95"]["ci_high"] is None and data["p99"]["ci_high"] is None
    assert data["cost_per_1000_items"] == pytest.approx(1000 * sum(costs) / len(costs))
    assert "Latency and cost" in (run / "scorecard.md").read_text() or "Estimer (HAS 2.7)" in (
        run / "scorecard.md").read_text()


def test_courtesy_words_in_prompts_are_counted(qa_suite, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prompt = "Bonjour, merci de répondre s'il vous plaît. {{ question }} Thank you!"
    suite = qa_suite(task={"prompt": prompt, "scorers": ["exact_match", "politeness"]})
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "runs").iterdir())
    card = json.loads((run / "scorecard.json").read_text())
    row = next(r for r in card["rows"] if r["metric"] == "courtesy_word_share")
    # per prompt: bonjour, merci, s'il vous plaît (3), thank you (2) = 7 courtesy words
    sent = server.bodies[0]["messages"][-1]["content"]
    words = len(__import__("re").findall(r"\w+(?:'\w+)?", sent))
    assert row["value"] == pytest.approx(7 / words) and row["n"] == 12
    section = next(s for s in card["sections"] if s["scorer"] == "politeness")
    assert section["data"]["courtesy_words"] == 7 * 12


def test_every_system_is_set_against_current_practice(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "question": f"Q{i}", "answer": "A"} for i in range(40)]
    write_jsonl(tmp_path / "items.jsonl", rows)
    # professionals today: 30 of 40 right; the AI tool: 38 of 40 right, on the same items
    (tmp_path / "human.csv").write_text("id,output\n" + "".join(
        f"q{i},{'A' if i < 30 else 'B'}\n" for i in range(40)), encoding="utf-8")
    (tmp_path / "ai.csv").write_text("id,output\n" + "".join(
        f"q{i},{'A' if i < 38 else 'C'}\n" for i in range(40)), encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {"name": "qa", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "choices": ["A", "B", "C", "D"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "human.yaml", {"name": "pharmacists", "kind": "replay", "settings": {"path": "human.csv"},
                                         "declarations": {"provider": "ward pharmacists, no AI",
                                                          "current_practice": True}})
    write_yaml(tmp_path / "ai.yaml", {"name": "tool", "kind": "replay", "settings": {"path": "ai.csv"}})
    write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["human.yaml", "ai.yaml"]})
    res = run_cli("run", str(tmp_path / "suite.yaml"), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    (section,) = [s for s in card["sections"] if s["group"] == "Against current practice (HAS 3.3)"]
    assert section["adapter"] == "tool" and section["data"]["baseline"] == "pharmacists"
    acc = section["data"]["metrics"]["accuracy"]
    assert acc["difference"] == pytest.approx(38 / 40 - 30 / 40) and acc["n"] == 40
    assert acc["ci_low"] > 0 and acc["verdict"] == "better"
    md = (tmp_path / "run" / "scorecard.md").read_text()
    assert "Against current practice" in md and "| Current practice |" in md


def test_streaming_records_time_to_first_token_and_throughput(qa_suite, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server.latency_s = 0.02
    server.stream_delay_s = 0.03  # the default responder answers in a few words: TTFT < latency
    suite = qa_suite(adapter={"settings": {"base_url": server.base_url, "model": "local-test-model",
                                           "api_key_env": "TEST_API_KEY", "stream": True}})
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "runs").iterdir())
    responses = [json.loads(line) for line in (run / "responses.jsonl").open()]
    assert all(r["status"] == "ok" for r in responses) and all(b.get("stream") for b in server.bodies)
    for r in responses:
        assert 0.02 <= r["ttft_s"] < r["latency_s"]
        # 3 gaps of 30 ms between the 4 words: the first token came well before the last
        assert len(r["output"].split(" ")) == 4 and r["latency_s"] - r["ttft_s"] >= 0.05
        assert r["tokens_out"] == len(r["output"].split())  # usage from the stream's last chunk
    # the streamed answers are the non-streamed ones
    assert {r["output"] for r in responses} == {server.responder(b) for b in server.bodies}
    card = json.loads((run / "scorecard.json").read_text())
    section = next(s for s in card["sections"] if s["title"] == "Latency and cost")
    assert section["data"]["ttft_p50"]["value"] < section["data"]["p50"]["value"]
    assert section["data"]["tokens_per_s"] > 0
    assert next(r for r in card["rows"] if r["metric"] == "ttft_s")["n"] == 12


def test_run_prints_one_screen_by_default_and_markdown_on_request(qa_suite, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite = qa_suite(suite={"gates": [{"metric": "qa-test/accuracy", "min": 0.5}],
                            "objectives": [{"metric": "qa-test/accuracy", "success": ">= 0.5", "stop": "< 0.2"}]},
                     rows=[{"id": f"q{i}", "question": "ANSWER=A", "answer": "B"} for i in range(5)])
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    lines = res.stdout.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 100
    assert res.returncode == 1 and "Exit 1: 1 gate(s) failed" in res.stdout and "✘ FAIL" in res.stdout
    assert "Accuracy ↑" in res.stdout and "n = 5 ⚠" in res.stdout and "■ STOP" in res.stdout
    md = run_cli("run", str(suite), "--quiet", "--format", "md", env={"TEST_API_KEY": "k"})
    assert "| accuracy ↑ | local-chat |" in md.stdout and "run record:" in md.stdout
    bad = run_cli("run", str(suite), "--format", "pdf")
    assert bad.returncode == 2 and "--format" in bad.stderr
