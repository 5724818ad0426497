"""Replay, command and python adapters, failures mid-run, and third-party plugins."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, only_run, run_cli, write_jsonl, write_yaml

ROWS = [{"id": f"i{i}", "question": f"q{i}", "answer": "A"} for i in range(6)]


def _suite(tmp_path: Path, adapter: dict, rows: list[dict] | None = None, **suite) -> Path:
    write_jsonl(tmp_path / "items.jsonl", rows or ROWS)
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}},
                                        "prompt": "{{ question }}", "choices": ["A", "B", "C", "D"]})
    write_yaml(tmp_path / "adapter.yaml", {"name": "sut", **adapter})
    return write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"],
                                                "adapters": ["adapter.yaml"], **suite})


def _card(tmp_path: Path) -> dict:
    return json.loads((only_run(tmp_path / "runs") / "scorecard.json").read_text())


def _metric(card: dict, name: str) -> dict:
    return next(r for r in card["rows"] if r["metric"] == name)


def test_replay_filters_and_counts_missing(tmp_path: Path) -> None:
    (tmp_path / "out.csv").write_text(
        "id,model,answer,cost\n"
        "i0,v1,The answer is A,0.01\ni1,v1,B,0.01\ni2,v1,A,0.01\ni3,v1,,0.01\n"
        "i0,v2,B,0.02\ni1,v2,B,0.02\n007,v1,A,0\n", encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "replay", "settings": {
        "path": "out.csv", "output_column": "answer", "where": {"model": "v1"}, "cost_column": "cost",
        "model_column": "model"}})
    res = run_cli("run", str(suite), "--quiet")
    assert res.returncode == 0, res.stderr
    card = _card(tmp_path)
    # i3 has an empty output, i4 and i5 are absent: 3 missing of 6, never silently dropped
    assert _metric(card, "missing_rate")["value"] == 0.5 and _metric(card, "missing_rate")["n"] == 6
    assert _metric(card, "accuracy")["value"] == 2 / 3 and _metric(card, "accuracy")["n"] == 3
    assert _metric(card, "cost")["value"] == 0.01
    assert card["adapters"]["sut"]["provider_models"] == ["v1"]


def test_replay_unknown_column_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "out.csv").write_text("id,answer\ni0,A\n", encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "replay", "settings": {"path": "out.csv", "output_column": "anwser"}})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    assert "adapter.yaml" in res.stderr and "settings.output_column" in res.stderr and "'anwser'" in res.stderr


def test_command_adapter_stdin_timeout_and_failure(tmp_path: Path) -> None:
    script = tmp_path / "answer.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        q = sys.stdin.read()
        if q.strip() == "q1":
            time.sleep(5)
        if q.strip() == "q2":
            sys.exit("boom")
        print("Answer: A")
    """), encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "command", "settings": {
        "command": [sys.executable, str(script)], "timeout_s": 1}},
        adapters=[{"path": "adapter.yaml", "retry": {"max_attempts": 2, "initial_wait_s": 0}}])
    res = run_cli("run", str(suite), "--quiet")
    assert res.returncode == 0, res.stderr
    run_dir = only_run(tmp_path / "runs")
    responses = {json.loads(line)["item_id"]: json.loads(line) for line in (run_dir / "responses.jsonl").open()}
    assert responses["i1"]["status"] == "error" and "timed out" in responses["i1"]["error"]
    assert len(responses["i1"]["attempts"]) == 2  # a timeout is retried
    assert responses["i2"]["status"] == "error" and "boom" in responses["i2"]["error"]
    assert len(responses["i2"]["attempts"]) == 1  # a program failure is not
    card = _card(tmp_path)
    assert _metric(card, "error_rate")["value"] == 2 / 6
    assert _metric(card, "accuracy")["value"] == 1.0 and _metric(card, "accuracy")["n"] == 4


def test_command_adapter_keeps_credentials_from_the_program(tmp_path: Path) -> None:
    """The program under test gets the harness's environment less the variables whose names
    say they hold credentials (another adapter's API key, a Ray token, a password), unless
    `pass_env` names them; its own `env` is set."""
    script = tmp_path / "env.py"
    script.write_text(textwrap.dedent("""
        import json, os, sys
        sys.stdin.read()
        names = ("OPENAI_API_KEY", "RAY_AUTH_TOKEN", "PGPASSWORD", "VENDOR_TOKEN", "PATH", "TOKENIZERS_PARALLELISM",
                 "MODE")
        with open(sys.argv[1], "w") as fh:
            json.dump({n: n in os.environ for n in names}, fh)
        print("Answer: A")
    """), encoding="utf-8")
    secrets = {"OPENAI_API_KEY": "sk-other-adapter", "RAY_AUTH_TOKEN": "f" * 64, "PGPASSWORD": "pw",
               "VENDOR_TOKEN": "vt", "TOKENIZERS_PARALLELISM": "false"}
    seen = tmp_path / "seen.json"
    for pass_env, expected in (([], set()), (["VENDOR_*"], {"VENDOR_TOKEN"})):
        suite = _suite(tmp_path, {"kind": "command", "settings": {
            "command": [sys.executable, str(script), str(seen)], "env": {"MODE": "x"}, "pass_env": pass_env}},
            rows=ROWS[:1])
        res = run_cli("run", str(suite), "--quiet", "--no-cache", env=secrets)
        assert res.returncode == 0, res.stderr
        got = json.loads(seen.read_text())
        assert {n for n in ("OPENAI_API_KEY", "RAY_AUTH_TOKEN", "PGPASSWORD", "VENDOR_TOKEN") if got[n]} == expected
        assert got["PATH"] and got["TOKENIZERS_PARALLELISM"] and got["MODE"]
    # a credential written into `env` itself is not recorded
    suite = _suite(tmp_path, {"kind": "command", "settings": {
        "command": [sys.executable, str(script), str(seen)], "env": {"MODE": "x", "VENDOR_API_KEY": "sk-in-yaml"}}},
        rows=ROWS[:1])
    res = run_cli("run", str(suite), "--quiet", "--no-cache", "--out", str(tmp_path / "recorded"))
    assert res.returncode == 0, res.stderr
    settings = json.loads((tmp_path / "recorded" / "manifest.json").read_text())["adapters"]["sut"]["settings"]
    assert settings["env"] == {"MODE": "x", "VENDOR_API_KEY": "<redacted>"}
    assert not any("sk-in-yaml" in f.read_text(errors="replace") for f in (tmp_path / "recorded").rglob("*.*"))


def test_replay_of_an_openai_batch_output_reads_nested_fields(tmp_path: Path) -> None:
    """OpenAI's Batch API returns JSONL whose answer lies at response.body.choices.0.message.content
    and whose failures are in `error`: a dotted path reaches a nested field (a list index as a
    number), and `error_column` makes a failed request the item's error rather than missing."""
    out: list[dict[str, Any]] = []
    for i, row in enumerate(ROWS):
        if i == 4:
            out.append({"custom_id": row["id"], "response": None,
                        "error": {"code": "server_error", "message": "The server had an error"}})
            continue
        choices = [] if i == 5 else [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": f"The answer is {row['answer']}."}}]
        out.append({"id": f"batch_req_{i}", "custom_id": row["id"], "error": None, "response": {
            "status_code": 200, "body": {"model": "gpt-4o-mini-2024-07-18", "choices": choices,
                                         "usage": {"prompt_tokens": 12, "completion_tokens": 5}}}})
    (tmp_path / "batch_output.jsonl").write_text("".join(json.dumps(o) + "\n" for o in out), encoding="utf-8")
    settings = {"path": "batch_output.jsonl", "id_column": "custom_id", "error_column": "error.message",
                "output_column": "response.body.choices.0.message.content", "model_column": "response.body.model",
                "tokens_in_column": "response.body.usage.prompt_tokens"}
    suite = _suite(tmp_path, {"kind": "replay", "settings": settings})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    assert _metric(card, "accuracy")["value"] == 1.0 and _metric(card, "accuracy")["n"] == 4
    assert _metric(card, "error_rate")["value"] == 1 / 6 and _metric(card, "missing_rate")["value"] == 1 / 6
    recs = {json.loads(line)["item_id"]: json.loads(line)
            for line in (tmp_path / "run" / "responses.jsonl").read_text().splitlines()}
    assert recs["i0"]["tokens_in"] == 12 and recs["i0"]["model_id"] == "gpt-4o-mini-2024-07-18"
    assert recs["i4"]["error"] == "error.message: The server had an error"
    suite = _suite(tmp_path, {"kind": "replay", "settings": {**settings, "output_column": "response.body.text"}})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    assert ("settings.output_column: column not in the replay file; expected one of: custom_id, error, id, response "
            "(or a dotted path into their fields), found 'response.body.text'") in res.stderr, res.stderr


@pytest.mark.parametrize("who_times_out", ["command", "run"])
def test_a_timed_out_command_takes_the_processes_it_started_with_it(tmp_path: Path, who_times_out: str) -> None:
    """A wrapper script's child (the model it starts) kept the output pipe open when the script
    was killed: the item waited for the child to end (37 s for a 1 s timeout), and the child
    lived on after the run."""
    marker = f"{41 + (who_times_out == 'run')}.{os.getpid() % 1000}"
    command = {"command": ["sh", "-c", f"sleep {marker}; echo A"],
               "timeout_s": 0.5 if who_times_out == "command" else 60}
    suite = _suite(tmp_path, {"kind": "command", "settings": command}, rows=ROWS[:2],
                   adapters=[{"path": "adapter.yaml", "retry": {"max_attempts": 1},
                              **({"timeout_s": 0.5} if who_times_out == "run" else {})}])
    start = time.perf_counter()
    res = run_cli("run", str(suite), "--quiet", "--no-cache", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    assert time.perf_counter() - start < 20
    recs = [json.loads(line) for line in (tmp_path / "run" / "responses.jsonl").read_text().splitlines()]
    assert [r["status"] for r in recs] == ["error", "error"]
    assert all(r["attempts"][0]["elapsed_s"] < 3 for r in recs), recs
    alive = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):  # a process that ends while it is read
            if marker.encode() in (proc / "cmdline").read_bytes():
                alive.append(proc.name)
    assert alive == []


def test_python_adapter_sync_and_async(tmp_path: Path) -> None:
    (tmp_path / "sut.py").write_text(textwrap.dedent("""
        import asyncio
        def answer(request, letter="A"):
            if request.item_id == "i5":
                raise ValueError("cannot answer")
            return f"The answer is {letter}"
        async def answer_async(request):
            await asyncio.sleep(0)
            return {"output": "B", "tokens_out": 1}
    """), encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "python", "settings": {"callable": "sut:answer", "path": ["."],
                                                             "kwargs": {"letter": "A"}}})
    assert run_cli("run", str(suite), "--quiet").returncode == 0
    card = _card(tmp_path)
    assert _metric(card, "accuracy")["value"] == 1.0 and _metric(card, "error_rate")["value"] == 1 / 6

    async_dir = tmp_path / "async"
    async_dir.mkdir()
    (async_dir / "sut.py").write_text((tmp_path / "sut.py").read_text(), encoding="utf-8")
    suite = _suite(async_dir, {"kind": "python", "settings": {"callable": "sut.answer_async", "path": ["."]}})
    assert run_cli("run", str(suite), "--quiet").returncode == 0
    card = _card(async_dir)
    assert _metric(card, "accuracy")["value"] == 0.0 and _metric(card, "tokens_out")["value"] == 1.0


def test_python_adapter_dict_with_its_own_latency_or_an_unknown_field(tmp_path: Path) -> None:
    """A callable timing its model itself returned {"output": ..., "latency_s": ...}: every
    item was an error ("got multiple values for keyword argument 'latency_s'")."""
    (tmp_path / "sut.py").write_text(textwrap.dedent("""
        def answer(request):
            if request.item_id == "i5":
                return {"text": "B"}
            return {"output": "B", "latency_s": 0.25, "tokens_out": 3}
    """), encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "python", "settings": {"callable": "sut:answer", "path": ["."]}})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    assert _metric(card, "latency_s")["value"] == 0.25 and _metric(card, "error_rate")["value"] == 1 / 6
    errors = [json.loads(line)["error"] for line in (tmp_path / "run" / "responses.jsonl").read_text().splitlines()]
    assert [e for e in errors if e] == ["the callable returned unknown field(s) 'text'; expected some of: "
                                        "audio_seconds, cost, energy_wh, error, gwp_g, latency_s, missing, model_id, "
                                        "output, segments, system_fingerprint, tokens_in, tokens_out, ttft_s"]


def test_python_adapter_returning_none_or_bad_figures_costs_that_item_not_the_run(tmp_path: Path) -> None:
    """A callable returning None was an "ok" item without an answer, left out of accuracy's n;
    one giving `tokens_in: "x"` stopped the whole run (a TypeError in the rate limiter); bytes
    or a list were scored as their repr ("b'B'"), wrong without a word."""
    (tmp_path / "sut.py").write_text(textwrap.dedent("""
        def answer(request):
            return {"i0": None, "i1": {"output": "B", "tokens_in": "x", "latency_s": -3}, "i2": b"B",
                    "i3": {"output": ["B"]}}.get(request.item_id, "B")
    """), encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "python", "settings": {"callable": "sut:answer", "path": ["."]}})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    recs = {r["item_id"]: r for r in map(json.loads, (tmp_path / "run" / "responses.jsonl").read_text().splitlines())}
    assert recs["i0"]["status"] == "error" and "returned no answer (None)" in recs["i0"]["error"]
    assert recs["i1"]["status"] == "ok" and recs["i1"]["tokens_in"] is None and recs["i1"]["latency_s"] is None
    assert recs["i2"]["error"] == "the callable returned bytes b'B'; expected the answer as a str (or a dict whose " \
        "'output' is one)" and recs["i3"]["error"].startswith("the callable returned list ['B']")
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    assert _metric(card, "error_rate")["value"] == 3 / 6 and _metric(card, "accuracy")["n"] == 3


def test_the_run_hides_what_it_started_with_from_the_collector(tmp_path: Path) -> None:
    """faster-whisper asks for a full collection per audio file: during the run, what existed
    before it (modules, suite, items, models) is frozen out of that scan; given back after."""
    import gc

    from harness import run_suite

    (tmp_path / "sut.py").write_text("import gc\n"
                                     "def answer(request):\n"
                                     "    return 'A' if gc.get_freeze_count() > 1000 else 'B'\n", encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "python", "settings": {"callable": "sut:answer", "path": ["."]}})
    before = gc.get_freeze_count()
    result = run_suite(suite, quiet=True)
    assert _metric(result.scorecard, "accuracy")["value"] == 1.0
    assert gc.get_freeze_count() == before


def test_python_adapter_import_error_is_a_config_error(tmp_path: Path) -> None:
    suite = _suite(tmp_path, {"kind": "python", "settings": {"callable": "no_such_module:f"}})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "settings.callable" in res.stderr and "no_such_module" in res.stderr


def test_missing_model_is_a_config_error(tmp_path: Path) -> None:
    suite = _suite(tmp_path, {"kind": "faster-whisper", "settings": {"model": "/nonexistent"}})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "settings.model" in res.stderr and "not available offline" in res.stderr


def test_adapter_that_cannot_start_exits_3(tmp_path: Path) -> None:
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"not a CTranslate2 model")
    write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "audio": "a.ogg", "text": "x"}])
    (tmp_path / "a.ogg").write_bytes((ROOT / "tasks/dictation-en/audio/dict-001.ogg").read_bytes())
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "asr.yaml", {"name": "asr", "kind": "faster-whisper", "settings": {"model": str(model)}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["asr.yaml"]})
    res = run_cli("run", str(suite), "--quiet")
    assert res.returncode == 3, res.stderr
    assert "adapter 'asr' could not start" in res.stderr
    manifest = json.loads((only_run(tmp_path / "runs") / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_whisper_workers_transcribe_in_parallel_with_the_same_transcripts(tmp_path: Path) -> None:
    """Issue 14, point 4: `num_workers` CTranslate2 replicas share the cores and transcribe at
    once; the transcripts are those of one model."""
    rows = [{"id": f"d{i}", "audio": f"dict-00{i}.ogg", "text": "x"} for i in range(1, 7)]
    write_jsonl(tmp_path / "items.jsonl", rows)
    for row in rows:
        (tmp_path / row["audio"]).write_bytes((ROOT / "tasks/dictation-en/audio" / row["audio"]).read_bytes())
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    outputs = {}
    for workers in (1, 2):
        write_yaml(tmp_path / "asr.yaml", {"name": "asr", "kind": "faster-whisper",
                                           "settings": {"model": "tiny.en", "num_workers": workers}})
        suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["asr.yaml"],
                                                     "cache": False})
        res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / f"run{workers}"))
        assert res.returncode == 0, res.stderr
        lines = [json.loads(line) for line in (tmp_path / f"run{workers}" / "responses.jsonl").open()]
        outputs[workers] = {r["item_id"]: r["output"] for r in lines}
        if workers == 2:  # two transcriptions overlapped in time: both replicas worked
            spans = sorted((datetime.fromisoformat(r["time"]).timestamp() - r["latency_s"],
                            datetime.fromisoformat(r["time"]).timestamp()) for r in lines)
            assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))
    assert outputs[1] == outputs[2] and all(outputs[1].values())


def test_third_party_adapter_through_entry_point(tmp_path: Path) -> None:
    pkg = tmp_path / "plugin"
    (pkg / "harness_plugin_upper").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "harness-plugin-upper"
        version = "0.0.1"
        [project.entry-points."harness.adapters"]
        always-b = "harness_plugin_upper:AlwaysB"
    """), encoding="utf-8")
    (pkg / "harness_plugin_upper" / "__init__.py").write_text(textwrap.dedent("""
        from harness.adapters import Adapter
        from harness.types import Response

        class AlwaysB(Adapter):
            modalities = frozenset({"text"})
            async def generate(self, request):
                return Response(output="B", model_id="plugin-b")
    """), encoding="utf-8")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(pkg)], check=True, capture_output=True)
    suite = _suite(tmp_path, {"kind": "always-b"})
    res = run_cli("run", str(suite), "--quiet", env={"PYTHONPATH": f"{target}:{ROOT}"})
    assert res.returncode == 0, res.stderr
    card = _card(tmp_path)
    assert _metric(card, "accuracy")["value"] == 0.0 and card["adapters"]["sut"]["provider_models"] == ["plugin-b"]


def test_replay_index_finds_the_last_row_of_each_id_even_when_every_hash_collides(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """The export is indexed by hashes (16 bytes a row); a hash match is checked against the
    row's id and task, so colliding keys never swap answers. Here every key hashes alike."""
    from harness import run_suite
    from harness.adapters import replay

    (tmp_path / "out.csv").write_text(
        "id,task,answer\ni0,t,A\ni1,t,A\ni0,t,A\ni2,other,B\ni3,t,C\ni2,t,D\n", encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "replay", "settings": {"path": "out.csv", "output_column": "answer",
                                                             "task_column": "task"}})
    for key_hash in (hash, lambda key: 7):
        monkeypatch.setattr(replay, "_key_hash", key_hash)
        index = replay._RowIndex(*(__import__("pyarrow").array(c) for c in (
            ["i0", "i1", "i0", "i2", "i3", "i3", "i2"], ["t", "t", "t", "other", "t", "t", "t"])))
        assert [index.get(i, "t") for i in ("i0", "i1", "i2", "i3", "i4")] == [2, 1, 6, 5, None]
        assert index.get("i2", "other") == 3 and index.get("i1", "other") is None
    run = run_suite(suite, quiet=True, out=tmp_path / "run").run_dir  # every key still colliding
    outputs = {json.loads(line)["item_id"]: json.loads(line).get("output")
               for line in (run / "responses.jsonl").read_text().splitlines()}
    assert outputs == {"i0": "A", "i1": "A", "i2": "D", "i3": "C", "i4": None, "i5": None}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_replay_export_with_a_line_longer_than_a_block(tmp_path: Path, fmt: str) -> None:
    """Arrow's readers work in 1 MB blocks and refused a longer line (a long transcript, with
    its line breaks and quotes) with "straddling object"; the export is read again with
    blocks that hold it."""
    import csv

    long_answer = 'Le patient décrit ses "symptômes",\nsur plusieurs lignes. ' * 50_000 + "The answer is A"
    assert len(long_answer) > 2 * 2**20
    rows = [{"id": f"i{i}", "answer": long_answer if i == 2 else "The answer is A"} for i in range(6)]
    if fmt == "jsonl":
        write_jsonl(tmp_path / "out.jsonl", rows)
    else:
        with (tmp_path / "out.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, ["id", "answer"])
            writer.writeheader()
            writer.writerows(rows)
    suite = _suite(tmp_path, {"kind": "replay", "settings": {"path": f"out.{fmt}", "output_column": "answer"}})
    res = run_cli("run", str(suite), "--quiet")
    assert res.returncode == 0, res.stderr
    outputs = {r["item_id"]: r["output"] for r in map(json.loads, (only_run(tmp_path / "runs") / "responses.jsonl")
                                                       .read_text(encoding="utf-8").splitlines())}
    assert outputs["i2"] == long_answer.strip() and _metric(_card(tmp_path), "accuracy")["value"] == 1.0


def test_an_answer_with_a_lone_surrogate_is_kept_mended(tmp_path: Path) -> None:
    """A provider's JSON may escape a lone surrogate ("\\ud800"), a Python callable may return
    one: UTF-8 cannot hold it, and the item used to be an error ("recording failed") that lost
    the answer. It is recorded with U+FFFD in its place, and scored."""
    (tmp_path / "sut.py").write_text(textwrap.dedent("""
        def answer(request):
            return "The answer is A \\ud800, nul \\x00" if request.item_id == "i1" else "The answer is A"
    """), encoding="utf-8")
    suite = _suite(tmp_path, {"kind": "python", "settings": {"callable": "sut:answer", "path": ["."]}})
    res = run_cli("run", str(suite), "--quiet", "--no-cache")
    assert res.returncode == 0, res.stderr
    run_dir = only_run(tmp_path / "runs")
    responses = {r["item_id"]: r for r in map(json.loads, (run_dir / "responses.jsonl").read_text().splitlines())}
    assert responses["i1"]["status"] == "ok" and responses["i1"]["output"] == "The answer is A \ufffd, nul \x00"
    assert _metric(_card(tmp_path), "accuracy")["value"] == 1.0 and _metric(_card(tmp_path), "error_rate")["value"] == 0
