"""Issue 10, point 1: every valid RFC 4180 CSV loads (replay exports and datasets): quoted
line breaks and quotes, a byte-order mark, pandas' unnamed index column, a declared `;`
delimiter; a malformed file names its line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import yaml
from conftest import run_cli, write_yaml

N = 4000  # with answers of ~650 bytes: a 2.6 MB export, several of Arrow's 1 MB blocks


def _export(rows: list[list[str]], delimiter: str = ",", bom: bool = False) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8")


def _answer(i: int) -> str:
    letter = "ABCD"[i % 4]
    return (f'Réponse "détaillée" n°{i}:\nLe patient, 72 ans; créatinine 110 µmol/L.\n' * 8) + f"ANSWER: {letter}"


def _suite(tmp_path: Path, dataset: str, replay: dict, **dataset_opts: str) -> Path:
    write_yaml(tmp_path / "task.yaml", {
        "name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}", "choices": ["A", "B", "C", "D"],
        "answer_pattern": r"ANSWER:\s*([ABCD])",
        "dataset": {"path": dataset, "fields": {"reference": "answer"}, **dataset_opts}})
    write_yaml(tmp_path / "replay.yaml", {"name": "export", "kind": "replay", "settings": replay})
    return write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})


def test_a_large_export_with_multi_line_answers_bom_and_index_column(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_bytes(_export(
        [["id", "question", "answer"]]
        + [[f"q{i}", f"Question {i}\nsur deux lignes, avec \"guillemets\"", "ABCD"[i % 4]] for i in range(N)],
        bom=True))
    (tmp_path / "export.csv").write_bytes(_export(
        [["", "id", "output", "model"]] + [[str(i), f"q{i}", _answer(i), "v1"] for i in range(N)], bom=True))
    assert (tmp_path / "export.csv").stat().st_size > 2_000_000
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv", "model_column": "model"})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    rows = {r["metric"]: r for r in card["rows"]}
    assert rows["accuracy"]["value"] == 1.0 and rows["accuracy"]["n"] == N
    assert rows["missing_rate"]["value"] == 0
    first = json.loads((tmp_path / "run" / "responses.jsonl").read_text().splitlines()[0])
    assert first["output"].count("\n") == 16 and '"détaillée"' in first["output"]


def test_a_declared_semicolon_delimiter(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_bytes(_export(
        [["id", "question", "answer"]] + [[f"q{i}", f"Q{i}; vraiment?", "ABCD"[i % 4]] for i in range(8)], ";"))
    (tmp_path / "export.csv").write_bytes(_export(
        [["id", "output"]] + [[f"q{i}", _answer(i)] for i in range(8)], ";"))
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv", "delimiter": ";"}, delimiter=";")
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    acc = next(r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]
               if r["metric"] == "accuracy")
    assert acc["value"] == 1.0 and acc["n"] == 8


def test_a_malformed_csv_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_bytes(_export(
        [["id", "question", "answer"]] + [[f"q{i}", "Q", "A"] for i in range(4)]))
    good = _export([["id", "output"], ["q0", "multi\nline"], ["q1", "B"]]).decode()
    (tmp_path / "export.csv").write_text(good + "q2,C,extra,fields\r\nq3,D\r\n", encoding="utf-8")
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv"})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    assert "export.csv:5: cannot read replay file: row has 4 fields, the header has 2" in res.stderr, res.stderr
    (tmp_path / "export.csv").write_text(good, encoding="utf-8")
    (tmp_path / "items.csv").write_text("id,question,answer\r\nq0,Q,A\r\nq1,\"two\nlines\",B,oops\r\n",
                                        encoding="utf-8")
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "items.csv:3: row has 4 fields, the header has 3" in res.stderr, res.stderr


def test_a_transcription_task_without_audio_runs_when_every_adapter_replays(tmp_path: Path, server) -> None:
    """Issue 10 (2): published transcripts can be scored without the audio; an adapter that
    needs the audio still gets exit 2 naming the field."""
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "text": "give five milligrams"}) + "\n"
                                                  for i in range(3)), encoding="utf-8")
    (tmp_path / "asr.csv").write_text("id,output\nc0,give five milligrams\nc1,give fine milligrams\nc2,give five\n",
                                      encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {"name": "d", "kind": "transcription", "data_class": "public",
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "text"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "asr", "kind": "replay", "settings": {"path": "asr.csv"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["tasks"]["d"]["audio_digest"] is None and manifest["tasks"]["d"]["audio_read"] is False
    wer = next(r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"] if r["metric"] == "wer")
    assert wer["value"] == 2 / 9
    write_yaml(tmp_path / "stt.yaml", {"name": "stt", "kind": "openai-transcription",
                                       "settings": {"base_url": server.base_url, "model": "whisper-1"}})
    write_yaml(suite, {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml", "stt.yaml"]})
    res = run_cli("run", str(suite), "--quiet")
    assert res.returncode == 2 and "items.jsonl:1: audio: required field missing or empty" in res.stderr
    assert server.count() == 0


def test_an_export_is_read_as_text_as_written(tmp_path: Path) -> None:
    """Arrow infers column types: left to it, id "007" read as 7 (answering item "7"), a
    `where` on version "2.10" compared "2.1", an answer "1.50" became "1.5". Every column of a
    replay CSV is text, as written."""
    (tmp_path / "items.csv").write_bytes(_export(
        [["id", "question", "answer"], ["007", "Q", "A"], ["7", "Q", "B"], ["0.50", "Q", "C"]]))
    (tmp_path / "export.csv").write_bytes(_export(
        [["id", "version", "output", "latency"],
         ["007", "2.10", "ANSWER: A", "1.50"], ["7", "2.10", "ANSWER: B", "0.25"], ["0.50", "2.10", "ANSWER: C", "1e0"],
         ["007", "2.1", "ANSWER: D", "9"], ["7", "2.1", "ANSWER: D", "9"], ["0.5", "2.10", "ANSWER: D", "9"]]))
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv", "where": {"version": "2.10"},
                                           "latency_column": "latency"})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    assert rows["accuracy"]["value"] == 1.0 and rows["accuracy"]["n"] == 3
    assert rows["missing_rate"]["value"] == 0
    lines = (tmp_path / "run" / "responses.jsonl").read_text().splitlines()
    responses = {r["item_id"]: r for r in map(json.loads, lines)}
    assert {i: r["output"] for i, r in responses.items()} == {"007": "ANSWER: A", "7": "ANSWER: B", "0.50": "ANSWER: C"}
    assert responses["007"]["latency_s"] == 1.5 and responses["0.50"]["latency_s"] == 1.0


def test_an_export_not_in_utf8_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_bytes(_export([["id", "question", "answer"], ["q0", "Q", "A"]]))
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv", "output_column": "réponse"})
    for export in ("id,réponse\nq0,café\n".encode("latin-1"), "id,réponse\nq0,".encode() + "café\n".encode("latin-1")):
        (tmp_path / "export.csv").write_bytes(export)
        res = run_cli("validate", str(suite))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert "export.csv: cannot read replay file:" in res.stderr and "UTF" in res.stderr, res.stderr


def test_a_dataset_field_longer_than_csv_s_default_limit(tmp_path: Path) -> None:
    """Python's csv refuses fields over 128 KB by default: a dataset with a long consultation
    transcript crashed validation (exit 3, traceback). The suite's `max_field_bytes` is the
    limit that applies."""
    transcript = "Médecin : et depuis quand ? Patient : trois jours, avec de la fièvre.\n" * 3000
    assert len(transcript.encode()) > 131072
    (tmp_path / "items.csv").write_bytes(_export(
        [["id", "question", "answer"]] + [[f"q{i}", transcript if i == 1 else "Q", "ABCD"[i % 4]] for i in range(4)]))
    (tmp_path / "export.csv").write_bytes(_export([["id", "output"]] + [[f"q{i}", _answer(i)] for i in range(4)]))
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv"})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    acc = next(r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]
               if r["metric"] == "accuracy")
    assert acc["value"] == 1.0 and acc["n"] == 4
    write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"],
                                         "max_field_bytes": 100_000})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "items.csv:3: question: field of" in res.stderr, res.stderr


def test_a_column_named_twice_is_an_error(tmp_path: Path) -> None:
    """A header naming a column twice ("answer" twice in a dataset, "output" twice in an
    export) left the reader to pick one silently: which answer was scored?"""
    (tmp_path / "items.csv").write_bytes(_export([["id", "question", "answer", "answer"], ["q0", "Q", "A", "B"]]))
    (tmp_path / "export.csv").write_bytes(_export([["", "id", "output"], ["0", "q0", _answer(0)]]))
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv"})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "items.csv:1: answer: column named twice in the header" in res.stderr, res.stderr
    (tmp_path / "items.csv").write_bytes(_export([["id", "question", "answer"], ["q0", "Q", "A"]]))
    (tmp_path / "export.csv").write_bytes(_export([["id", "output", "output"], ["q0", _answer(0), "B"]]))
    res = run_cli("validate", str(suite))
    assert res.returncode == 2, res.stderr
    assert "export.csv:1: cannot read replay file: column 'output' named twice in the header" in res.stderr


def test_a_french_excel_export_with_decimal_commas(tmp_path: Path) -> None:
    """French Excel writes `;` between fields and `,` as the decimal mark: "0,8" failed
    float() on every item during the run (each an error). Validation now names the first
    cell and suggests `decimal: ','`, which reads the numbers."""
    (tmp_path / "items.csv").write_bytes(_export(
        [["id", "question", "answer"]] + [[f"q{i}", "Q", "AB"[i % 2]] for i in range(3)], ";", bom=True))
    (tmp_path / "export.csv").write_bytes(_export(
        [["id", "réponse", "latence", "coût"], ["q0", "ANSWER: A", "0,8", "0,002"],
         ["q1", "Réponse sur\ndeux lignes ; ANSWER: B", "1,25", "0,003"], ["q2", "ANSWER: A", "2", ""]], ";", bom=True))
    replay = {"path": "export.csv", "delimiter": ";", "output_column": "réponse", "latency_column": "latence",
              "cost_column": "coût"}
    suite = _suite(tmp_path, "items.csv", replay, delimiter=";")
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "refused"))
    assert res.returncode == 2 and not (tmp_path / "refused").exists()
    assert "export.csv:2: latence: not a number: '0,8'" in res.stderr and "decimal: ',' in" in res.stderr, res.stderr
    suite = _suite(tmp_path, "items.csv", {**replay, "decimal": ","}, delimiter=";")
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    assert rows["accuracy"]["value"] == 1.0 and rows["error_rate"]["value"] == 0
    assert abs(rows["latency_s"]["value"] - (0.8 + 1.25 + 2) / 3) < 1e-12 and rows["cost"]["n"] == 2


def test_a_file_written_with_another_delimiter_is_one_error_naming_it(tmp_path: Path) -> None:
    """A `;` file read with `,` was a one-column header: the dataset gave three errors an item
    (id, question and answer "missing"), and an export whose rows held decimal commas was
    refused as "row has 2 fields, the header has 1"."""
    (tmp_path / "items.csv").write_bytes(_export(
        [["id", "question", "answer"]] + [[f"q{i}", "Q", "AB"[i % 2]] for i in range(30)], ";"))
    (tmp_path / "export.csv").write_bytes(_export(
        [["id", "output", "latency"]] + [[f"q{i}", "ANSWER: A", "0,8"] for i in range(30)], ";"))
    replay = {"path": "export.csv", "latency_column": "latency", "decimal": ","}
    res = run_cli("validate", str(_suite(tmp_path, "items.csv", {**replay, "delimiter": ";"})))
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert ("items.csv:1: the header is one column, 'id;question;answer': the file is separated by ';', "
            "not ','; expected delimiter: ';' under dataset in") in errors[0]
    res = run_cli("validate", str(_suite(tmp_path, "items.csv", replay, delimiter=";")))
    assert res.returncode == 2
    assert ("export.csv:1: cannot read replay file: the header is one column, 'id;output;latency': the file is "
            "separated by ';', not ','") in res.stderr, res.stderr


def test_rows_of_empty_fields_that_spreadsheets_add_are_no_items(tmp_path: Path) -> None:
    """Excel writes `;;` rows after the data. In a dataset each was an item with every field
    "missing" (and their empty ids "duplicates"); in an export, an unknown id repeated. A bad
    number after such a row, or after a blank line, is named on its own line."""
    rows = [["id", "question", "answer"]] + [[f"q{i}", "Q", "AB"[i % 2]] for i in range(3)]
    (tmp_path / "items.csv").write_bytes(_export(rows + [["", "", ""]] * 3, ";"))
    export = _export([["id", "output", "latency"], ["q0", "ANSWER: A", "0,5"], ["", "", ""]], ";").decode()
    export += "\r\nq1;ANSWER: B;lent\r\nq2;ANSWER: A;0,7\r\n;;\r\n;;\r\n"
    (tmp_path / "export.csv").write_text(export, encoding="utf-8")
    replay = {"path": "export.csv", "delimiter": ";", "latency_column": "latency", "decimal": ","}
    suite = _suite(tmp_path, "items.csv", replay, delimiter=";")
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'export.csv'}:5: latency: not a number: 'lent'; "
                      "expected a number, zero or more, such as 0,8"], res.stderr
    (tmp_path / "export.csv").write_text(export.replace("lent", "1,5"), encoding="utf-8")
    res = run_cli("run", str(suite), "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    assert "note:" not in res.stdout + res.stderr  # no unknown or repeated id
    rows_out = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    assert rows_out["accuracy"]["value"] == 1.0 and rows_out["accuracy"]["n"] == 3
    assert rows_out["latency_s"]["value"] == (0.5 + 1.5 + 0.7) / 3


def test_a_negative_or_infinite_cost_or_latency_is_refused_not_averaged(tmp_path: Path) -> None:
    """A cost of -1 (a sentinel for "unknown" in many exports) was averaged in: the mean cost
    came out negative and a cost gate passed. An infinite latency vanished from the mean.
    Each is now bad input with its line; NaN reads as not measured, like an empty cell; the
    one-screen summary shows a gated latency or cost once, not twice."""
    (tmp_path / "items.csv").write_bytes(_export([["id", "question", "answer"]] +
                                                 [[f"q{i}", "Q", "A"] for i in range(3)]))
    replay = {"path": "export.csv", "latency_column": "latency", "cost_column": "cost"}
    suite = _suite(tmp_path, "items.csv", replay)
    write_yaml(suite, {**yaml.safe_load(suite.read_text()), "gates": [{"metric": "t/cost", "max": 0.05},
                                                                       {"metric": "t/latency_s", "max": 1.0}]})
    for bad, error in ((["q2", "ANSWER: A", "0.7", "-1"], "cost: negative: '-1'"),
                       (["q2", "ANSWER: A", "inf", "0.02"], "latency: infinite: 'inf'"),
                       (["q2", "ANSWER: A", "-0.1", "0.02"], "latency: negative: '-0.1'")):
        (tmp_path / "export.csv").write_bytes(_export([["id", "output", "latency", "cost"],
                                                       ["q0", "ANSWER: A", "0.5", "0.01"],
                                                       ["q1", "ANSWER: A", "NaN", "NaN"], bad]))
        res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "never"))
        assert res.returncode == 2 and f"export.csv:4: {error}; expected a number, zero or more" in res.stderr, \
            res.stderr
        assert not (tmp_path / "never").exists()
    (tmp_path / "export.csv").write_bytes(_export([["id", "output", "latency", "cost"],
                                                   ["q0", "ANSWER: A", "0.5", "0.01"],
                                                   ["q1", "ANSWER: A", "NaN", "NaN"],
                                                   ["q2", "ANSWER: A", "0.7", "0.02"]]))
    res = run_cli("run", str(suite), "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    assert rows["cost"]["n"] == 2 and abs(rows["cost"]["value"] - 0.015) < 1e-12
    assert rows["latency_s"]["n"] == 2 and abs(rows["latency_s"]["value"] - 0.6) < 1e-12
    shown = res.stdout.splitlines()
    assert sum(line.startswith("Latency, s") for line in shown) == 1, res.stdout
    assert sum(line.startswith("Cost per 1,000 items") for line in shown) == 1, res.stdout


def test_the_summary_shows_failed_and_missing_answers_whenever_there_are_some(tmp_path: Path) -> None:
    """A run where every request failed printed "Accuracy —" and nothing else: the failures
    were in the report only. The one-screen summary now shows the failure and missing rates
    whenever they are not zero, and a gate on accuracy fails for want of data."""
    (tmp_path / "items.csv").write_bytes(_export([["id", "question", "answer"]] +
                                                 [[f"q{i}", "Q", "A"] for i in range(40)]))
    (tmp_path / "export.csv").write_bytes(_export([["id", "output", "error"]] + [
        [f"q{i}", "", "HTTP 500"] if i % 4 else [f"q{i}", "ANSWER: A", ""] for i in range(0, 40, 2)]))
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv", "error_column": "error"})
    write_yaml(suite, {**yaml.safe_load(suite.read_text()), "gates": [{"metric": "t/accuracy", "min": 0.9}]})
    res = run_cli("run", str(suite), "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stdout + res.stderr
    shown = {line.split("  ")[0]: line for line in res.stdout.splitlines()}
    assert "0.250" in shown["Requests failed ↓"] and "0.500" in shown["Items without an answer ↓"], res.stdout
    (tmp_path / "export.csv").write_bytes(_export([["id", "output", "error"]] +
                                                  [[f"q{i}", "", "HTTP 500"] for i in range(40)]))
    res = run_cli("run", str(suite), "--out", str(tmp_path / "run2"))
    assert res.returncode == 1 and "t/accuracy (export): no data" in res.stdout, res.stdout
    assert "Requests failed ↓               1.00 [0.912, 1.00]" in res.stdout, res.stdout


def test_a_header_in_other_case_is_named_once_with_the_mapping_that_reads_it(tmp_path: Path) -> None:
    """A sheet with `ID,Question,Answer` printed the same three errors for each of the first
    rows, then stopped at 20 without saying more were hidden. Each missing field is now one
    problem with its count and the mapping to write, and that mapping works for a prompt
    field too (validation accepted `question: Question`, then the template could not read it)."""
    (tmp_path / "items.csv").write_bytes(_export([["ID", "Question", "Answer"]] +
                                                 [[f"q{i}", f"Q{i}? ANSWER: A", "A"] for i in range(500)]))
    (tmp_path / "export.csv").write_bytes(_export([["id", "output"]] + [[f"q{i}", "ANSWER: A"] for i in range(500)]))
    suite = _suite(tmp_path, "items.csv", {"path": "export.csv"})
    res = run_cli("validate", str(suite))
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 3, res.stderr
    assert errors[0].startswith(f"error: {tmp_path / 'items.csv'}:2: id: required field missing or empty (and in 499 "
                                "more rows)"), errors[0]
    assert "did you mean 'Question'? Field names are case-sensitive: dataset.fields: {question: 'Question'}" in \
        res.stderr
    task = yaml.safe_load((tmp_path / "task.yaml").read_text())
    task["dataset"]["fields"] = {"id": "ID", "reference": "Answer", "question": "Question"}
    write_yaml(tmp_path / "task.yaml", task)
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    accuracy = next(r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]
                    if r["metric"] == "accuracy")
    assert accuracy["n"] == 500 and accuracy["value"] == 1.0
    # more problems than are shown: the last line says how many were not
    (tmp_path / "items.csv").write_bytes(_export([["ID", "Question", "Answer"]] + [["q0", "Q", "A"]] * 30))
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and res.stderr.count("duplicate id") == 20, res.stderr
    assert res.stderr.rstrip().endswith("and 9 more problems not shown (the first 20 are above)"), res.stderr
