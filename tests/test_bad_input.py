"""Every bad input exits 2, names the file and the field, and calls no model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_cli, write_jsonl, write_yaml


def _run_expect_2(suite: Path, server, *needles: str) -> str:
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": "k"})
    assert res.returncode == 2, res.stdout + res.stderr
    for needle in needles:
        assert needle in res.stderr, (needle, res.stderr)
    assert server.count() == 0, "a model was called despite bad input"
    assert not (suite.parent / "runs").exists() or not any((suite.parent / "runs").iterdir())
    return res.stderr


def test_missing_field(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    data = yaml.safe_load((tmp_path / "tasks/qa.yaml").read_text())
    del data["data_class"]
    write_yaml(tmp_path / "tasks/qa.yaml", data)
    _run_expect_2(suite, server, "tasks/qa.yaml", "data_class", "required field is missing")


def test_wrong_type(qa_suite, server) -> None:
    suite = qa_suite(suite={"repeats": "twice"})
    err = _run_expect_2(suite, server, "suite.yaml:", "repeats", "'twice'")
    assert "integer" in err


def test_unknown_adapter_kind_suggests(qa_suite, server) -> None:
    suite = qa_suite(adapter={"kind": "opeanai-chat"})
    _run_expect_2(suite, server, "adapters/chat.yaml:2", "kind", "unknown adapter kind",
                  "did you mean 'openai-chat'?")


def test_unknown_field_suggests(qa_suite, server) -> None:
    suite = qa_suite(suite={"concurency": 3})
    _run_expect_2(suite, server, "suite.yaml", "concurency", "unknown field", "did you mean 'concurrency'?")


def test_a_key_written_in_a_profile_is_refused_without_printing_it(qa_suite, server) -> None:
    suite = qa_suite(adapter={"settings": {"base_url": server.base_url, "model": "m", "api_key": "sk-live-0123456789"}})
    err = _run_expect_2(suite, server, "adapters/chat.yaml", "settings.api_key", "unknown field",
                        "a credential is never written in a file: put it in an environment variable and name "
                        "the variable (api_key_env)")
    assert "sk-live-0123456789" not in err


def test_unknown_scorer(qa_suite, server) -> None:
    suite = qa_suite(task={"scorers": ["exact_mach"]})
    _run_expect_2(suite, server, "tasks/qa.yaml", "scorers[0]", "unknown scorer", "did you mean 'exact_match'?")


def test_an_option_given_to_a_scorer_that_takes_none(qa_suite, server) -> None:
    suite = qa_suite(task={"scorers": [{"name": "exact_match", "normalise": True}]})
    err = _run_expect_2(suite, server, "tasks/qa.yaml", "scorers[0].normalise", "unknown field",
                        "expected no field here: exact_match takes no options")
    assert "expected one of: \n" not in err


def test_scorer_for_wrong_kind(qa_suite, server) -> None:
    suite = qa_suite(task={"scorers": ["wer"]})
    _run_expect_2(suite, server, "tasks/qa.yaml", "scorers[0]", "does not apply to 'qa'")


def test_missing_dataset_file(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite(task={"dataset": {"path": "../data/nope.jsonl"}})
    _run_expect_2(suite, server, "tasks/qa.yaml", "dataset.path", "dataset file not found", "nope.jsonl")


def test_duplicate_ids(qa_suite, server) -> None:
    rows = [{"id": "q1", "question": "a", "answer": "A"}, {"id": "q1", "question": "b", "answer": "B"}]
    _run_expect_2(qa_suite(rows=rows), server, "qa.jsonl:2", "id", "duplicate id", "'q1'")


def test_empty_dataset(qa_suite, server) -> None:
    _run_expect_2(qa_suite(rows=[]), server, "qa.jsonl", "dataset is empty")


def test_a_reference_that_cannot_be_scored(qa_suite, server, tmp_path: Path) -> None:
    """An answer column holding the option's text instead of its letter, or an object, was
    scored wrong on every such item, silently; a translation's reference given as a list was
    a scoring error on each item, found during the run."""
    rows = [{"id": "q1", "question": "a", "answer": "b)"}, {"id": "q2", "question": "b", "answer": "Atenolol"},
            {"id": "q3", "question": "c", "answer": {"label": "A"}}]
    _run_expect_2(qa_suite(rows=rows), server, "qa.jsonl:2: answer: reference 'Atenolol' is not one of the choices "
                  "A, B, C, D (scorer exact_match)", "qa.jsonl:3: answer: reference must be a text, a number or a "
                  "list of acceptable answers, found dict")
    rows = [{"id": "t1", "source": "Take one tablet.", "answer": ["Prenez un comprimé.", "Prendre un comprimé."]}]
    suite = qa_suite(rows=rows, task={"kind": "translation", "language": "fr", "choices": None,
                                      "prompt": "Translate: {{ source }}"})
    _run_expect_2(suite, server, "qa.jsonl:1: answer: reference must be a text, found list", "(scorer bleu)")
    suite = qa_suite(rows=rows, task={"kind": "generation", "choices": None, "prompt": "Summarize: {{ source }}",
                                      "scorers": ["wer"]})
    _run_expect_2(suite, server, "qa.jsonl:1: answer: reference must be a text, found list", "(scorer wer)")


def test_missing_dataset_field(qa_suite, server) -> None:
    rows = [{"id": "q1", "question": "a", "answer": "A"}, {"id": "q2", "answer": "B"}]
    _run_expect_2(qa_suite(rows=rows), server, "qa.jsonl:2", "question", "required field missing")


def test_non_utf8_dataset(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    (tmp_path / "data/qa.jsonl").write_bytes('{"id": "q1", "question": "caf\xe9", "answer": "A"}\n'.encode("latin-1"))
    _run_expect_2(suite, server, "qa.jsonl:1", "not valid UTF-8", "0xe9")
    # a CSV saved by Excel as "CSV" (Windows-1252) names its line and what to save it as
    (tmp_path / "data/qa.csv").write_bytes("id,question,answer\nq1,Q,A\nq2,caf\xe9,B\n".encode("cp1252"))
    suite = qa_suite(task={"dataset": {"path": "../data/qa.csv", "fields": {"reference": "answer"}}})
    _run_expect_2(suite, server, "qa.csv:3: not valid UTF-8; expected a UTF-8 CSV file, found byte 0xe9 "
                  "(save it as UTF-8: Excel's 'CSV UTF-8')")


def test_non_utf8_config(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    (tmp_path / "tasks/qa.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    _run_expect_2(suite, server, "tasks/qa.yaml", "not valid UTF-8")


def test_an_empty_suite_file_is_called_empty(qa_suite, server) -> None:
    suite = qa_suite()
    suite.write_text("# nothing yet\n", encoding="utf-8")
    _run_expect_2(suite, server, "suite.yaml: a suite file must be a YAML mapping; expected key: value pairs, "
                                 "found an empty file")


def test_an_adapter_profile_that_is_not_a_mapping(qa_suite, server, tmp_path: Path) -> None:
    suite = qa_suite()
    (tmp_path / "adapters/chat.yaml").write_text("- openai-chat\n", encoding="utf-8")
    _run_expect_2(suite, server, "adapters/chat.yaml: an adapter profile must be a YAML mapping; expected key: "
                                 "value pairs, found list")


def test_a_rate_written_as_a_percentage_is_refused_not_a_gate_that_cannot_fail(qa_suite, server) -> None:
    """`max: 5` on error_rate (meant: 5%) was a gate no run could fail, `min: 90` on accuracy
    one no run could pass, and `success: '>= 90%'` said only "expected a comparison"."""
    suite = qa_suite(suite={"gates": [{"metric": "qa-test/error_rate", "max": 5},
                                      {"metric": "qa-test/accuracy", "min": 90},
                                      {"metric": "qa-test/latency_s", "max": 5}],
                            "objectives": [{"metric": "qa-test/accuracy", "stop": "< 50"}]})
    stderr = _run_expect_2(suite, server, "gates[0].max: qa-test/error_rate is a proportion, from 0 to 1; expected "
                                          "a number from 0 to 1, found 5 (5% is 0.05)",
                           "gates[1].min: qa-test/accuracy is a proportion", "found 90 (90% is 0.9)",
                           "objectives[0].stop: qa-test/accuracy is a proportion")
    assert "gates[2]" not in stderr  # a latency is no proportion: 5 s is a fine limit
    suite = qa_suite(suite={"margins": {"qa-test/accuracy": 5, "qa-test/acuracy": 0.05},
                            "gates": [{"metric": "qa-test/accuracy", "non_inferior_to": "baseline", "margin": 3}]})
    _run_expect_2(suite, server, "margins.qa-test/accuracy: qa-test/accuracy is a proportion: a margin of 5 hides "
                                 "every regression; expected a margin below 1, found 5 (5 points is 0.05)",
                  "margins.qa-test/acuracy: unknown metric", "did you mean 'qa-test/accuracy'?",
                  "gates[0].margin: qa-test/accuracy is a proportion: a margin of 3 hides every regression")
    suite = qa_suite(suite={"objectives": [{"metric": "qa-test/accuracy", "success": ">= 90%"}]})
    _run_expect_2(suite, server, "objectives[0].success: expected a proportion, not a percentage: '>= 0.9' for "
                                 "'>= 90%'")


def test_a_concurrency_no_machine_can_hold_is_refused(qa_suite, server) -> None:
    """`concurrency: 100000000` made the run create a task per request slot: all the machine's
    memory, then a hang that SIGTERM could not end. At most 10,000, in the suite and per adapter."""
    _run_expect_2(qa_suite(suite={"concurrency": 100_000_000}), server,
                  "suite.yaml:", "concurrency: Input should be less than or equal to 10000, found 100000000")
    suite = qa_suite(suite={"adapters": [{"path": "adapters/chat.yaml", "concurrency": 50_000}]})
    _run_expect_2(suite, server, "adapters[0].concurrency: Input should be less than or equal to 10000")


def test_yaml_syntax_error(qa_suite, server) -> None:
    suite = qa_suite()
    suite.write_text(suite.read_text() + "gates: [unclosed\n", encoding="utf-8")
    _run_expect_2(suite, server, "suite.yaml:", "YAML syntax error")


def test_a_key_given_twice_is_an_error_not_a_silent_drop(qa_suite, server, tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys: a second `gates:` silently dropped the first gates
    (a CI job would then pass a regression), a second `prompt:` replaced the first."""
    suite = qa_suite()
    text = suite.read_text(encoding="utf-8")
    gates = "gates:\n  - {metric: qa/accuracy, min: 0.9}\ngates:\n  - {metric: qa/error_rate, max: 0.5}\n"
    suite.write_text(text + gates, encoding="utf-8")
    second = len(text.splitlines()) + 3
    stderr = _run_expect_2(suite, server, f"suite.yaml:{second}: gates: key given twice (first at line {second - 2})")
    assert stderr.count("given twice") == 1  # the two lists' own keys are not duplicates
    suite.write_text(text, encoding="utf-8")
    task = tmp_path / "tasks/qa.yaml"
    task.write_text(task.read_text(encoding="utf-8") + "prompt: 'Answer: {{ question }}'\n", encoding="utf-8")
    _run_expect_2(suite, server, "tasks/qa.yaml:", "prompt: key given twice")


def test_alias_bombs_and_deep_nesting_are_refused_not_a_hang(qa_suite, server, tmp_path: Path) -> None:
    """Task files come from others. Nine aliases nine deep (387 million values from eleven
    lines) hung `harness validate` until memory ran out; a list nested 5,000 deep was an
    "unexpected RecursionError". Both are bad input now; ordinary anchors still work."""
    suite = qa_suite()
    text = suite.read_text(encoding="utf-8")
    lol = ['lol: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lol += [f"l{i}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    task = tmp_path / "tasks/qa.yaml"
    original = task.read_text(encoding="utf-8")
    task.write_text(original + "\n".join(lol) + "\n", encoding="utf-8")
    _run_expect_2(suite, server, "tasks/qa.yaml:", "YAML aliases (*name) expand to too many values")
    task.write_text(original, encoding="utf-8")
    suite.write_text(text + "description: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    stderr = _run_expect_2(suite, server, "suite.yaml:", "YAML nested too deeply")
    assert "Traceback" not in stderr and "unexpected" not in stderr
    # an anchor used a few times, the way shared settings are written, is read as before
    assert "name: qa-suite" in text
    suite.write_text(text.replace("name: qa-suite", "name: &name qa-suite\ndescription: *name", 1), encoding="utf-8")
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr


def test_missing_audio_file(tmp_path: Path, server) -> None:
    write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "audio": "audio/missing.ogg", "text": "x"}])
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "stt.yaml", {"name": "stt", "kind": "openai-transcription",
                                       "settings": {"base_url": server.base_url, "model": "m"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["stt.yaml"]})
    _run_expect_2(suite, server, "items.jsonl:1", "audio", "audio file not found", "missing.ogg")


def test_data_class_above_clearance_sends_nothing(qa_suite, server) -> None:
    suite = qa_suite(task={"data_class": "health"})
    _run_expect_2(suite, server, "adapters/chat.yaml", "declarations.data_clearance",
                  "holds 'health' data", "cleared for 'public' only")


def test_missing_api_key_env(qa_suite, server) -> None:
    suite = qa_suite()
    res = run_cli("run", str(suite), "--quiet", env={"TEST_API_KEY": ""})
    assert res.returncode == 2 and "TEST_API_KEY is not set" in res.stderr
    assert server.count() == 0


def test_unknown_metric_in_gate(qa_suite, server) -> None:
    suite = qa_suite(suite={"gates": [{"metric": "qa-test/acuracy", "min": 0.5}]})
    _run_expect_2(suite, server, "suite.yaml", "gates[0].metric", "did you mean 'qa-test/accuracy'?")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_validate_and_run_agree(qa_suite, server, command: str) -> None:
    suite = qa_suite(adapter={"kind": "nope"})
    res = run_cli(command, str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 2 and "unknown adapter kind" in res.stderr
    assert server.count() == 0


DEID_ROWS = [
    {"id": "ok", "text": "Madame Claire Rousseau, vue le 3 mars.",
     "gold": "Madame [NAME:Claire Rousseau], vue le 3 mars."},
    {"id": "spans", "text": "Appeler Jean Morel.", "gold": [{"type": "NAME", "start": 8, "end": 18}]},
    {"id": "other-scheme", "text": "Appeler Jean Morel.", "gold": [{"type": "PER", "start": 8, "end": 18}]},
]


@pytest.mark.parametrize(("gold", "needle"), [
    ("Madame [NAME:Claire Roussea], vue le 3 mars.", "not the input with [TYPE:text] marks"),
    ([{"type": "NAME", "start": 8, "end": 80}], "gold span 8-80 is not inside the input"),
    ([{"type": "NAME", "begin": 8, "end": 18}], "a list of {type, start, end} (KeyError: 'start')"),
])
def test_deidentification_gold_that_cannot_be_scored(qa_suite, server, tmp_path: Path, gold, needle: str) -> None:
    """Found at scoring only, such an item cost every system a request and then lost its scores."""
    rows = [*DEID_ROWS, {"id": "bad", "text": "Appeler Jean Morel.", "gold": gold}]
    suite = qa_suite(task={"kind": "deidentification", "choices": None, "prompt": "{{ text }}",
                           "dataset": {"path": "../data/qa.jsonl", "fields": {"input": "text", "reference": "gold"}}},
                     rows=rows)
    _run_expect_2(suite, server, "data/qa.jsonl:4", "gold", needle, "scorer deid")


def test_deidentification_gold_that_can_be_scored_runs(qa_suite, server) -> None:
    suite = qa_suite(task={"kind": "deidentification", "choices": None, "prompt": "{{ text }}",
                           "dataset": {"path": "../data/qa.jsonl", "fields": {"input": "text", "reference": "gold"}}},
                     rows=DEID_ROWS)
    res = run_cli("validate", str(suite), env={"TEST_API_KEY": "k"})
    assert res.returncode == 0, res.stderr
