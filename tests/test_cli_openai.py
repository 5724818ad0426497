"""The real CLI against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QA_ROWS, ROOT, SENTINEL_KEY, only_run, run_cli, slowed_import, write_jsonl, write_yaml


def test_chat_run_records_everything_and_leaks_no_key(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": SENTINEL_KEY})
    assert res.returncode == 0, res.stderr
    assert server.count("chat") == 12
    assert server.auth_headers == [f"Bearer {SENTINEL_KEY}"] * 12
    run_dir = only_run(tmp_path / "runs")
    responses = [json.loads(line) for line in (run_dir / "responses.jsonl").read_text().splitlines()]
    assert len(responses) == 12
    first = responses[0]
    assert first["model_id"] == "local-test-model" and first["system_fingerprint"] == "fp_local_1"
    assert first["tokens_in"] > 0 and first["tokens_out"] == 4 and first["latency_s"] > 0
    assert first["cost"] > 0
    card = json.loads((run_dir / "scorecard.json").read_text())
    acc = next(r for r in card["rows"] if r["metric"] == "accuracy")
    assert acc["value"] == 1.0 and acc["n"] == 12 and acc["ci_low"] < 1.0
    assert card["adapters"]["local-chat"]["provider_models"] == ["local-test-model (fp_local_1)"]
    # The key is in the environment and in the server's log, never in the record.
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SENTINEL_KEY not in path.read_text(encoding="utf-8", errors="replace"), path
    assert SENTINEL_KEY not in res.stdout + res.stderr


def test_seeds_and_repeats_are_recorded(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite(suite={"repeats": 3, "seed": 7})
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    assert server.count("chat") == 36
    seeds = {b["seed"] for b in server.bodies}
    assert seeds == {7 * 1_000_003, 7 * 1_000_003 + 1, 7 * 1_000_003 + 2}
    card = json.loads((only_run(tmp_path / "runs") / "scorecard.json").read_text())
    acc = next(r for r in card["rows"] if r["metric"] == "accuracy")
    # repeats of one item are resampled together
    assert acc["n"] == 36 and acc["clusters"] == 12


def test_transcription_endpoint(tmp_path: Path, server) -> None:
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    for name, source in (("a.ogg", "dict-001.ogg"), ("b.ogg", "dict-002.ogg")):
        (audio_dir / name).write_bytes((ROOT / "tasks/dictation-en/audio" / source).read_bytes())
    server.transcripts = {"a.ogg": "give five milligrams", "b.ogg": "left knee pain"}
    # b's path as a sheet made on Windows writes it: it was "audio file not found"
    write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "audio": "audio/a.ogg", "text": "Give 5 mg."},
                                           {"id": "b", "audio": "audio\\b.ogg", "text": "Right knee pain."}])
    write_yaml(tmp_path / "task.yaml", {"name": "dict", "kind": "transcription", "data_class": "health",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "stt.yaml", {"name": "stt", "kind": "openai-transcription",
                                       "settings": {"base_url": server.base_url, "model": "whisper-1"},
                                       "declarations": {"data_clearance": "health"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["stt.yaml"]})
    res = run_cli("run", str(suite), "--quiet")
    assert res.returncode == 0, res.stderr
    assert server.count("transcription") == 2
    assert sorted(b["filename"] for b in server.bodies) == ["a.ogg", "b.ogg"]
    card = json.loads((only_run(tmp_path / "runs") / "scorecard.json").read_text())
    wer = next(r for r in card["rows"] if r["metric"] == "wer")
    # "five milligrams" normalizes to "5 mg": only right → left is an error, 1 of 6 words
    assert wer["value"] == 1 / 6 and wer["n"] == 2


def test_gate_failure_exits_1(qa_suite, server) -> None:
    suite = qa_suite(suite={"gates": [{"metric": "qa-test/accuracy", "min": 0.5}]},
                     rows=[{"id": f"q{i}", "question": "ANSWER=A", "answer": "B"} for i in range(5)])
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL" in res.stdout and "1 gate(s) failed" in res.stderr


def test_report_recomputes_the_scorecard(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    assert run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"}).returncode == 0
    run_dir = only_run(tmp_path / "runs")
    original = json.loads((run_dir / "scorecard.json").read_text())
    (run_dir / "scorecard.json").unlink()
    res = run_cli("report", str(run_dir), "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == original
    md = run_cli("report", str(run_dir))
    assert "| accuracy ↑ | local-chat | 1 |" in md.stdout


def test_a_run_answered_from_the_cache_never_imports_the_http_client(qa_suite, server, tmp_path: Path) -> None:
    """aiohttp costs ~0.15 s at import (it reads the system's certificates): imported with the
    first request, so that a rerun answered from the cache, and `harness validate`, skip it.
    In fresh interpreters: the first run sends (and imports it), the second sends nothing."""
    suite = qa_suite()
    code = ("import sys\n"
            "from harness import run_suite\n"
            "run_suite(sys.argv[1], quiet=True, out=sys.argv[2])\n"
            "print('aiohttp' in sys.modules)\n")
    sent = []
    for out in ("first", "again"):
        res = subprocess.run([sys.executable, "-c", code, str(suite), str(tmp_path / out)], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "TEST_API_KEY": "sk-test-cache"})
        assert res.returncode == 0, res.stderr[-2000:]
        sent.append(res.stdout.strip())
    assert sent == ["True", "False"]
    assert len(server.bodies) == len(QA_ROWS)
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert manifest["cache"]["hits"] == len(QA_ROWS) and manifest["requests_sent"] == 0


@pytest.mark.parametrize("stream", [False, True, "transcription"])
def test_the_http_clients_import_is_not_the_systems_latency(qa_suite, server, tmp_path: Path, stream) -> None:
    """The first request of a run imported aiohttp inside its timer (~0.15 s, made 1 s here):
    the first of 40 answers from a 50 ms server read 165-247 ms, a mean over the run of 62-71 ms
    instead of ~52, in a figure committees compare."""
    if stream == "transcription":
        (tmp_path / "a.ogg").write_bytes((ROOT / "tasks/dictation-en/audio/dict-001.ogg").read_bytes())
        write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "audio": "a.ogg", "text": "hello world"}])
        write_yaml(tmp_path / "task.yaml", {"name": "dict", "kind": "transcription", "data_class": "public",
                                            "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
        write_yaml(tmp_path / "stt.yaml", {"name": "stt", "kind": "openai-transcription",
                                           "settings": {"base_url": server.base_url, "model": "whisper-1"}})
        suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["stt.yaml"],
                                                     "cache": False})
    else:
        suite = qa_suite(adapter={"settings": {"base_url": server.base_url, "model": "local-test-model",
                                               "api_key_env": "TEST_API_KEY", "stream": stream}},
                         suite={"cache": False})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"),
                  env={"TEST_API_KEY": "k", **slowed_import(tmp_path / "slow", "aiohttp", "time.sleep(1.0)")})
    assert res.returncode == 0, res.stderr
    latencies = [json.loads(line)["latency_s"] for line in (tmp_path / "run" / "responses.jsonl").open()]
    assert latencies and max(latencies) < 0.5, latencies  # the server answers at once


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_given_as_content_parts_is_its_text_not_its_thinking(qa_suite, server, tmp_path: Path,
                                                                       stream: bool) -> None:
    """Reasoning models on some compatible APIs answer `content` as a list of parts (thinking,
    then text): the list failed every item; the thinking ("might be D") must not be scored."""
    server.content_parts = True
    suite = qa_suite(adapter={"settings": {"base_url": server.base_url, "model": "m", "api_key_env": "TEST_API_KEY",
                                           "stream": stream}})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"), env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    outputs = [json.loads(line)["output"] for line in (tmp_path / "run" / "responses.jsonl").read_text().splitlines()]
    assert sorted(outputs) == sorted(f"The answer is {'ABCD'[i % 4]}." for i in range(12))
    acc = next(r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]
               if r["metric"] == "accuracy")
    assert acc["value"] == 1.0 and acc["n"] == 12


@pytest.mark.parametrize("stream", [False, True])
def test_a_thinking_block_before_the_answer_is_not_scored(qa_suite, server, tmp_path: Path, stream: bool) -> None:
    """Qwen3 or a DeepSeek-R1 distill served by vLLM without a reasoning parser writes
    '<think>…</think>' before its answer: its "The answer is D?" was read with the answer. An answer
    that is all thinking (cut by max_tokens) is an error that says so."""
    from harness.testing.openai_server import default_chat_responder

    def thinking(body: dict) -> str:
        if "Question 11?" in body["messages"][-1]["content"]:
            return "<think>\nThe answer might be D, or"
        return "<think>\nThe answer is D? Let me check the doses.\n</think>\n\n" + default_chat_responder(body)

    server.responder = thinking
    server.stream_delay_s = 0.04  # between words: the thinking's 9 words come before the answer
    settings = {"base_url": server.base_url, "model": "m", "api_key_env": "TEST_API_KEY", "stream": stream}
    for mode in ("strip", "keep"):
        suite = qa_suite(adapter={"settings": {**settings, "thinking": mode}})
        res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / mode), env={"TEST_API_KEY": "k"})
        assert res.returncode == 0, res.stderr
        rows = {r["metric"]: r for r in json.loads((tmp_path / mode / "scorecard.json").read_text())["rows"]}
        recs = {json.loads(line)["item_id"]: json.loads(line)
                for line in (tmp_path / mode / "responses.jsonl").read_text().splitlines()}
        if mode == "strip":
            assert rows["accuracy"]["value"] == 1.0 and rows["accuracy"]["n"] == 11
            assert recs["q1"]["output"] == "The answer is B."
            assert recs["q11"]["error"] == "the answer is all thinking: no closing tag (raise max_tokens?)"
        else:
            assert recs["q1"]["output"].startswith("<think>") and recs["q11"]["status"] == "ok"
            assert rows["accuracy"]["value"] < 0.5  # "is D?" and "is B" together: no single answer
        if stream and mode == "strip":  # the time to first token is the answer's, after the 8 words' sleeps
            assert recs["q1"]["ttft_s"] >= 8 * 0.04, recs["q1"]
        elif stream:  # the thinking's first word, 11 sleeps (0.44 s) before the last word of the answer
            assert recs["q1"]["latency_s"] - recs["q1"]["ttft_s"] > 0.2, recs["q1"]


def test_an_endpoint_that_refuses_the_seed_field(qa_suite, server, tmp_path: Path) -> None:
    """Mistral models on Azure AI Foundry refuse `seed` (422 extra_forbidden), and the seed was
    always sent: every item failed, with no setting to leave it out."""
    server.forbidden_fields = {"seed"}
    settings = {"base_url": server.base_url, "model": "m", "api_key_env": "TEST_API_KEY"}
    res = run_cli("run", str(qa_suite(adapter={"settings": settings})), "--quiet", "--out", str(tmp_path / "a"),
                  env={"TEST_API_KEY": "k"})
    first = json.loads((tmp_path / "a" / "responses.jsonl").read_text().splitlines()[0])
    assert first["status"] == "error" and "extra_forbidden" in first["error"], first
    res = run_cli("run", str(qa_suite(adapter={"settings": {**settings, "send_seed": False}})), "--quiet",
                  "--out", str(tmp_path / "b"), env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    acc = next(r for r in json.loads((tmp_path / "b" / "scorecard.json").read_text())["rows"]
               if r["metric"] == "accuracy")
    assert acc["value"] == 1.0 and acc["n"] == 12
    assert not any("seed" in body for body in server.bodies[-12:])
