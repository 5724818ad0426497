"""Issue 4: retries, rate limits, cache, resume and shards, against the real local server
with injected faults. Request counts are checked exactly against the retry policy."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, write_jsonl, write_yaml

from harness import run_suite
from harness.adapters.http import parse_retry_after
from harness.store import iter_jsonl
from harness.testing.openai_server import OpenAIServer

FAST_RETRY = {"max_attempts": 4, "initial_wait_s": 0.01, "max_wait_s": 0.05, "max_total_wait_s": 5, "jitter": 0.1}


def make_suite(tmp_path: Path, server: OpenAIServer, n: int, *, ref: dict | None = None, task: dict | None = None,
               suite: dict | None = None, rows: list[dict] | None = None) -> Path:
    write_jsonl(tmp_path / "items.jsonl", rows or [
        {"id": f"i{i:04d}", "question": f"Item {i:04d}. ANSWER={'ABCD'[i % 4]}", "answer": "ABCD"[i % 4]}
        for i in range(n)])
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "choices": ["A", "B", "C", "D"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}},
                                        **(task or {})})
    write_yaml(tmp_path / "chat.yaml", {"name": "chat", "kind": "openai-chat",
                                        "settings": {"base_url": server.base_url, "model": "m", "temperature": 0}})
    return write_yaml(tmp_path / "suite.yaml", {
        "name": "resilience", "tasks": ["task.yaml"], "concurrency": 8, "timeout_s": 0.5,
        "adapters": [{"path": "chat.yaml", "retry": FAST_RETRY, **(ref or {})}], **(suite or {})})


def responses(run_dir: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for rec in iter_jsonl(run_dir / "responses.jsonl"):
        assert rec["item_id"] not in out, f"duplicated {rec['item_id']}"
        out[rec["item_id"]] = rec
    return out


def rows(card: dict) -> list[tuple]:
    return [(r["task"], r["adapter"], r["metric"], r["value"], r["ci_low"], r["ci_high"], r["n"])
            for r in card["rows"] if r["metric"] not in ("latency_s", "tokens_per_s", "ttft_s")]


@pytest.mark.parametrize(("mode", "retried"), [
    ("429", True), ("429-date", True), ("500", True), ("502", True), ("503", True), ("reset", True),
    ("slow", True), ("malformed", True), ("truncated", True), ("empty_choices", True), ("400", False)])
def test_each_fault_once_per_item(tmp_path: Path, mode: str, retried: bool) -> None:
    n = 12
    with OpenAIServer() as server:
        server.slow_s = 1.0
        server.fault = lambda key, attempt: mode if attempt == 1 else None
        result = run_suite(make_suite(tmp_path, server, n, suite={"cache": False}), quiet=True)
        assert server.count("chat") == (2 * n if retried else n)
    recs = responses(result.run_dir)
    assert len(recs) == n
    for rec in recs.values():
        if retried:
            assert rec["status"] == "ok", rec
            assert [a["attempt"] for a in rec["attempts"]] == [1, 2]
            assert rec["attempts"][0]["error"] and rec["attempts"][1]["status"] == 200
        else:
            assert rec["status"] == "error" and len(rec["attempts"]) == 1 and rec["attempts"][0]["status"] == 400
    error_rate = next(r for r in result.scorecard["rows"] if r["metric"] == "error_rate")
    assert error_rate["value"] == (0.0 if retried else 1.0) and error_rate["n"] == n


@pytest.mark.parametrize("stream", [False, True])
def test_a_redirect_is_not_followed_to_another_host(tmp_path: Path, stream: bool) -> None:
    """A 307 from the declared endpoint made aiohttp resend the prompt, patient data and all,
    to the host it named, a host no one cleared: now it is the item's error, not retried."""
    with OpenAIServer() as server, OpenAIServer() as elsewhere:
        server.redirect_to = elsewhere.base_url.rsplit("/v1", 1)[0]
        server.fault = lambda key, attempt: "redirect" if key.startswith("Item 0001") else None
        suite = make_suite(tmp_path, server, 4, suite={"cache": False})
        chat = yaml.safe_load((tmp_path / "chat.yaml").read_text())
        write_yaml(tmp_path / "chat.yaml", {**chat, "settings": {**chat["settings"], "stream": stream}})
        result = run_suite(suite, quiet=True)
        assert elsewhere.count("chat") == 0 and server.count("chat") == 4
    recs = responses(result.run_dir)
    assert recs["i0001"]["status"] == "error" and len(recs["i0001"]["attempts"]) == 1
    assert recs["i0001"]["error"].startswith(f"HTTP 307: the endpoint redirects to '{elsewhere.base_url}/chat/"), \
        recs["i0001"]["error"]
    assert [recs[f"i000{i}"]["status"] for i in (0, 2, 3)] == ["ok"] * 3


def test_an_answer_larger_than_max_response_mb_is_the_items_error_not_read(tmp_path: Path) -> None:
    """An endpoint's output is untrusted: a body was read whole whatever its size, and one that
    never ended grew the harness's memory at the speed of the network until the timeout."""
    import resource

    with OpenAIServer() as server:
        plan = {0: "oversized", 1: "endless"}
        server.fault = lambda key, attempt: plan.get(int(key[5:9]) % 4)
        suite = make_suite(tmp_path, server, 8, suite={"cache": False, "timeout_s": 10})
        chat = yaml.safe_load((tmp_path / "chat.yaml").read_text())
        write_yaml(tmp_path / "chat.yaml", {**chat, "settings": {**chat["settings"], "max_response_mb": 1}})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        result = run_suite(suite, quiet=True)
        assert time.perf_counter() - start < 8  # stopped at the limit, not at the 10 s timeout
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB
        assert server.count("chat") == 8  # not retried: the same answer would come again
    recs = responses(result.run_dir)
    for item, rec in recs.items():
        if int(item[1:]) % 4 in (0, 1):
            assert rec["status"] == "error" and len(rec["attempts"]) == 1, rec
            assert rec["error"].startswith("response larger than max_response_mb (1 MB): "), rec["error"]
        else:
            assert rec["status"] == "ok"
    assert recs["i0000"]["error"].endswith(" 4,194,620 bytes declared")  # refused before reading
    # the endless one: read up to the limit, and at most a piece (64 KB) beyond it
    read = int(recs["i0001"]["error"].rsplit("stopped after ", 1)[1].split()[0].replace(",", ""))
    assert 2**20 < read <= 2**20 + 2**16, recs["i0001"]["error"]
    # streamed answers too
    with OpenAIServer() as server:
        write_yaml(tmp_path / "chat.yaml", {**chat, "settings": {**chat["settings"], "max_response_mb": 1,
                                                                 "stream": True, "base_url": server.base_url}})
        server.fault = lambda key, attempt: plan.get(int(key[5:9]) % 4)
        result = run_suite(suite, quiet=True)
    recs = responses(result.run_dir)
    errors = [recs[f"i000{i}"]["error"] for i in range(4)]
    assert errors[0].endswith(" 4,194,620 bytes declared") and errors[2:] == [None, None], errors
    assert errors[1] == "malformed event stream: a line longer than the client reads (128 KB)"


def test_a_compressed_answer_is_capped_at_its_decompressed_size(tmp_path: Path) -> None:
    """A gzip body declares its compressed length: a 1 MB body of zeros read whole (aiohttp
    decompresses as it reads) held 4.3 GB and ran past a two-minute limit. An ordinary
    compressed answer still reads."""
    with OpenAIServer() as server:
        server.oversized_bytes = 64 << 20  # 64 MB of answer in about 64 KB of body
        plan = {0: "gzip_bomb", 1: "gzip"}
        server.fault = lambda key, attempt: plan.get(int(key[5:9]) % 4)
        suite = make_suite(tmp_path, server, 4, suite={"cache": False, "timeout_s": 10})
        chat = yaml.safe_load((tmp_path / "chat.yaml").read_text())
        write_yaml(tmp_path / "chat.yaml", {**chat, "settings": {**chat["settings"], "max_response_mb": 1}})
        result = run_suite(suite, quiet=True)
        assert server.count("chat") == 4  # not retried: the same answer would come again
    recs = responses(result.run_dir)
    assert [recs[f"i000{i}"]["status"] for i in range(4)] == ["error", "ok", "ok", "ok"], recs
    assert recs["i0001"]["output"] == "The answer is B."  # the compressed one, read as any other
    error = recs["i0000"]["error"]
    assert error.startswith("response larger than max_response_mb (1 MB): stopped after "), error
    read = int(error.rsplit("stopped after ", 1)[1].split()[0].replace(",", ""))
    assert 2**20 < read <= 2**20 + 2**17, error  # the limit, and at most a piece beyond it


def test_persistent_failure_uses_every_attempt_then_records_an_error(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        server.fault = lambda key, attempt: "503"
        result = run_suite(make_suite(tmp_path, server, 10, suite={"cache": False}), quiet=True)
        assert server.count("chat") == 10 * FAST_RETRY["max_attempts"]
    recs = responses(result.run_dir)
    assert all(r["status"] == "error" and len(r["attempts"]) == 4 and "HTTP 503" in r["error"] for r in recs.values())
    assert all("wait_s" in a for r in recs.values() for a in r["attempts"][:-1])


def test_random_fault_mix_over_500_items(tmp_path: Path) -> None:
    rng = random.Random(11)
    modes = ["429", "500", "502", "503", "reset", "malformed", "truncated", "empty_choices"]
    plans: dict[str, list[str]] = {}
    for i in range(500):
        k = rng.choices([0, 1, 2, 3, 4, 5], weights=[50, 20, 12, 8, 6, 4])[0]
        plans[f"Item {i:04d}. ANSWER={'ABCD'[i % 4]}"] = [rng.choice(modes) for _ in range(k)]
    with OpenAIServer() as server:
        server.fault = lambda key, attempt: plans[key][attempt - 1] if attempt <= len(plans[key]) else None
        result = run_suite(make_suite(tmp_path, server, 500, suite={"cache": False, "concurrency": 16}), quiet=True)
        expected = sum(min(len(p) + 1, 4) for p in plans.values())
        assert server.count("chat") == expected
    recs = responses(result.run_dir)
    assert len(recs) == 500
    for i in range(500):
        rec = recs[f"i{i:04d}"]
        faults = len(plans[f"Item {i:04d}. ANSWER={'ABCD'[i % 4]}"])
        assert rec["status"] == ("ok" if faults < 4 else "error"), (i, faults, rec)
        assert len(rec["attempts"]) == (0 if faults == 0 else min(faults + 1, 4))
    failed = sum(1 for p in plans.values() if len(p) >= 4)
    error_rate = next(r for r in result.scorecard["rows"] if r["metric"] == "error_rate")
    assert error_rate["value"] == failed / 500
    print(f"fault mix: {expected} requests for 500 items, {failed} items failed after 4 attempts")


def test_retry_after_is_honoured_and_total_wait_bounded(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        server.retry_after_s = 0.3
        server.fault = lambda key, attempt: "429" if attempt == 1 else None
        result = run_suite(make_suite(tmp_path, server, 3, suite={"cache": False}), quiet=True)
    for rec in responses(result.run_dir).values():
        assert rec["attempts"][0]["wait_s"] >= 0.3
    assert parse_retry_after("2") == 2.0
    in_30_s = parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30)))
    assert in_30_s is not None and 0 <= in_30_s <= 30
    assert parse_retry_after("garbage") is None

    with OpenAIServer() as server:
        server.retry_after_s = 10
        server.fault = lambda key, attempt: "429"
        policy = {**FAST_RETRY, "max_total_wait_s": 0.2}
        result = run_suite(make_suite(tmp_path / "b", server, 2, suite={"cache": False}, ref={"retry": policy}),
                           quiet=True)
    for rec in responses(result.run_dir).values():
        assert rec["status"] == "error" and rec["attempts"][-1].get("gave_up") == "max_total_wait_s"


def _throttling_server(limit: int) -> OpenAIServer:
    """A server that answers 429 when more than `limit` requests are in flight."""
    server = OpenAIServer(latency_s=0.02)
    state = {"in_flight": 0}
    original = server.responder

    def plan(key: str, attempt: int) -> str | None:
        with server._lock:
            if state["in_flight"] >= limit:
                return "429"
            state["in_flight"] += 1
        return None

    def responder(body: dict) -> str:
        try:
            time.sleep(0.02)
            return original(body)
        finally:
            with server._lock:
                state["in_flight"] -= 1

    server.fault, server.responder = plan, responder
    server.retry_after_s = 0.0
    return server


def test_adaptive_concurrency_backs_off_on_429(tmp_path: Path) -> None:
    counts = {}
    for adaptive in (False, True):
        with _throttling_server(4) as server:
            policy = {**FAST_RETRY, "max_attempts": 30, "max_total_wait_s": 30}
            suite = make_suite(tmp_path / str(adaptive), server, 150,
                               suite={"cache": False, "concurrency": 32},
                               ref={"adaptive_concurrency": adaptive, "retry": policy})
            result = run_suite(suite, quiet=True)
            counts[adaptive] = server.count("chat") - 150
        manifest = json.loads((result.run_dir / "manifest.json").read_text())
        assert all(r["status"] == "ok" for r in responses(result.run_dir).values())
        if adaptive:
            assert manifest["limits"]["chat"]["decreases"] >= 2
            assert manifest["limits"]["chat"]["min_concurrency"] <= 8
    assert counts[True] < counts[False] / 2, counts  # far fewer 429s once the limiter adapts
    print(f"429 responses: fixed concurrency {counts[False]}, adaptive {counts[True]}")


def test_requests_per_minute_cap_paces_requests(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        start = time.perf_counter()
        run_suite(make_suite(tmp_path, server, 10, suite={"cache": False}, ref={"requests_per_minute": 1200}),
                  quiet=True)
        assert time.perf_counter() - start >= 9 * 60 / 1200 * 0.95


def test_cache_rerun_sends_nothing_and_misses_exactly_what_changed(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        suite = make_suite(tmp_path, server, 20)
        first = run_suite(suite, quiet=True)
        assert server.count("chat") == 20
        second = run_suite(suite, quiet=True)
        assert server.count("chat") == 20, "an unchanged rerun sent requests"
        assert rows(second.scorecard) == rows(first.scorecard)
        assert all(r["cache_hit"] for r in responses(second.run_dir).values())
        # one item's question changes: exactly one miss
        data = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
        data[3]["question"] += " (reworded)"
        write_jsonl(tmp_path / "items.jsonl", data)
        run_suite(suite, quiet=True)
        assert server.count("chat") == 21
        # temperature changes the output: every request misses
        chat = tmp_path / "chat.yaml"
        chat.write_text(chat.read_text().replace("temperature: 0", "temperature: 0.7"), encoding="utf-8")
        run_suite(suite, quiet=True)
        assert server.count("chat") == 41
        # the endpoint does not change the output: still cached
        run_suite(suite, quiet=True, cache=True)
        assert server.count("chat") == 41
        run_suite(suite, quiet=True, cache=False)
        assert server.count("chat") == 61


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUTF8": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_two_processes_share_the_cache_safely(tmp_path: Path) -> None:
    with OpenAIServer(latency_s=0.005) as server:
        suite = make_suite(tmp_path, server, 150)
        procs = [_cli("run", str(suite), "--quiet", "--out", str(tmp_path / f"run{i}")) for i in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        stats = _cli("cache", "stats", str(suite))
        out, _ = stats.communicate(timeout=60)
        assert json.loads(out)["entries"] == 150
        before = server.count("chat")
        assert 150 <= before <= 300
        third = _cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run3"))
        third.communicate(timeout=120)
        assert server.count("chat") == before  # every response of both runs was kept
        cleared = _cli("cache", "clear", str(suite))
        assert "removed 150" in cleared.communicate(timeout=60)[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, seed: int) -> None:
    n = 200
    with OpenAIServer(latency_s=0.01) as server:
        reference = run_suite(make_suite(tmp_path / "ref", server, n, suite={"cache": False}), quiet=True)
        suite = make_suite(tmp_path / "killed", server, n, suite={"cache": False, "concurrency": 4})
        server.attempts.clear()
        run_dir = tmp_path / "killed" / "run"
        proc = _cli("run", str(suite), "--quiet", "--out", str(run_dir))
        deadline = time.time() + 60
        target = random.Random(seed).randint(5, n - 20)
        while time.time() < deadline:
            path = run_dir / "responses.jsonl"
            if path.exists() and path.read_bytes().count(b"\n") >= target:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = set(responses(run_dir))
        assert 0 < len(done_before) < n
        with (run_dir / "responses.jsonl").open("ab") as fh:  # a torn last line, as a crash mid-write leaves
            fh.write(b'{"task": "t", "adapter": "chat", "item_id": "i0199", "rep')
        resumed = _cli("run", str(suite), "--quiet", "--resume", str(run_dir))
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        for item_id in done_before:
            i = int(item_id[1:])
            assert server.attempts[f"Item {i:04d}. ANSWER={'ABCD'[i % 4]}"] == 1, f"{item_id} requested twice"
    assert len(responses(run_dir)) == n
    card = json.loads((run_dir / "scorecard.json").read_text())
    assert rows(card) == rows(reference.scorecard)


def test_sigint_stops_cleanly_exits_3_and_resumes(tmp_path: Path) -> None:
    with OpenAIServer(latency_s=0.02) as server:
        suite = make_suite(tmp_path, server, 150, suite={"cache": False, "concurrency": 2})
        proc = _cli("run", str(suite), "--quiet")
        runs = tmp_path / "runs"
        deadline = time.time() + 60
        while time.time() < deadline:
            found = list(runs.glob("*/responses.jsonl")) if runs.exists() else []
            if found and found[0].read_bytes().count(b"\n") >= 10:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        run_dir = next(runs.iterdir())
        assert "--resume" in err and str(run_dir) in err
        assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
        recorded = responses(run_dir)
        assert 10 <= len(recorded) < 150
        sent_before = dict(server.attempts)
        resumed = _cli("run", str(suite), "--quiet", "--resume", "latest")
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        # nothing recorded is asked again (counted per item: a request retried after a timeout
        # on a loaded machine is a second request for the same item, not a resend)
        questions = {f"i{i:04d}": f"Item {i:04d}. ANSWER={'ABCD'[i % 4]}" for i in range(150)}
        assert all(server.attempts[questions[item]] == sent_before[questions[item]] for item in recorded)
        assert sum(1 for q in questions.values() if q in sent_before and q not in {
            questions[i] for i in recorded}) <= 2  # at most the abandoned in-flight requests again
    assert len(responses(run_dir)) == 150
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"


def test_shards_merge_into_the_unsharded_scorecard(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        suite = make_suite(tmp_path, server, 90, suite={"cache": False})
        whole = run_suite(suite, quiet=True)
        shard_dirs = []
        for i in (1, 2, 3):
            shard_dirs.append(run_suite(suite, quiet=True, shard=f"{i}/3").run_dir)
        sizes = [len(responses(d)) for d in shard_dirs]
        assert sum(sizes) == 90 and all(s > 10 for s in sizes)
        proc = _cli("merge", *map(str, shard_dirs), "--out", str(tmp_path / "merged"))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    merged = json.loads((tmp_path / "merged" / "scorecard.json").read_text())
    assert rows(merged) == rows(whole.scorecard)
    bad = _cli("merge", str(shard_dirs[0]), str(shard_dirs[1]), "--out", str(tmp_path / "m2"))
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "shards must be 1/n" in err


def _open_cache(directory: str, results: object) -> None:
    from harness.cache import ResponseCache

    try:
        ResponseCache(Path(directory)).close()
        results.put("ok")  # type: ignore[attr-defined]
    except Exception as exc:  # the failure under test is sqlite3.OperationalError
        results.put(repr(exc))  # type: ignore[attr-defined]


def test_runs_opening_a_new_cache_at_the_same_moment(tmp_path: Path) -> None:
    """Switching a new SQLite file to WAL takes an exclusive lock without the busy handler:
    without a retry, about 1 open in 60 failed with 'database is locked' when four runs
    started together (seen in CI as test_two_processes_share_the_cache_safely failing)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for trial in range(25):
        results = ctx.Queue()
        procs = [ctx.Process(target=_open_cache, args=(str(tmp_path / f"c{trial}"), results)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        outcomes += [results.get(timeout=10) for _ in procs]
    assert outcomes == ["ok"] * 100, [o for o in outcomes if o != "ok"][:3]


def test_what_a_server_reports_about_its_answer_is_checked_like_the_answer(tmp_path: Path) -> None:
    """Usage and model ids come from the system under test. Token counts sent as strings (some
    proxies) failed every item, negative ones made costs negative and a cost gate pass, a
    model id sent as an object stopped the whole run, and a server that reports no usage
    looked free. Now: numeric strings read, nonsense reads as not reported, and a cost
    whose tokens are unknown is unknown, not zero."""
    with OpenAIServer() as server:
        plain = server.chat

        def chat(body: dict) -> dict:
            out = plain(body)
            item = int(body["messages"][-1]["content"][5:9])
            out["usage"] = [{"prompt_tokens": "12", "completion_tokens": "5"},
                            {"prompt_tokens": -1_000_000, "completion_tokens": -5}, ["not", "an", "object"],
                            None][item]
            out["model"] = [out["model"], out["model"], {"name": "m"}, 7][item]
            return out

        server.chat = chat  # type: ignore[method-assign]
        suite = make_suite(tmp_path, server, 4, suite={"cache": False,
                                                       "gates": [{"metric": "t/cost", "max": 0.001}]})
        chat_yaml = yaml.safe_load((tmp_path / "chat.yaml").read_text())
        write_yaml(tmp_path / "chat.yaml", {**chat_yaml, "declarations": {"prices": {
            "input_per_million_tokens": 10.0, "output_per_million_tokens": 30.0}}})
        result = run_suite(suite, quiet=True)
    recs = responses(result.run_dir)
    assert [recs[f"i000{i}"]["status"] for i in range(4)] == ["ok"] * 4
    assert (recs["i0000"]["tokens_in"], recs["i0000"]["tokens_out"]) == (12, 5)
    assert recs["i0000"]["cost"] == round((12 * 10 + 5 * 30) / 1e6, 8)
    for item in ("i0001", "i0002", "i0003"):
        assert (recs[item]["tokens_in"], recs[item]["tokens_out"], recs[item]["cost"]) == (None, None, None), item
    assert (recs["i0002"]["model_id"], recs["i0003"]["model_id"]) == (None, "7")
    cost = next(r for r in result.scorecard["rows"] if r["metric"] == "cost")
    assert cost["n"] == 1 and cost["value"] > 0


def test_a_stream_cut_or_failing_mid_answer_is_retried_not_scored_as_the_answer(tmp_path: Path) -> None:
    """A stream that ended mid-answer (no finish_reason, no [DONE]) returned its first word as
    the whole answer, scored as given; an error event inside the stream was skipped the same
    way. Both are now retryable errors: retried once here, then answered in full."""
    with OpenAIServer() as server:
        modes = {"Item 0000": "stream_cut", "Item 0001": "stream_error", "Item 0002": "stream_cut"}
        server.fault = lambda key, attempt: modes.get(key[:9]) if attempt == 1 or key[:9] == "Item 0002" else None
        suite = make_suite(tmp_path, server, 4, suite={"cache": False})
        chat = yaml.safe_load((tmp_path / "chat.yaml").read_text())
        write_yaml(tmp_path / "chat.yaml", {**chat, "settings": {**chat["settings"], "stream": True}})
        result = run_suite(suite, quiet=True)
    recs = responses(result.run_dir)
    for item, why in (("i0000", "stream ended before the answer did"), ("i0001", "error in stream: The server")):
        assert recs[item]["status"] == "ok" and recs[item]["output"] == f"The answer is {'AB'[int(item[-1])]}.", \
            recs[item]
        assert [a["attempt"] for a in recs[item]["attempts"]] == [1, 2] and why in recs[item]["attempts"][0]["error"]
    assert recs["i0002"]["status"] == "error" and "the answer was cut" in recs["i0002"]["error"]
    assert recs["i0003"]["status"] == "ok" and not recs["i0003"]["attempts"]


def test_a_full_disk_stops_the_run_with_the_resume_command_not_a_bug_report(tmp_path: Path) -> None:
    """Writing the record on a full disk ended in "unexpected OSError ... this is a bug in
    avec-harness" and three tracebacks. It is exit 3 with what to do, and the resume then
    completes the run from what was written. (The file-size limit stands in for a full disk:
    the write fails the same way, with EFBIG where a disk gives ENOSPC.)"""
    import resource

    write_jsonl(tmp_path / "items.jsonl", [{"id": f"q{i}", "question": "Q?", "answer": "A"} for i in range(300)])
    write_jsonl(tmp_path / "export.jsonl", [{"id": f"q{i}", "output": "A " + "reasoning " * 40} for i in range(300)])
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "choices": ["A", "B"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "export.jsonl"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"],
                                                 "cache": False})

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the process dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--quiet", "--out", str(run)],
                         capture_output=True, text=True, timeout=300, preexec_fn=small_disk, cwd=ROOT)
    assert res.returncode == 3, res.stderr
    assert res.stderr.startswith(f"error: cannot write the run record in {run}: File too large; every answer "
                                 "written before is kept."), res.stderr
    assert f"harness run {suite} --resume {run}" in res.stderr and "Traceback" not in res.stderr
    written = sum(1 for _ in (run / "responses.jsonl").open())
    assert 0 < written < 300
    res = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--quiet", "--resume", str(run)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    accuracy = next(r for r in json.loads((run / "scorecard.json").read_text())["rows"] if r["metric"] == "accuracy")
    assert accuracy["n"] == 300 and accuracy["value"] == 1.0


def test_cache_keys_made_once_per_identity_are_the_keys_the_cache_always_had() -> None:
    """The identity is serialised once per adapter instead of once per item: the keys must not
    change, or every cache written before would be missed."""
    import hashlib
    from datetime import date
    from pathlib import Path as P

    import orjson

    from harness.cache import cache_keys

    def cache_key(identity: dict, request_hash: str) -> str:  # the formula every cache was written with
        payload = orjson.dumps([identity, request_hash], option=orjson.OPT_SORT_KEYS, default=str)
        return hashlib.sha256(payload).hexdigest()

    identities = [{"kind": "openai-chat", "version": "1", "settings": {"base_url": "http://127.0.0.1:9/v1",
                                                                      "model": "médecin-7b", "temperature": 0.0}},
                  {"kind": "python", "settings": {"path": [P("/tmp")], "when": date(2026, 11, 24), "z": None, "a": 1}},
                  {}]
    for identity in identities:
        make = cache_keys(identity)
        for request_hash in ("0" * 32, "5b2ef158976ce2b3c1337f8bd7f12b98", ""):
            assert make(request_hash) == cache_key(identity, request_hash)
