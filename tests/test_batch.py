"""Adapters that answer in batches (`batch_size`, `generate_batch`): the replay export read
a batch at a time, and the runner's contract that a failed batch is no item's error."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pytest
from conftest import write_jsonl, write_yaml

from harness import run_suite
from harness.adapters import replay
from harness.adapters.base import ADAPTERS, Adapter
from harness.errors import AdapterError
from harness.types import Request, Response


def test_take_rows_reads_any_rows_of_a_chunked_column_as_one_by_one() -> None:
    rng = random.Random(3)
    chunks = [pa.array([None if rng.random() < 0.1 else f"answer {k}-{i} é" for i in range(rng.randint(1, 300))])
              for k in range(7)]
    column = pa.chunked_array(chunks)
    every = column.to_pylist()
    ordered = np.arange(100, 400)
    scattered = np.array([rng.randrange(len(every)) for _ in range(500)])
    for rows in (ordered, scattered, np.array([len(every) - 1, 0, 0]), np.array([], np.int64)):
        assert replay.take_rows(column, rows) == [every[i] for i in rows.tolist()]
    assert replay.take_rows(pa.array([1.5, None, 2.0]), np.array([2, 1])) == [2.0, None]


@pytest.mark.parametrize("collide", [False, True])
def test_batch_look_up_finds_what_the_single_look_up_finds(monkeypatch, collide: bool) -> None:
    """Repeated ids (the last row wins), ids of another task, ids absent, hashes that collide:
    `get_many` answers as `get` does for each key."""
    if collide:
        monkeypatch.setattr(replay, "_key_hash", lambda key: 7)
    rng = random.Random(5)
    ids = [f"i{rng.randrange(400)}" for _ in range(900)]
    tasks = [rng.choice(["t", "u"]) for _ in ids]
    index = replay._RowIndex(pa.chunked_array([pa.array(ids[:300]), pa.array(ids[300:])]),
                             pa.chunked_array([pa.array(tasks[:300]), pa.array(tasks[300:])]))
    wanted = [f"i{rng.randrange(450)}" for _ in range(300)]
    wanted_tasks = [rng.choice(["t", "u", "v"]) for _ in wanted]
    assert index.get_many(wanted, wanted_tasks) == [
        index.get(i, t) for i, t in zip(wanted, wanted_tasks, strict=True)]
    assert any(row is not None for row in index.get_many(wanted, wanted_tasks))
    assert index.hashes.nbytes + index.rows.nbytes == 12 * len(ids)  # 32-bit rows beside 64-bit hashes
    no_task = replay._RowIndex(pa.array(ids), None)
    assert no_task.get_many(wanted, None) == [no_task.get(i) for i in wanted]
    assert replay._RowIndex([], None).get_many(["i1"], None) == [None]


def _run(tmp_path: Path, monkeypatch, adapter: type[Adapter], rows: list[dict], **suite):
    """A QA task of `rows` answered by `adapter`, registered for the test, run in process."""
    monkeypatch.setitem(ADAPTERS._items, adapter.kind, adapter)
    write_jsonl(tmp_path / "items.jsonl", rows)
    write_yaml(tmp_path / "task.yaml", {"name": "t", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "choices": ["A", "B"], "dataset": {"path": "items.jsonl",
                                                                           "fields": {"reference": "answer"}}})
    write_yaml(tmp_path / "sut.yaml", {"name": "sut", "kind": adapter.kind})
    path = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["sut.yaml"],
                                                 "cache": False, **suite})
    return run_suite(path, quiet=True, out=tmp_path / "run")


def _rows(n: int) -> list[dict]:
    return [{"id": f"i{i}", "question": f"Q{i}?", "answer": "A"} for i in range(n)]


class _Batched(Adapter):
    """Answers in batches of 3; a batch holding i4 fails as a whole, and i4 also fails alone;
    a batch holding i7 comes back one answer short."""

    kind = "batched-test"
    batch_size = 3
    calls: ClassVar[list[tuple[str, list[str]]]] = []

    async def generate(self, request: Request) -> Response:
        self.calls.append(("alone", [request.item_id]))
        if request.item_id == "i4":
            raise AdapterError("i4 fails alone too", retryable=False)
        return Response(output="A")

    async def generate_batch(self, requests: list[Request]) -> list[Response]:
        assert not any("@" in r.prompt for r in requests), "the PII guard let an address through"
        ids = [r.item_id for r in requests]
        self.calls.append(("batch", ids))
        if "i4" in ids:
            raise RuntimeError("the whole batch failed")
        answers = [Response(output="A", tokens_out=1) for _ in requests]
        return answers[:-1] if "i7" in ids else answers


def test_a_failed_batch_is_asked_again_item_by_item_and_only_the_failing_item_errs(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    monkeypatch.setattr(_Batched, "calls", [])
    rows = [*_rows(10), {"id": "i10", "question": "Write to jean.dupont@chu-exemple.fr?", "answer": "A"}]
    result = _run(tmp_path, monkeypatch, _Batched, rows, concurrency=1)
    batches = [ids for how, ids in _Batched.calls if how == "batch"]
    assert sorted(i for b in batches for i in b) == sorted(f"i{i}" for i in range(10)) and len(batches) == 4
    # the failed batch and the short one: each of their items asked once alone, no other; i10,
    # blocked before sending, in no batch and never asked alone
    assert sorted(ids[0] for how, ids in _Batched.calls if how == "alone") == ["i3", "i4", "i5", "i6", "i7", "i8"]
    lines = [json.loads(line) for line in (result.run_dir / "responses.jsonl").read_text().splitlines()]
    by_id = {r["item_id"]: r for r in lines}
    assert len(lines) == 11 and {i for i, r in by_id.items() if r["status"] != "ok"} == {"i4", "i10"}
    assert "blocked by the PII guard" in by_id["i10"]["error"]
    assert "fails alone" in by_id["i4"]["error"] and by_id["i0"]["tokens_out"] == 1
    accuracy = next(r for r in result.scorecard["rows"] if r["metric"] == "accuracy")
    errors = next(r for r in result.scorecard["rows"] if r["metric"] == "error_rate")
    assert accuracy["n"] == 9 and accuracy["value"] == 1.0 and errors["n"] == 11 and errors["value"] == 2 / 11


@pytest.mark.parametrize("size", [-2, 0, "8", True])
def test_a_batch_size_that_is_not_a_positive_number_answers_one_by_one(tmp_path: Path, monkeypatch, size) -> None:
    """A negative `batch_size` queued no request at all: every item silently unanswered."""
    monkeypatch.setattr(_Batched, "calls", [])
    monkeypatch.setattr(_Batched, "batch_size", size)
    result = _run(tmp_path, monkeypatch, _Batched, _rows(5))
    lines = (result.run_dir / "responses.jsonl").read_text().splitlines()
    assert len(lines) == 5 and sorted(ids[0] for how, ids in _Batched.calls if how == "alone") == [
        f"i{i}" for i in range(5)]


class _Sloppy(Adapter):
    """Reports its usage as a proxy might: counts as text, a negative count."""

    kind = "sloppy-batch-test"
    batch_size = 4

    async def generate(self, request: Request) -> Response:
        raise AssertionError("a batch that answered is not asked again")

    async def generate_batch(self, requests: list[Request]) -> list[Response]:
        return [Response(output="A", tokens_in="12", tokens_out=-3, latency_s="0.5")  # type: ignore[arg-type]
                for _ in requests]


def test_figures_a_batch_reports_are_checked_as_a_single_answer_s(tmp_path: Path, monkeypatch) -> None:
    """Token counts given as text stopped the run (summed for the rate limiter before they
    were read as numbers): they are read as `generate`'s are, the negative one as not reported."""
    result = _run(tmp_path, monkeypatch, _Sloppy, _rows(6))
    lines = [json.loads(line) for line in (result.run_dir / "responses.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(r["status"] == "ok" for r in lines)
    assert {(r["tokens_in"], r["tokens_out"], r["latency_s"]) for r in lines} == {(12, None, 0.5)}


def _mapped(spilled: replay.Spilled) -> bool:
    """Whether the table's text lies in the spill's memory map (not in the process's heap)."""
    base = pa.py_buffer(spilled._map).address
    address = spilled.table.column("answer").chunks[0].buffers()[2].address
    return base <= address < base + len(spilled._map)


def test_an_export_is_read_from_a_memory_mapped_spill_or_into_memory_when_it_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export is streamed into an unlinked temporary file and mapped (a million rows cost
    the process their index, not their text); where no temporary file can be written (a full
    disk, a TMPDIR that is not a folder), it is read into memory and answers the same."""
    import tempfile

    rows = "".join(f'i{i},"Réponse {i},\nsur deux lignes"\n' for i in range(3000))
    (tmp_path / "out.csv").write_text("id,answer\n" + rows, encoding="utf-8")
    replay._read_table.cache_clear()
    spilled = replay.read_table(tmp_path / "out.csv")
    assert _mapped(spilled) and spilled.table.num_rows == 3000
    spilled.drop_pages()  # the pages go back; the table still reads
    assert spilled.table.column("answer")[2999].as_py() == "Réponse 2999,\nsur deux lignes"

    replay._read_table.cache_clear()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "out.csv"))  # not a folder: no file there
    in_memory = replay.read_table(tmp_path / "out.csv")
    assert in_memory._map is None and in_memory.table.equals(spilled.table)
    in_memory.drop_pages()  # nothing to hand back: no error
    replay._read_table.cache_clear()


@pytest.mark.parametrize("later", ["fits", "text after nulls", "a decimal after integers", "a new field",
                                   "a long line", "a long line, then a decimal"])
def test_a_json_lines_export_is_streamed_and_read_whole_when_a_later_block_changes_its_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, later: str) -> None:
    """A JSON-lines export is streamed into the spill a block at a time, in the columns of its
    first block; when a later block does not fit them, the file is read whole, as before, and
    the table is the same either way."""
    lines: list[dict[str, Any]] = [{"id": f"i{i}", "answer": f"Réponse {i} é", "latency": i % 3, "note": None}
                                   for i in range(2000)]
    if later == "text after nulls":
        lines[1500]["note"] = "relu"
    elif later.endswith("a decimal after integers") or later.endswith("then a decimal"):
        lines[1700]["latency"] = 0.5
    elif later == "a new field":
        lines[1800]["extra"] = 3
    if later.startswith("a long line"):
        lines[900]["answer"] = "transcription " * 800  # ~11 KB: over the 4 KB blocks
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    whole = replay._json_lines_whole(path, path.stat().st_size)
    read_whole: list[Path] = []

    def whole_read(path: Path, size: int) -> pa.Table:
        read_whole.append(path)
        return whole

    monkeypatch.setattr(replay, "_FIRST_BLOCK", 4096)
    monkeypatch.setattr(replay, "_json_lines_whole", whole_read)
    replay._read_table.cache_clear()
    spilled = replay.read_table(path)
    assert spilled.table.num_rows == 2000 and spilled._map is not None
    assert spilled.table.equals(whole), later
    assert bool(read_whole) == (later not in ("fits", "a long line")), later
    replay._read_table.cache_clear()


@pytest.mark.parametrize(("where", "bad", "message"), [
    (0, '{"id": "i0", "answer": A}', "invalid JSON: unexpected character"),
    (1500, '{"id": "i1500", "answer": A}', "invalid JSON: unexpected character"),
    (1700, '["i1700", "A"]', "the line is not a JSON object (found list)")])
def test_a_json_lines_export_that_does_not_parse_is_named_with_its_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: int, bad: str, message: str) -> None:
    """A line that is not a JSON object, in the first block or a later one: the streamed read
    gives way to the whole read, and validation names the line of the file (Arrow's "row N"
    counts from the start of its block: row 33 for line 1,501 with these blocks)."""
    lines = [json.dumps({"id": f"i{i}", "answer": f"A{i}"}) for i in range(2000)]
    lines[where] = bad
    path = tmp_path / "out.jsonl"
    path.write_text("\ufeff" + "\r\n".join(lines) + "\r\n\r\n", encoding="utf-8")  # a BOM, CRLF, a blank line
    monkeypatch.setattr(replay, "_FIRST_BLOCK", 4096)
    replay._read_table.cache_clear()
    problems = replay.Replay.check(replay.ReplaySettings(path=str(path)), tmp_path, "replay.yaml")
    replay._read_table.cache_clear()
    assert [p.line for p in problems] == [where + 1]
    assert problems[0].message.startswith(f"cannot read replay file: {message}"), problems[0].message
