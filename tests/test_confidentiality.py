"""Issue 11: what leaves the machine. The pre-flight guard blocks or pseudonymises identifiers
in requests to a system not cleared for personal data; the real adapter talks to a real local
server, which proves what it received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import QA_ROWS, run_cli

from harness.store import iter_jsonl
from harness.testing.openai_server import OpenAIServer

PII_ROWS = [
    {"id": "p1", "question": "M. Jean Morel, tél. 06 12 34 56 78, takes warfarin. Which risk? ANSWER=B",
     "answer": "B"},
    {"id": "p2", "question": "Patiente née le 4 juillet 1958, NIR 1 51 02 75 115 423 24. Dose? ANSWER=C",
     "answer": "C"},
    {"id": "p3", "question": "Write to claire.rousseau58@exemple.fr about her INR. ANSWER=A", "answer": "A"},
]
SECRETS = ("Jean Morel", "06 12 34 56 78", "4 juillet 1958", "1 51 02 75 115 423 24", "claire.rousseau58")


def _sent(server: OpenAIServer) -> str:
    return json.dumps(server.bodies, ensure_ascii=False)


def test_the_guard_blocks_identifiers_before_anything_is_sent(qa_suite: Any, server: OpenAIServer,
                                                               tmp_path: Path) -> None:
    suite = qa_suite(rows=QA_ROWS[:4] + PII_ROWS)
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    sent = _sent(server)
    assert server.count("chat") == 4  # the four clean questions only
    assert not any(secret in sent for secret in SECRETS)
    run = next((tmp_path / "runs").iterdir())
    responses = {r["item_id"]: r for r in iter_jsonl(run / "responses.jsonl")}
    for row in PII_ROWS:
        r = responses[row["id"]]
        assert r["status"] == "error" and r["error"].startswith("blocked by the PII guard")
        assert not any(secret in r["error"] for secret in SECRETS)  # the error names types, not values
    assert responses["p1"]["error"].endswith("NAME 1, PHONE 1")
    requests = list(iter_jsonl(run / "requests.jsonl"))
    assert {r["item_id"] for r in requests} == {r["id"] for r in QA_ROWS[:4]}
    guard = json.loads((run / "manifest.json").read_text())["pii_guard"]["local-chat"]
    assert guard["blocked"] == 3 and guard["checked"] == 7
    assert guard["by_type"] == {"BIRTH_DATE": 1, "EMAIL": 1, "NAME": 1, "NIR": 1, "PHONE": 1}


def test_pseudonymised_requests_carry_surrogates_and_answers_get_the_originals_back(
        qa_suite: Any, server: OpenAIServer, tmp_path: Path) -> None:
    server.responder = lambda body: "You wrote: " + body["messages"][-1]["content"]
    suite = qa_suite(rows=PII_ROWS, suite={"pii_guard": {"policy": "pseudonymise"}})
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    sent = _sent(server)
    assert server.count("chat") == 3
    assert not any(secret in sent for secret in SECRETS)
    assert "<NAME_1>" in sent and "<PHONE_1>" in sent and "<NIR_1>" in sent
    run = next((tmp_path / "runs").iterdir())
    outputs = {r["item_id"]: r["output"] for r in iter_jsonl(run / "responses.jsonl")}
    assert "M. Jean Morel" in outputs["p1"] and "<NAME_1>" not in outputs["p1"]
    record = "".join(p.read_text(encoding="utf-8") for p in run.iterdir() if p.suffix in (".json", ".jsonl"))
    assert "<NAME_1>" not in record  # the map stays in memory
    guard = json.loads((run / "manifest.json").read_text())["pii_guard"]["local-chat"]
    assert guard["pseudonymised"] == 3 and guard["blocked"] == 0


def test_an_adapter_cleared_for_personal_data_is_not_guarded(qa_suite: Any, server: OpenAIServer,
                                                              tmp_path: Path) -> None:
    suite = qa_suite(rows=PII_ROWS, task={"data_class": "personal"},
                     adapter={"declarations": {"provider": "hds host", "data_clearance": "health",
                                               "hds_certified": True}})
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    assert server.count("chat") == 3 and "Jean Morel" in _sent(server)


def test_guard_options_are_validated(qa_suite: Any, server: OpenAIServer) -> None:
    suite = qa_suite(suite={"pii_guard": {"policy": "block", "types": ["NAME", "SSN"]}})
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 2 and "pii_guard.types" in res.stderr and "SSN" in res.stderr


def test_clearance_override_needs_a_justification_and_is_on_every_report(qa_suite: Any, server: OpenAIServer,
                                                                          tmp_path: Path) -> None:
    suite = qa_suite(task={"data_class": "personal"})
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 2 and "cleared for 'public' only" in res.stderr and "clearance_override" in res.stderr
    assert server.count() == 0
    import yaml

    config = yaml.safe_load(suite.read_text())
    config["adapters"] = [{"path": "adapters/chat.yaml", "clearance_override": {"up_to": "personal",
                                                                                "justification": "too short"}}]
    suite.write_text(yaml.safe_dump(config))
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 2 and "justification" in res.stderr and "approved_by" in res.stderr
    why = "Synthetic notes only; the vendor's DPA covers the pilot (ticket DPO-2026-114)."
    config["adapters"][0]["clearance_override"] = {"up_to": "personal", "justification": why,
                                                   "approved_by": "C. Martin, DPO"}
    suite.write_text(yaml.safe_dump(config))
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "runs").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["clearance_overrides"][0]["approved_by"] == "C. Martin, DPO"
    for report in ("scorecard.md", "report.html"):
        text = (run / report).read_text(encoding="utf-8")
        assert "Confidentiality (HAS 2.4)" in text and "DPO-2026-114" in text and "C. Martin" in text, report


def test_data_above_public_never_travels_unencrypted(qa_suite: Any, server: OpenAIServer) -> None:
    suite = qa_suite(task={"data_class": "personal"},
                     adapter={"settings": {"base_url": "http://10.1.2.3:8000/v1", "model": "m"},
                              "declarations": {"provider": "lan", "data_clearance": "health"}})
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 2 and "unencrypted" in res.stderr and "http://10.1.2.3:8000/v1" in res.stderr
    suite = qa_suite(task={"data_class": "personal"},
                     adapter={"declarations": {"provider": "x", "data_clearance": "health",
                                               "encrypted_transport": False}})
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 2 and "encrypted_transport" in res.stderr
    suite = qa_suite(task={"data_class": "public"},
                     adapter={"settings": {"base_url": "http://10.1.2.3:8000/v1", "model": "m"}})
    # public data may travel in the clear
    assert run_cli("validate", str(suite), env={"TEST_API_KEY": "k"}).returncode == 0


def test_pii_leak_scorer_counts_answers_that_repeat_identifiers(qa_suite: Any, server: OpenAIServer,
                                                                tmp_path: Path) -> None:
    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        return f"Reply to {prompt.split(',')[0]}" if "Morel" in prompt else "The answer is A."
    server.responder = answer
    suite = qa_suite(rows=PII_ROWS + QA_ROWS[:3], task={"data_class": "personal",
                                                         "scorers": ["exact_match", "pii_leak"]},
                     adapter={"declarations": {"provider": "hds host", "data_clearance": "health"}})
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "runs").iterdir())
    card = json.loads((run / "scorecard.json").read_text())
    rows = {r["metric"]: r for r in card["rows"]}
    assert rows["pii_output_rate"]["value"] == 1 / 6 and rows["pii_output_rate"]["n"] == 6
    assert rows["pii_leak_rate"]["value"] == 1 / 3 and rows["pii_leak_rate"]["n"] == 3  # items with identifiers
    section = next(s for s in card["sections"] if s["scorer"] == "pii_leak")
    assert section["data"]["leaked_types"] == {"NAME": 1}


def test_store_content_false_keeps_scores_and_hashes_never_text(qa_suite: Any, server: OpenAIServer,
                                                                tmp_path: Path) -> None:
    suite = qa_suite(suite={"store_content": False})
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "runs").iterdir())
    everything = "".join(p.read_text(encoding="utf-8") for p in run.iterdir() if p.is_file())
    for text in ("Question 3", "ANSWER=", "The answer is"):
        assert text not in everything, text
    card = json.loads((run / "scorecard.json").read_text())
    accuracy = next(r for r in card["rows"] if r["metric"] == "accuracy")
    assert accuracy["value"] == 1.0 and accuracy["n"] == 12
    responses = list(iter_jsonl(run / "responses.jsonl"))
    assert all(r["output"] is None and len(r["output_sha256"]) == 64 for r in responses)
    import os

    cache_dir = Path(os.environ["HARNESS_CACHE_DIR"])
    assert not cache_dir.exists() or not any(cache_dir.iterdir())  # answers are content: no cache


def test_a_key_quoted_in_a_provider_error_is_never_kept(qa_suite: Any, server: OpenAIServer, tmp_path: Path) -> None:
    import os

    from conftest import SENTINEL_KEY

    server.fault = lambda key, attempt: "401-echo"
    suite = qa_suite(rows=QA_ROWS[:3])
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": SENTINEL_KEY})
    assert server.count("chat") == 3  # 401 is not retried: one attempt each
    run = next((tmp_path / "runs").iterdir())
    errors = [r["error"] for r in iter_jsonl(run / "responses.jsonl")]
    assert len(errors) == 3 and all("401" in e and "<redacted>" in e for e in errors), errors
    cache_dir = Path(os.environ["HARNESS_CACHE_DIR"])
    for path in [p for d in (run, cache_dir) for p in d.rglob("*") if p.is_file()]:
        assert SENTINEL_KEY.encode() not in path.read_bytes(), path
    assert SENTINEL_KEY not in res.stdout + res.stderr


def test_credentials_written_into_the_endpoint_url_are_never_kept(qa_suite: Any, server: OpenAIServer,
                                                                  tmp_path: Path) -> None:
    """`https://user:password@host/v1?key=...` went into the manifest as written, and a gateway
    quoting the Basic credential it refused put it in the record. The address is kept, its
    password, credential parameters and the Basic form are not."""
    import base64
    import os

    password, query_key = "Pw-s3cret-2026", "QK-s3cret-2026"
    url = server.base_url.replace("http://", f"http://alice:{password}@") + f"?api-version=1&key={query_key}"
    server.fault = lambda key, attempt: "401-echo" if key.startswith("Question 0") else None
    suite = qa_suite(adapter={"settings": {"base_url": url, "model": "local-test-model"}}, rows=QA_ROWS[:3])
    res = run_cli("run", str(suite), "--quiet")
    assert res.returncode == 0, res.stderr
    assert server.count("chat") == 3
    run = next((tmp_path / "runs").iterdir())
    recorded = json.loads((run / "manifest.json").read_text())["adapters"]["local-chat"]["settings"]["base_url"]
    assert recorded == f"http://alice:<redacted>@{server.base_url[7:]}?api-version=1&key=<redacted>"
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    errors = [r["error"] for r in iter_jsonl(run / "responses.jsonl") if r["error"]]
    assert errors and all("401" in e and "<redacted>" in e for e in errors), errors
    cache_dir = Path(os.environ["HARNESS_CACHE_DIR"])
    for path in [p for d in (run, cache_dir) for p in d.rglob("*") if p.is_file()]:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in (password, query_key, basic)), path
    assert not any(s in res.stdout + res.stderr for s in (password, query_key, basic))
