"""Dataset formats, streaming, and the offline hub path."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

from conftest import run_cli, write_yaml

from harness.config import LoadedTask, TaskConfig
from harness.data import iter_items, scan_dataset
from harness.yamlio import load_yaml

ROWS = [{"id": f"r{i}", "question": f"question {i}", "answer": "ABCD"[i % 4], "site": f"s{i % 3}"} for i in range(10)]


def _task(tmp_path: Path, dataset: dict) -> LoadedTask:
    path = write_yaml(tmp_path / "task.yaml", {
        "name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
        "dataset": {"fields": {"reference": "answer", "cluster": "site"}, **dataset}})
    data, lines = load_yaml(path)
    return LoadedTask(TaskConfig.model_validate(data), path, lines)


def _check(task: LoadedTask) -> None:
    summary = scan_dataset(task, ("id", "reference", "question"))
    assert summary.problems == [] and summary.count == 10
    items = list(iter_items(task))
    assert [i.id for i in items] == [r["id"] for r in ROWS]
    assert items[3].reference == "D" and items[3].cluster == "s0" and items[3].data["question"] == "question 3"


def _qa_replay_suite(tmp_path: Path, choices: list[str], replay: dict) -> Path:
    """A suite of items.jsonl (question → answer) as a QA task, answered by a replay with
    these settings."""
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "choices": choices,
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": replay})
    return write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})


def _scorecard_rows(run: Path) -> dict[str, dict]:
    return {r["metric"]: r for r in json.loads((run / "scorecard.json").read_text())["rows"]}


def test_jsonl(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    _check(_task(tmp_path, {"path": "d.jsonl"}))


def test_csv(tmp_path: Path) -> None:
    import csv

    with (tmp_path / "d.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    _check(_task(tmp_path, {"path": "d.csv"}))


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet", row_group_size=3)
    _check(_task(tmp_path, {"path": "d.parquet"}))


def test_saved_hugging_face_dataset(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    _check(_task(tmp_path, {"path": "saved"}))


def test_hub_dataset_unavailable_offline_is_a_clear_error(tmp_path: Path) -> None:
    _task(tmp_path, {"hf": {"name": "avec-harness/does-not-exist", "split": "test"}})
    (tmp_path / "out.csv").write_text("id,output\nr1,A\n", encoding="utf-8")
    write_yaml(tmp_path / "replay.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.csv"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["replay.yaml"]})
    res = run_cli("validate", str(suite), env={"HF_HOME": str(tmp_path / "hf-home")}, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "task.yaml" in res.stderr and "dataset.hf" in res.stderr and "not available offline" in res.stderr


def test_limit(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    task = _task(tmp_path, {"path": "d.jsonl", "limit": 4})
    assert [i.id for i in iter_items(task)] == ["r0", "r1", "r2", "r3"]


def test_items_stream_without_holding_the_dataset(tmp_path: Path) -> None:
    n = 200_000
    with (tmp_path / "big.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(f'{{"id": "r{i}", "question": "question number {i} with some padding text", "answer": "A"}}\n')
    task = _task(tmp_path, {"path": "big.jsonl", "fields": {"reference": "answer"}})
    tracemalloc.start()
    count = sum(1 for _ in iter_items(task))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n
    # 200,000 items held as Python objects would take well over 100 MB
    assert peak < 5_000_000, peak


def test_repeated_ids_are_found_by_their_hashes_at_any_size() -> None:
    """The scan keeps 8-byte hashes, not a set of ids; duplicates are found by sorting them
    (in Python below 200,000 ids, with numpy above); then named in a second pass."""
    from harness.data import _SeenIds

    for n in (1_000, 250_000):
        seen = _SeenIds(keep=True)
        for i in range(n):
            seen.add(f"é-{i}")
        seen.add("é-7")
        seen.add(f"é-{n - 1}")
        assert seen.repeated_hashes() == {hash("é-7"), hash(f"é-{n - 1}")}
        ids = seen.ids()
        assert len(ids) == n + 2 and ids[7].as_py() == "é-7" and ids[n].as_py() == "é-7"


def test_jsonl_written_by_windows_tools_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    """A JSONL dataset and a JSONL replay export saved with a UTF-8 byte-order mark and CRLF
    line ends (as Windows tools write them) load like any other: the dataset was refused
    ("BOM is not supported") on its first line."""
    bom = b"\xef\xbb\xbf"
    rows = [{"id": f"q{i}", "question": "Quelle dose ?", "answer": "AB"[i % 2]} for i in range(4)]
    (tmp_path / "items.jsonl").write_bytes(bom + b"".join(json.dumps(r).encode() + b"\r\n" for r in rows))
    (tmp_path / "out.jsonl").write_bytes(bom + b"".join(
        json.dumps({"id": r["id"], "output": f"Réponse : {r['answer']}"}, ensure_ascii=False).encode() + b"\r\n"
        for r in rows))
    suite = _qa_replay_suite(tmp_path, ["A", "B"], {"path": "out.jsonl"})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows_ = _scorecard_rows(tmp_path / "run")
    assert rows_["accuracy"]["value"] == 1.0 and rows_["accuracy"]["n"] == 4
    assert rows_["missing_rate"]["value"] == 0


def test_tsv_and_a_pretty_printed_json_array(tmp_path: Path) -> None:
    """`[{...}, {...}]` as many tools save `.json`: it was refused as "invalid JSON: unexpected
    end of data" on line 1. A .tsv was read with commas."""
    (tmp_path / "d.json").write_text("\ufeff\n" + json.dumps(ROWS, indent=2, ensure_ascii=False), encoding="utf-8")
    _check(_task(tmp_path, {"path": "d.json"}))
    (tmp_path / "d.tsv").write_text("\n".join("\t".join(map(str, r)) for r in [list(ROWS[0])] +
                                              [list(r.values()) for r in ROWS]) + "\n", encoding="utf-8")
    _check(_task(tmp_path, {"path": "d.tsv"}))


def test_json_as_python_writes_it_with_nan_and_infinity(tmp_path: Path) -> None:
    """Python's json.dumps writes a missing float as NaN, which strict JSON refuses: a dataset
    made that way was "invalid JSON: unexpected character" on its first such line. NaN now
    reads as null, in JSON lines and in a JSON array alike; a line that is no JSON still fails."""
    rows = [{**r, "weight": float("nan") if i % 2 else float("inf")} for i, r in enumerate(ROWS)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert "NaN" in (tmp_path / "d.jsonl").read_text()
    (tmp_path / "d.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    for name in ("d.jsonl", "d.json"):
        task = _task(tmp_path, {"path": name})
        _check(task)
        weights = [item.data["weight"] for item in iter_items(task)]
        assert weights[1] is None and weights[0] == float("inf"), (name, weights)
    (tmp_path / "d.jsonl").write_text(json.dumps(ROWS[0]) + "\n{'id': 'r1'}\n", encoding="utf-8")
    summary = scan_dataset(_task(tmp_path, {"path": "d.jsonl"}), ("id", "reference", "question"))
    assert [(p.line, p.message) for p in summary.problems] == [
        (2, "invalid JSON: unexpected character, expected a string key")]


def test_a_json_array_or_a_spreadsheet_that_cannot_be_read_names_the_line_or_says_what_to_do(tmp_path: Path) -> None:
    rows = json.dumps(ROWS[:3], indent=1).splitlines()
    (tmp_path / "d.json").write_text("\n".join([*rows[:-1], ", 7", "]"]), encoding="utf-8")
    problem = scan_dataset(_task(tmp_path, {"path": "d.json"}), ("id",)).problems[0]
    assert (problem.line, problem.message) == (len(rows), "each element of the array must be a JSON object")
    (tmp_path / "d.json").write_text("\n".join([*rows[:-1], ",", "]"]), encoding="utf-8")
    problem = scan_dataset(_task(tmp_path, {"path": "d.json"}), ("id",)).problems[0]
    assert (problem.line, problem.message) == (len(rows) + 1, "invalid JSON: a comma before the closing ']'")
    (tmp_path / "d.json").write_text(json.dumps(ROWS[:2]) + "\n" + json.dumps(ROWS[2:4]), encoding="utf-8")
    problem = scan_dataset(_task(tmp_path, {"path": "d.json"}), ("id",)).problems[0]
    assert problem.line == 1 and "expected ',' or ']'" in problem.message
    (tmp_path / "d.xlsx").write_bytes(b"PK\x03\x04 a zip archive")
    (tmp_path / "out.json").write_text('[{"id": "r0", "output": "A"}]', encoding="utf-8")
    res = run_cli("validate", str(write_yaml(tmp_path / "suite.yaml", {
        "name": "s", "tasks": [str(_task(tmp_path, {"path": "d.xlsx"}).path)],
        "adapters": [str(write_yaml(tmp_path / "r.yaml", {"name": "r", "kind": "replay",
                                                          "settings": {"path": "out.json"}}))]})))
    assert res.returncode == 2
    assert "task.yaml:9: dataset.path: cannot tell the format of d.xlsx; expected a .jsonl, .json, .csv" in res.stderr
    assert "(save the sheet as 'CSV UTF-8')" in res.stderr, res.stderr


def test_a_replay_export_saved_as_one_json_array(tmp_path: Path) -> None:
    """Arrow's JSON reader takes JSON lines only: an array was refused with "JSON parse error:
    Column() changed from object to array in row 0"."""
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    (tmp_path / "out.json").write_text(json.dumps([{"id": r["id"], "output": f"Réponse : {r['answer']}",
                                                    "latency": 0.5} for r in ROWS], indent=2), encoding="utf-8")
    suite = _qa_replay_suite(tmp_path, ["A", "B", "C", "D"], {"path": "out.json", "latency_column": "latency"})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows_ = _scorecard_rows(tmp_path / "run")
    assert rows_["accuracy"]["value"] == 1.0 and rows_["accuracy"]["n"] == 10 and rows_["latency_s"]["value"] == 0.5
    (tmp_path / "out.json").write_text('[{"id": "r0", "output": "A"}, "r1: B"]', encoding="utf-8")
    res = run_cli("validate", str(suite))
    assert res.returncode == 2
    assert "cannot read replay file: element 2 of the array is not an object (found str)" in res.stderr, res.stderr
