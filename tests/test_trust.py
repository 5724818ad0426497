"""Issue 17, "Trust the record": each numbered point of the issue has a test here that failed
before its fix. The README's statements about the record name these tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, SENTINEL_KEY, only_run, replay_run, run_cli, write_jsonl, write_yaml

from harness import ConfigError, run_suite
from harness.store import iter_jsonl
from harness.testing.openai_server import OpenAIServer

AUDIO = ROOT / "tasks" / "dictation-en" / "audio" / "dict-001.ogg"


def _card(run_dir: Path) -> dict:
    return json.loads((run_dir / "scorecard.json").read_text(encoding="utf-8"))


def _metric(card: dict, name: str) -> dict:
    return next(r for r in card["rows"] if r["metric"] == name)


def _edit_yaml(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    write_yaml(path, data)


# --- 1. the cache key covers where a request goes ------------------------------------

def test_cache_is_keyed_on_the_endpoint_and_headers(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    env = {"TEST_API_KEY": "k"}
    assert run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "r1"), env=env).returncode == 0
    assert _metric(_card(tmp_path / "r1"), "accuracy")["value"] == 1.0
    # the same model name on another server that always answers B
    with OpenAIServer(responder=lambda body: "The answer is B.") as other:
        _edit_yaml(tmp_path / "adapters/chat.yaml", settings__base_url=other.base_url)
        assert run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "r2"), env=env).returncode == 0
        assert other.count("chat") == 12, "the other server's answers were taken from the first one's cache"
        assert _metric(_card(tmp_path / "r2"), "accuracy")["value"] == 0.25
        # a header that selects a deployment changes the key too
        _edit_yaml(tmp_path / "adapters/chat.yaml", settings__headers={"X-Deployment": "v2"})
        assert run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "r3"), env=env).returncode == 0
        assert other.count("chat") == 24
    # unchanged rerun: every answer from the cache, and the scorecard says so
    _edit_yaml(tmp_path / "adapters/chat.yaml", settings__base_url=server.base_url, settings__headers={})
    assert run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "r4"), env=env).returncode == 0
    assert server.count("chat") == 12
    card = _card(tmp_path / "r4")
    assert card["responses"] == [{"task": "qa-test", "adapter": "local-chat", "responses": 12, "from_cache": 12}]
    assert "12 of 12 answers from the response cache" in (tmp_path / "r4" / "scorecard.md").read_text()


def test_tests_keep_their_cache_outside_the_repository() -> None:
    cache = Path(os.environ["HARNESS_CACHE_DIR"]).resolve()
    assert not cache.is_relative_to(ROOT), "a test's cache would be served to a later `make run`"


# --- 2. task files run no code ---------------------------------------------------------

@pytest.mark.parametrize("prompt", [
    "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}",
    "{{ question.__class__.__mro__[1].__subclasses__() }}",
    "{{ self.__init__.__globals__.__builtins__.open('PWNED', 'w').write('x') }}",
    "{{ lipsum.__globals__['os'].popen('touch PWNED').read() }}",
])
def test_prompt_templates_are_sandboxed(qa_suite, server, tmp_path: Path, prompt: str) -> None:
    suite = qa_suite(task={"prompt": prompt})
    res = run_cli("run", str(suite), "--quiet", cwd=tmp_path, env={"TEST_API_KEY": "k"})
    assert res.returncode == 2, res.stdout + res.stderr
    # either a name the sandbox does not provide (read as a missing data field) or a forbidden attribute
    assert ("qa.jsonl:1" in res.stderr or "tasks/qa.yaml" in res.stderr) and "Traceback" not in res.stderr
    assert not (tmp_path / "PWNED").exists()
    assert server.count() == 0


@pytest.mark.parametrize(("prompt", "why"), [
    ("{{ question * 100000000 }}", "'*' would make 2,000,000,000 characters"),
    ("{{ 9 ** 999999999 }}", "too large a number"),
    ('{{ "%999999999d" % 1 }}', "'%' would make"),
    ("{{ '{:>999999999}'.format(1) }}", "str.format is not available"),
    ("{{ question.ljust(999999999) }}", "'ljust' of 'str' object is unsafe"),
    ("{{ question | center(999999999) }}", "filter 'center' would make"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "turn more than 1,000,000"),
    ("{% set a = question * 40000 %}{% set b = a ~ a ~ a ~ a %}{% set c = b ~ b ~ b ~ b %}{{ c }}", "'~' would make"),
    ("{% for i in range(100000) %}{% for j in range(100) %}{{ question }}{% endfor %}{% endfor %}",
     "the template would make"),
    ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "template nested too deeply"),
])
def test_templates_cannot_exhaust_memory_or_time(qa_suite, server, tmp_path: Path, prompt: str, why: str) -> None:
    """The sandbox guards access, not size: each of these exhausted memory, spun for hours or
    crashed `harness validate` (RecursionError). Each is now bad input, found before a call."""
    suite = qa_suite(task={"prompt": prompt})
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"}, timeout=60)
    assert res.returncode == 2 and why in res.stderr and "tasks/qa.yaml" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and server.count() == 0


def test_a_template_that_never_ends_on_one_item_costs_that_item(qa_suite, server, tmp_path: Path) -> None:
    """Validation renders the first item within 10 s; a template that spins on a later item
    (loops over its own text) is stopped by the run's time limit and costs that item only."""
    spin = "{% for a in question %}{% for b in question %}{% for c in question %}{% for d in question %}" \
           "{% if a == 1 %}x{% endif %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
    rows = [{"id": f"q{i}", "question": f"Question {i}? ANSWER=A", "answer": "A"} for i in range(4)]
    rows[2]["question"] = "x" * 200  # 200**4 turns: hours
    suite = qa_suite(task={"prompt": "{% if question|length > 100 %}" + spin + "{% endif %}{{ question }}"},
                     suite={"scoring_timeout_s": 1}, rows=rows)
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"}, timeout=120)
    assert res.returncode == 0, res.stderr
    run = only_run(tmp_path / "runs")
    errors = {r["item_id"]: r.get("error") for r in map(json.loads, (run / "responses.jsonl").open())}
    assert errors["q2"] == "request could not be built: TimeLimitExceeded: rendering the template ran past 1 s"
    assert [errors[f"q{i}"] for i in (0, 1, 3)] == [None, None, None] and server.count() == 3


def test_template_syntax_error_is_exit_2_with_file_and_line(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite(task={"prompt": "Question: {{ question "})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    assert re.search(r"tasks/qa\.yaml:\d+: prompt: template syntax error", res.stderr), res.stderr
    assert "Traceback" not in res.stderr


def test_prompt_filters_a_template_needs_still_work(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite(task={"prompt": "{{ question | trim | upper }}{% if answer %} ({{ answer | lower }}){% endif %}"})
    assert run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"}).returncode == 0
    prompts = {b["messages"][-1]["content"] for b in server.bodies}
    assert "QUESTION 0? ANSWER=A (a)" in prompts and len(prompts) == 12
    # a generator (map, select) into a size-checked filter: read once, for the check and the join
    from harness.kinds import render

    assert render("{{ question.split()|map('upper')|join('-') }} {{ question.split()|select('ne', 'b')|join }}",
                  {"question": "a b c"}) == "A-B-C ac"


# --- 3. a dataset does not decide which files leave the machine -------------------------

def _transcription_suite(tmp_path: Path, server: OpenAIServer, audio: str, **suite) -> Path:
    write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "audio": audio, "text": "hello"}])
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "stt.yaml", {"name": "stt", "kind": "openai-transcription",
                                       "settings": {"base_url": server.base_url, "model": "whisper-1"}})
    return write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["stt.yaml"],
                                                **suite})


@pytest.mark.parametrize("audio", ["/etc/hostname", "../../../../../../../etc/hostname", "link.ogg"])
def test_audio_outside_the_suite_is_never_uploaded(tmp_path: Path, server, audio: str) -> None:
    (tmp_path / "link.ogg").symlink_to("/etc/hostname")
    suite = _transcription_suite(tmp_path, server, audio)
    res = run_cli("run", str(suite), "--quiet")
    assert res.returncode == 2, res.stderr
    assert "items.jsonl:1: audio: path outside the suite's folder tree" in res.stderr
    assert server.count() == 0


def test_data_roots_allow_a_named_folder_and_corrupt_audio_fails_validation(tmp_path: Path, server) -> None:
    shared = tmp_path / "shared-audio"
    shared.mkdir()
    shutil.copy(AUDIO, shared / "a.ogg")
    (shared / "broken.ogg").write_bytes(AUDIO.read_bytes()[:300])
    suite_dir = tmp_path / "suite"
    suite = _transcription_suite(suite_dir, server, str(shared / "a.ogg"), data_roots=["../shared-audio"])
    assert run_cli("run", str(suite), "--quiet").returncode == 0
    assert server.count("transcription") == 1
    write_jsonl(suite_dir / "items.jsonl", [{"id": "a", "audio": str(shared / "broken.ogg"), "text": "hello"}])
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "audio file does not decode" in res.stderr, res.stderr
    assert server.count("transcription") == 1


def test_replay_and_catalogue_paths_are_confined(tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("id,output\nq0,A\n", encoding="utf-8")
    inside = tmp_path / "suite"
    write_jsonl(inside / "items.jsonl", [{"id": "q0", "question": "?", "answer": "A"}])
    write_yaml(inside / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                      "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}},
                                      "scorers": ["exact_match", "citations"],
                                      "citations": {"catalogue": ["/etc/passwd.csv"], "registry": "../x.yaml"}})
    write_yaml(inside / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": str(outside)}})
    suite = write_yaml(inside / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    for field in ("settings.path", "citations.catalogue[0]", "citations.registry"):
        assert re.search(rf"{re.escape(field)}: path outside the suite's folder tree", res.stderr), (field, res.stderr)


def test_task_and_adapter_files_are_confined_like_the_data(tmp_path: Path) -> None:
    """A suite that names a task or profile outside its tree gets that file read only where its
    `data_roots` allow: else a key of `~/.config/x.yaml` would be printed as an unknown field."""
    library, inside = tmp_path / "library", tmp_path / "suite"
    write_jsonl(library / "items.jsonl", [{"id": "q0", "question": "?", "answer": "A"}])
    write_yaml(library / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                       "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    (library / "answers.csv").write_text("id,output\nq0,A\n", encoding="utf-8")
    write_yaml(library / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "answers.csv"}})
    (tmp_path / "secrets.yaml").write_text("api_token_for_pharmacy: s3cr3t\n", encoding="utf-8")
    suite = write_yaml(inside / "suite.yaml", {"name": "s", "tasks": ["../library/task.yaml", "/etc/hostname"],
                                               "adapters": ["../library/replay.yaml", "../secrets.yaml",
                                                            "/root/.ssh/no-such-file.yaml"]})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2, res.stderr
    for field, path in (("tasks[0]", "library/task.yaml"), ("tasks[1]", "/etc/hostname"),
                        ("adapters[0]", "library/replay.yaml"), ("adapters[1]", "secrets.yaml"),
                        ("adapters[2]", "/root/.ssh/no-such-file.yaml")):  # outside, whether it exists or not
        assert re.search(rf"suite\.yaml:\d+: {re.escape(field)}: path outside the suite's folder tree.*"
                         rf"{re.escape(path)}", res.stderr), (field, res.stderr)
    assert "api_token_for_pharmacy" not in res.stderr and "Traceback" not in res.stderr
    # named in data_roots, the shared library is read (and the file beside it stays out)
    write_yaml(suite, {"name": "s", "tasks": ["../library/task.yaml"], "adapters": ["../library/replay.yaml"],
                       "data_roots": ["../library"]})
    assert run_cli("validate", str(suite)).returncode == 0


# --- 4. --out never mixes runs ---------------------------------------------------------

def test_out_folder_is_new_or_refused(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    env = {"TEST_API_KEY": "k"}
    out = tmp_path / "run"
    assert run_cli("run", str(suite), "--quiet", "--out", str(out), env=env).returncode == 0
    before = (out / "responses.jsonl").read_bytes()
    again = run_cli("run", str(suite), "--quiet", "--out", str(out), env=env)
    assert again.returncode == 2 and "folder is not empty (it holds a run record)" in again.stderr
    assert (out / "responses.jsonl").read_bytes() == before
    assert _metric(_card(out), "accuracy")["n"] == 12
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "scorecard.md").write_text("my own notes", encoding="utf-8")
    res = run_cli("run", str(suite), "--quiet", "--out", str(mine), env=env)
    assert res.returncode == 2 and "files that are not a run record" in res.stderr
    assert (mine / "scorecard.md").read_text(encoding="utf-8") == "my own notes"
    res = run_cli("run", str(suite), "--quiet", "--out", "/", env=env)
    assert res.returncode == 2 and "not empty" in res.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    res = run_cli("run", str(suite), "--quiet", "--out", str(a_file), env=env)
    assert res.returncode == 2 and "not a folder" in res.stderr and "Traceback" not in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("run", str(suite), "--quiet", "--out", str(empty), env=env).returncode == 0
    assert server.count("chat") == 12  # the refused runs called no model (the empty folder's run hit the cache)


# --- 5. resume checks that nothing changed ---------------------------------------------

def test_resume_refuses_a_changed_configuration_or_another_suite(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    env = {"TEST_API_KEY": "k"}
    out = tmp_path / "run"
    assert run_cli("run", str(suite), "--quiet", "--out", str(out), env=env).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # resuming a complete, unchanged run keeps the model ids and the cache counts
    res = run_cli("run", str(suite), "--quiet", "--resume", str(out), env=env)
    assert res.returncode == 0, res.stderr
    resumed = json.loads((out / "manifest.json").read_text())
    models = {"local-chat": ["local-test-model (fp_local_1)"]}
    assert resumed["provider_models"] == manifest["provider_models"] == models
    assert resumed["cache"] == manifest["cache"] and resumed["requests_sent"] == 12
    # a changed prompt and model
    _edit_yaml(tmp_path / "tasks/qa.yaml", prompt="Answer: {{ question }}")
    _edit_yaml(tmp_path / "adapters/chat.yaml", settings__model="another-model")
    res = run_cli("run", str(suite), "--quiet", "--resume", str(out), env=env)
    assert res.returncode == 2
    assert "cannot resume: task 'qa-test': config" in res.stderr and "adapter 'local-chat': settings" in res.stderr
    assert json.loads((out / "manifest.json").read_text()) == resumed, "a refused resume touched the record"
    # another suite's run
    other = write_yaml(tmp_path / "other.yaml", {**yaml.safe_load(suite.read_text()), "name": "other-suite"})
    res = run_cli("run", str(other), "--quiet", "--resume", str(out), env=env)
    assert res.returncode == 2 and "the run is of suite 'qa-suite'" in res.stderr
    assert server.count("chat") == 12


def test_a_model_change_within_a_run_is_an_event(qa_suite, server, tmp_path: Path) -> None:
    def responder(body: dict) -> str:
        if len(server.bodies) > 6:
            server.model = "local-test-model-v2"
        return "The answer is A."

    server.responder = responder
    suite = qa_suite(suite={"concurrency": 1})
    assert run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"}).returncode == 0
    run_dir = only_run(tmp_path / "runs")
    (change,) = json.loads((run_dir / "manifest.json").read_text())["model_changes"]
    assert change["before"].startswith("local-test-model (") and change["after"].startswith("local-test-model-v2")
    res = run_cli("history", str(tmp_path / "runs"), "--no-plots")
    assert "silent model change within run" in res.stdout and "local-test-model-v2" in res.stdout


# --- 6. compare of a shard against the full run ----------------------------------------

def test_compare_shard_against_full_run_with_empty_ratios(tmp_path: Path) -> None:
    rows = [{"id": f"q{i:02d}", "question": "?", "answer": "A"} for i in range(30)]
    write_jsonl(tmp_path / "items.jsonl", rows)
    (tmp_path / "out.csv").write_text("id,output\n" + "".join(f"q{i:02d},{'AB'[i % 2]}\n" for i in range(30)),
                                      encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}},
                                        "scorers": ["exact_match", "citations"]})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    assert run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "full")).returncode == 0
    assert run_cli("run", str(suite), "--quiet", "--shard", "1/3", "--out", str(tmp_path / "s1")).returncode == 0
    for a, b in (("full", "s1"), ("s1", "full")):
        res = run_cli("compare", str(tmp_path / a), str(tmp_path / b))
        assert res.returncode == 0, res.stdout + res.stderr
        assert "item sets differ" in res.stdout and "Traceback" not in res.stderr


# --- 7. every output format escapes (checked in headless Chromium) ----------------------

PAYLOADS = {
    "id": '<img src=x onerror="document.body.dataset.pwned=\'id\'">',
    "output": 'Give <script>document.body.dataset.pwned="out"</script> [see](javascript:document.body.dataset.'
              'pwned="link") <img src=x onerror="document.body.dataset.pwned=\'img\'"> 1 g',
    "model": "<svg onload=\"document.body.dataset.pwned='model'\">",
    "provider": "<iframe src=\"javascript:parent.document.body.dataset.pwned='decl'\"></iframe>",
}


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package")
    return exe


def _rendered_dom(html_file: Path) -> str:
    """The DOM after Chromium loaded the page and ran whatever scripts it had."""
    res = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-extensions", "--virtual-time-budget=3000", "--dump-dom",
                          html_file.as_uri()], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "<body" in res.stdout
    return res.stdout


def _assert_inert(dom: str, where: str) -> None:
    """No element or attribute from a payload exists in the rendered DOM (payload text shown as
    text is fine), and none of the payloads' scripts ran."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Elements(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("script", "iframe", "svg", "object", "embed"):
                found.append(f"<{tag}>")
            for name, value in attrs:
                if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                    found.append(f"<{tag} {name}={value!r}>")
            if tag == "body" and any(n == "data-pwned" for n, _ in attrs):
                found.append("data-pwned: a payload ran")

    Elements().feed(dom)
    assert not found, f"injected into {where}: {found}"


def _markdown_page(md_text: str, path: Path) -> Path:
    from markdown_it import MarkdownIt

    # the most permissive renderer: raw HTML allowed, as a wiki or a job summary may render it
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(md_text)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>{body}</body></html>",
                    encoding="utf-8")
    return path


def test_no_payload_runs_in_markdown_or_html_reports(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [
        {"id": PAYLOADS["id"], "audio": "a.ogg", "text": "Give ceftriaxone 1 g"},
        {"id": "plain", "audio": "a.ogg", "text": "Give cefuroxime 750 mg"}])
    shutil.copy(AUDIO, tmp_path / "a.ogg")
    import csv
    with (tmp_path / "out.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "output", "model"])
        w.writerow([PAYLOADS["id"], PAYLOADS["output"], PAYLOADS["model"]])
        w.writerow(["plain", PAYLOADS["output"], PAYLOADS["model"]])
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "scorers": ["wer", "drug_names", "doses", "critical_terms"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    for version, column in (("a", "output"), ("b", "id")):
        write_yaml(tmp_path / f"replay-{version}.yaml", {
            "name": "r", "kind": "replay", "settings": {"path": "out.csv", "output_column": column,
                                                         "model_column": "model"},
            "declarations": {"provider": PAYLOADS["provider"], "intended_use": "[x](javascript:alert(1))"}})
        write_yaml(tmp_path / f"suite-{version}.yaml", {"name": "s", "tasks": ["task.yaml"],
                                                        "adapters": [f"replay-{version}.yaml"]})
        res = run_cli("run", str(tmp_path / f"suite-{version}.yaml"), "--quiet", "--out", str(tmp_path / version))
        assert res.returncode == 0, res.stderr
    scorecard = (tmp_path / "a" / "scorecard.md").read_text(encoding="utf-8")
    assert "ceftriaxone" in scorecard  # the finding with the payload output is in the report
    res = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--markdown", str(tmp_path / "compare.md"))
    assert res.returncode in (0, 1), res.stderr
    for name, text in (("scorecard.md", scorecard), ("compare.md", (tmp_path / "compare.md").read_text())):
        _assert_inert(_rendered_dom(_markdown_page(text, tmp_path / f"{name}.html")), name)
    _assert_inert(_rendered_dom(tmp_path / "a" / "report.html"), "report.html")


def test_control_characters_reach_no_terminal_or_report_raw(tmp_path: Path) -> None:
    """A model id or an answer holding ESC c reset the terminal that printed the scorecard
    (`--format md`), OSC 52 wrote to its clipboard, and U+202E showed "5 gm" as "mg 5" in
    the committee's page. Every report shows them as code points."""
    esc, rlo = "\x1b", "\u202e"
    write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "audio": "a.ogg", "text": "Give ceftriaxone 1 g"},
                                           {"id": f"b{esc}c", "audio": "a.ogg", "text": "Give cefuroxime 750 mg"}])
    shutil.copy(AUDIO, tmp_path / "a.ogg")
    write_jsonl(tmp_path / "out.jsonl", [
        {"id": i, "output": f"Give {esc}]52;c;ZXZpbA==\x07cefotaxime {rlo}gm 5\u202c {esc}c", "model": f"m{esc}c"}
        for i in ("a", f"b{esc}c")])
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "scorers": ["wer", "drug_names", "doses"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {
        "path": "out.jsonl", "model_column": "model"}, "declarations": {"provider": f"Acme{esc}c"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("run", str(suite), "--quiet", "--format", "md", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    res_html = run_cli("report", str(tmp_path / "run"), "--format", "html", "--out", str(tmp_path / "committee.html"))
    assert res_html.returncode == 0, res_html.stderr
    outputs = {"stdout": res.stdout, **{p.name: p.read_text(encoding="utf-8") for p in (
        tmp_path / "run" / "scorecard.md", tmp_path / "run" / "report.html", tmp_path / "committee.html")}}
    assert "cefotaxime" in outputs["scorecard.md"] and "cefotaxime" in outputs["committee.html"]
    for name, text in outputs.items():
        assert esc not in text and rlo not in text and "\x07" not in text, name
    assert "m\\u001bc" in outputs["report.html"] and "u001bc" in outputs["scorecard.md"]


# --- 8. replay files are checked against the dataset ------------------------------------

def test_replay_duplicates_and_unknown_or_missing_ids(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [{"id": f"q{i}", "question": "?", "answer": "A"} for i in range(6)])
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    (tmp_path / "out.csv").write_text("id,output,model\nq0,A,v1\nq0,B,v2\nq1,A,v1\nq1,A,v1\nq2,A,v1\nzz9,A,v1\n",
                                      encoding="utf-8")
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    assert "out.csv: id: 1 id(s) appear more than once with different outputs for task 't' (e.g. 'q0')" in res.stderr
    # `where` tells the versions apart: valid, with counts of what is missing and unknown
    _edit_yaml(tmp_path / "replay.yaml", settings__where={"model": "v1"})
    res = run_cli("validate", str(suite))
    assert res.returncode == 0, res.stderr
    assert "1 repeated row(s) with identical outputs" in res.stdout
    assert "1 id(s) in the replay file are not in the dataset (e.g. 'zz9')" in res.stdout
    assert "3 of 6 item(s) have no row in the replay file and will count as missing (e.g. 'q3', 'q4', 'q5')" \
        in res.stdout


def test_an_export_that_answers_no_item_is_refused_saying_why(tmp_path: Path) -> None:
    """An export whose ids are none of the dataset's (Excel made "007" 7, a cell kept its
    spaces, the wrong id_column) ran, and its scorecard was every item missing, with exit 0."""
    write_jsonl(tmp_path / "items.jsonl", [{"id": f"00{i}", "question": "?", "answer": "A"} for i in range(1, 5)])
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    cases = [("id,output\n1.0,A\n2.0,A\n3.0,B\n", "found ids such as '1.0', '2.0', '3.0' (the ids match once "
              "leading zeros and a trailing '.0' are dropped: a spreadsheet read them as numbers; save them as text)"),
             ("id,output\n 001,A\n002 ,A\n", "the ids match once the spaces around them are trimmed"),
             ("ident,output\n001,A\n", "found ids such as 'A' (is 'output' the column of ids? The file's columns: "
              "ident, output; or, if the file answers other tasks, pair ")]
    for export, why in cases:
        (tmp_path / "out.csv").write_text(export, encoding="utf-8")
        _edit_yaml(tmp_path / "replay.yaml", settings__id_column="output" if "ident" in export else "id")
        res = run_cli("run", str(suite), "--out", str(tmp_path / "run"))
        assert res.returncode == 2 and not (tmp_path / "run").exists()
        assert ("out.csv: " + ("output" if "ident" in export else "id") + ": no item of task 't' has a row in the "
                "replay file; expected ids such as '001', '002', '003', '004', found") in res.stderr, res.stderr
        assert why in res.stderr, res.stderr
    (tmp_path / "out.csv").write_text("id,output,model\n001,A,v1\n", encoding="utf-8")
    _edit_yaml(tmp_path / "replay.yaml", settings__where={"model": "v2"}, settings__id_column="id")
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "found no row that `where` keeps" in res.stderr, res.stderr
    # some ids answered: the run goes on, and the note says how the others differ
    (tmp_path / "out.csv").write_text("id,output,model\n001,A,v2\n002 ,A,v2\n", encoding="utf-8")
    res = run_cli("validate", str(suite))
    assert res.returncode == 0, res.stderr
    assert "some ids in the replay file match the dataset's only once the spaces around them are trimmed" \
        in res.stdout


# --- 9. secrets in answers, permissions -----------------------------------------------

def test_a_key_echoed_in_an_answer_is_never_stored(qa_suite, server, tmp_path: Path) -> None:
    server.responder = lambda body: f"The answer is A. (debug: key={SENTINEL_KEY})"
    suite = qa_suite()
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": SENTINEL_KEY})
    assert res.returncode == 0, res.stderr
    run_dir = only_run(tmp_path / "runs")
    responses = list(iter_jsonl(run_dir / "responses.jsonl"))
    assert responses and all("<redacted>" in r["output"] for r in responses)
    cache_dir = Path(os.environ["HARNESS_CACHE_DIR"])
    stored = [p for d in (run_dir, cache_dir) for p in d.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in stored)
    for path in stored:
        assert SENTINEL_KEY.encode() not in path.read_bytes(), path
    assert SENTINEL_KEY not in res.stdout + res.stderr


def test_only_credentials_are_scrubbed_from_answers(qa_suite, server, tmp_path: Path) -> None:
    """A header that names a deployment is not a secret: scrubbing it would rewrite answers."""
    server.responder = lambda body: f"The answer is A, from production-eu, with {SENTINEL_KEY[:24]}x{SENTINEL_KEY}."
    adapter = {"settings": {"base_url": server.base_url, "model": "m",
                            "headers": {"X-Deployment": "production-eu", "X-Api-Key": "${GATEWAY_KEY}"}}}
    suite = qa_suite(adapter=adapter)
    assert run_cli("run", str(suite), "--quiet", env={"GATEWAY_KEY": SENTINEL_KEY}).returncode == 0
    outputs = {r["output"] for r in iter_jsonl(only_run(tmp_path / "runs") / "responses.jsonl")}
    assert outputs == {f"The answer is A, from production-eu, with {SENTINEL_KEY[:24]}x<redacted>."}


def test_records_and_cache_are_private_unless_shared(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    assert run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"}).returncode == 0
    run_dir = only_run(tmp_path / "runs")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    files = [p for p in run_dir.iterdir() if p.is_file()]
    assert {"manifest.json", "responses.jsonl", "scores.jsonl", "requests.jsonl", "scorecard.json", "scorecard.md",
            "report.html"} <= {p.name for p in files}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    cache = Path(os.environ["HARNESS_CACHE_DIR"])
    assert {stat.S_IMODE(p.stat().st_mode) for p in cache.glob("responses.sqlite*")} == {0o600}
    _edit_yaml(suite, share_records_with_group=True)
    assert run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "shared"),
                   env={"TEST_API_KEY": "k"}).returncode == 0
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "shared" / "manifest.json").stat().st_mode) == 0o640


# --- 10. signals and damaged records ----------------------------------------------------

FAST_RETRY = {"max_attempts": 2, "initial_wait_s": 0.01, "max_wait_s": 0.05, "max_total_wait_s": 5, "jitter": 0.1}


def _chat_suite(tmp_path: Path, server: OpenAIServer, n: int, **suite) -> Path:
    write_jsonl(tmp_path / "items.jsonl", [
        {"id": f"i{i:04d}", "question": f"Item {i:04d}. ANSWER={'ABCD'[i % 4]}", "answer": "ABCD"[i % 4]}
        for i in range(n)])
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "choices": ["A", "B", "C", "D"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "chat.yaml", {"name": "chat", "kind": "openai-chat",
                                        "settings": {"base_url": server.base_url, "model": "m"}})
    return write_yaml(tmp_path / "suite.yaml", {"name": "sig", "tasks": ["task.yaml"], "cache": False,
                                                "adapters": [{"path": "chat.yaml", "retry": FAST_RETRY}], **suite})


def _popen(*args: str, ignore_sigint: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUTF8": "1", "PYTHONPATH": str(ROOT)}
    import signal

    # ignore_sigint: started as a background job of a script is (SIGINT ignored, inherited)
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint
                            else None)


def _wait_for_lines(path: Path, count: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.005)
    raise AssertionError(f"{path} never reached {count} lines")


@pytest.mark.parametrize("background", [False, True])
def test_sigterm_stops_like_ctrl_c(tmp_path: Path, background: bool) -> None:
    with OpenAIServer(latency_s=0.02) as server:
        suite = _chat_suite(tmp_path, server, 150, concurrency=2)
        run_dir = tmp_path / "run"
        proc = _popen("run", str(suite), "--quiet", "--out", str(run_dir), ignore_sigint=background)
        _wait_for_lines(run_dir / "responses.jsonl", 10)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert f"--resume {run_dir}" in err
        assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
        resumed = _popen("run", str(suite), "--quiet", "--resume", str(run_dir))
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
    assert len(list(iter_jsonl(run_dir / "responses.jsonl"))) == 150


def test_request_count_survives_sigkill(tmp_path: Path) -> None:
    with OpenAIServer(latency_s=0.02) as server:
        suite = _chat_suite(tmp_path, server, 120, concurrency=4)
        run_dir = tmp_path / "run"
        proc = _popen("run", str(suite), "--quiet", "--out", str(run_dir))
        _wait_for_lines(run_dir / "responses.jsonl", 40)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)  # requests in flight when the client died still reach the server
        resumed = _popen("run", str(suite), "--quiet", "--resume", str(run_dir))
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        time.sleep(0.1)
        received = server.count("chat")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # Every attempt is logged just before it is sent: the count includes what the killed run sent
    # (before the fix only the resumed part was counted). A request logged in the instant before
    # the kill may not have reached the server: at most the 4 in flight.
    logged = manifest["requests_sent"]
    assert received <= logged <= received + 4, (logged, received)
    assert logged == sum(1 for _ in iter_jsonl(run_dir / "requests.jsonl"))


def test_damaged_manifest_and_non_run_folders_exit_2(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(replay_run(tmp_path), run)
    manifest = (run / "manifest.json").read_text()
    (run / "manifest.json").write_text(manifest[: len(manifest) // 2], encoding="utf-8")
    for args in (("report", str(run)), ("compare", str(run), str(run)),
                 ("run", str(tmp_path / "src" / "suite.yaml"), "--resume", str(run))):
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "damaged run manifest" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("run", str(tmp_path / "src" / "suite.yaml"), "--resume", str(tmp_path / "src"))
    assert res.returncode == 2 and "not a run record" in res.stderr
    res = run_cli("history", str(tmp_path), "--no-plots")  # a damaged run beside others is skipped
    assert res.returncode == 0, res.stderr


def test_merged_findings_equal_the_unsharded_run(tmp_path: Path) -> None:
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "fr", "tasks": [str(ROOT / "tasks/dictation-fr/task.yaml")],
        "adapters": [str(ROOT / "adapters/dictee-vendor-fr-replay.yaml")], "data_roots": [str(ROOT)]})
    whole = run_suite(suite, quiet=True, out=tmp_path / "whole")
    shards = [run_suite(suite, quiet=True, shard=f"{i}/3", out=tmp_path / f"s{i}").run_dir for i in (1, 2, 3)]
    res = run_cli("merge", *map(str, shards), "--out", str(tmp_path / "merged"))
    assert res.returncode == 0, res.stderr
    merged = _card(tmp_path / "merged")
    assert merged["sections"] == whole.scorecard["sections"]
    assert next(s for s in merged["sections"] if s["scorer"] == "drug_names")["data"]["top_drug_errors"]


# --- 11. small ones ---------------------------------------------------------------------

def test_authorization_header_and_api_key_env_together_are_refused(qa_suite, server) -> None:
    suite = qa_suite(adapter={"settings": {"base_url": server.base_url, "model": "m", "api_key_env": "TEST_API_KEY",
                                           "headers": {"Authorization": "Bearer other"}}})
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 2 and "settings.headers.Authorization" in res.stderr and "ambiguous" in res.stderr


def test_an_oversized_field_is_refused_before_sending(qa_suite, server) -> None:
    rows = [{"id": "q0", "question": "x" * 2_000_000, "answer": "A"}, {"id": "q1", "question": "?", "answer": "B"}]
    res = run_cli("run", str(qa_suite(rows=rows)), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 2
    assert "qa.jsonl:1: question: field of 2,000,000 bytes in item 'q0'" in res.stderr
    assert "max_field_bytes" in res.stderr and server.count() == 0


def test_config_error_is_importable_from_the_package() -> None:
    assert ConfigError.__module__ == "harness.errors"


@pytest.mark.parametrize(("ok", "code"), [(True, 0), (False, 1)])
def test_make_bench_exits_1_on_a_missed_target(tmp_path: Path, ok: bool, code: int) -> None:
    (tmp_path / "bench_fake.py").write_text(
        "from targets import verdict\n\n\ndef main():\n"
        f"    print('fake: ' + verdict({ok}, 'bench_fake'))\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "bench_fake"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == code, res.stdout + res.stderr
    assert ("FAIL" in res.stdout) == (not ok)


# --- 12. catalogues lose no reference silently ------------------------------------------

BIB = ("@article{one, title={Effects of {CYP2D6} genotype on {tamoxifen}}, author={Doe, J.}, "
       "journal={N Engl J Med}, year={2019}, doi={10.1056/ONE}}\n") + """\
@book{two,title = "A {nested {deep}} title",year=2020}
@article{three,
  title = {C\\'{e}tirizine et {Rhume}},
  year = 2021,
  pmid = {31234567}
}
@article{broken, title={unclosed, year=2001
@misc{four, title={Last one}, year={2022}}
"""

RIS = "\n".join(["TY  - JOUR", "TI  - A first title", "AU  - Doe, J", "PY  - 2019", "DO  - 10.1/xyz", "ER  - ",
                 "TY  - JOUR", "TI  - No closing line",
                 "TY  - JOUR", "T1  - Third", "JO  - Lancet", "ER  - ", ""])


def test_catalogues_read_with_maintained_parsers_and_report_what_they_lose(tmp_path: Path) -> None:
    from harness.citations.catalogue import read_records, survey

    (tmp_path / "works.bib").write_text(BIB, encoding="utf-8")
    (tmp_path / "works.ris").write_text(RIS, encoding="utf-8")
    titles = {r["title"] for r in read_records(tmp_path / "works.bib")}
    assert titles == {"Effects of CYP2D6 genotype on tamoxifen", "A nested deep title", "Cétirizine et Rhume",
                      "Last one"}
    read, lost = survey(tmp_path / "works.bib")
    assert read == 4 and [u.line for u in lost] == [8]
    read, lost = survey(tmp_path / "works.ris")
    assert read == 2 and [u.line for u in lost] == [7]
    write_jsonl(tmp_path / "items.jsonl", [{"id": "q0", "question": "?", "answer": "A"}])
    (tmp_path / "out.csv").write_text("id,output\nq0,A\n", encoding="utf-8")
    task: dict[str, Any] = {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                            "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}},
                            "scorers": ["exact_match", "citations"],
                            "citations": {"catalogue": ["works.bib", "works.ris"]}}
    write_yaml(tmp_path / "task.yaml", task)
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("validate", str(suite))
    assert res.returncode == 0, res.stderr
    assert "works.bib: 4 catalogue entries read, 1 unreadable" in res.stdout
    assert re.search(r"works\.bib:8: BibTeX entry not parsed", res.stdout)
    assert "works.ris:7: RIS entry without its closing 'ER  -' line" in res.stdout
    # closed world: a lost entry would make its citations 'fabricated', so it is an error
    task["citations"]["closed_world"] = True
    write_yaml(tmp_path / "task.yaml", task)
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "works.bib:8" in res.stderr and "closed-world" in res.stderr
