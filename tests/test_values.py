"""The columnar reader of scores.jsonl (harness.values) against the ScoreLine model, line by line:
same items, same order, same values, on a messy record; a torn last line; a wrong line named."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import values
from harness.errors import RecordError
from harness.record import ScoreLine
from harness.values import KEY_COLUMNS, REQUIRED, PairValues, load_values, paired, shared_rows

NAMES = ["correct", "wer_errors", "wer_ref", "latency_s", "bleu#0", "bleu#1"]


def _line(task: str, adapter: str, item: str, repeat: int = 0, **extra: Any) -> dict[str, Any]:
    return {"task": task, "adapter": adapter, "item_id": item, "repeat": repeat, "status": "ok", **extra}


def messy_record(path: Path) -> list[dict[str, Any]]:
    """Two tasks × two adapters interleaved in completion order, repeats, clusters on some
    items, accented ids, null and absent values, integers and floats, free-form details."""
    rows = []
    for i, item in enumerate(["q10", "q2", "é1", "Zeta", "q1", "ü", "a b"]):
        for repeat in (1, 0):
            for adapter in ("b", "a"):
                rows.append(_line("t1", adapter, item, repeat, cluster=f"patient-{i % 3}" if i % 2 else None,
                                  cached=bool(i % 3 == 0),
                                  values={"correct": i % 2, "wer_errors": i + repeat, "wer_ref": 10 - i,
                                          "latency_s": None if i == 3 else 0.25 * i, "unread": 4},
                                  details={"wer": {"ops": [i, "x", None]}, "other": "text" if i else 3}))
        rows.append(_line("t2", "a", item, values={"bleu#0": 3.5 * i, "bleu#1": 7} if i != 2 else {"bleu#0": 1}))
    rows.append(_line("t2", "a", "errored", status="error", values={}))
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def _same(a: dict[tuple[str, str], PairValues], b: dict[tuple[str, str], PairValues]) -> None:
    assert a.keys() == b.keys()
    for key, pa_ in a.items():
        pb = b[key]
        assert pa_.keys == pb.keys
        assert pa_.cached == pb.cached
        assert (pa_.clusters is None) == (pb.clusters is None)
        if pa_.clusters is not None:
            assert pa_.clusters.to_pylist() == pb.clusters.to_pylist()  # type: ignore[union-attr]
        assert pa_.columns.keys() == pb.columns.keys()
        for name in pa_.columns:
            np.testing.assert_array_equal(pa_.column(name), pb.column(name))


def test_columns_are_the_score_line_model() -> None:
    fields = ScoreLine.model_fields
    assert {name for name, _ in KEY_COLUMNS} <= set(fields)
    assert set(REQUIRED) == {name for name, f in fields.items() if f.is_required() and name != "values"}


def test_the_columnar_read_equals_the_model_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = messy_record(tmp_path / "scores.jsonl")
    with monkeypatch.context() as m:
        m.setattr(values, "_read_models", lambda *a: pytest.fail("fell back to the model"))
        fast = load_values(tmp_path, NAMES)
    # the model path, line by line, as for a file the columns do not fit
    monkeypatch.setattr(values, "_read_arrow", lambda *a: (_ for _ in ()).throw(values._Unfit()))
    slow = load_values(tmp_path, NAMES)
    _same(fast, slow)
    t1 = fast[("t1", "a")]
    # key order: Python's order of (item id, repeat), accents included
    assert t1.keys == sorted((r["item_id"], r["repeat"]) for r in rows if r["task"] == "t1" and r["adapter"] == "a")
    latency = dict(zip(t1.keys, t1.column("latency_s"), strict=True))
    assert math.isnan(latency[("Zeta", 0)]) and latency[("q2", 1)] == 0.25
    assert "unread" not in t1.columns and t1.cached == 6
    stats, _ = fast[("t2", "a")].series("bleu#1")
    assert len(stats) == 6  # "q2" has no second statistic, "errored" none at all
    assert len(fast[("t2", "a")]) == 8


def test_a_record_read_in_many_blocks_equals_the_model_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record is streamed in blocks (the JSON reader's) gathered into batches: a value
    first recorded in a later batch, a 0/1 value held in one byte until a later batch records
    another number, and two groups interleaved must come out as the model reads them."""
    lines = []
    for i in range(400):
        flag = 0.5 if i == 300 else i % 2
        values_ = {"flag": flag, "always01": (i // 3) % 2, "latency_s": 0.01 * i}
        if i >= 150:
            values_["late"] = i
        lines.append(_line("t", "ab"[i % 2], f"item{i // 2:04d}", values=values_))
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    names = ["flag", "always01", "latency_s", "late", "never"]
    batches: list[int] = []
    gathered = values._gathered
    def counted(b: Any, rows: int) -> Any:
        for x in gathered(b, rows):
            batches.append(len(x))
            yield x

    monkeypatch.setattr(values, "_gathered", counted)
    monkeypatch.setattr(values, "_BLOCK", 2048)
    monkeypatch.setattr(values, "_ROWS", 16)
    with monkeypatch.context() as m:
        m.setattr(values, "_read_models", lambda *a: pytest.fail("fell back to the model"))
        fast = load_values(tmp_path, names)
    assert len(batches) > 10 and sum(batches) == 400
    monkeypatch.setattr(values, "_read_arrow", lambda *a: (_ for _ in ()).throw(values._Unfit()))
    _same(fast, load_values(tmp_path, names))
    a = fast[("t", "a")]
    assert a.columns["always01"].dtype == np.int8 and a.columns["flag"].dtype == np.float64  # widened at 0.5
    assert "never" not in a.columns
    expected = {f"item{i // 2:04d}": (0.5 if i == 300 else i % 2, i if i >= 150 else None) for i in range(0, 400, 2)}
    assert [e[0] for e in expected.values()] == a.column("flag").tolist()
    late = a.column("late")
    assert [e[1] for e in expected.values()] == [None if math.isnan(v) else v for v in late.tolist()]
    assert a.series("always01")[0].tolist() == [float((i // 3) % 2) for i in range(0, 400, 2)]


def test_clusters_first_given_in_a_later_batch_keep_their_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose lines give no cluster keeps no column for them (4 bytes a row); when a
    later batch gives some, the rows before read as without one, as the model reads them."""
    lines = [_line("t", "a", f"item{i:04d}", cluster=f"patient-{i % 7}" if i >= 250 and i % 3 else None,
                   values={"correct": i % 2}) for i in range(400)]
    lines += [_line("t", "b", f"item{i:04d}", values={"correct": 1}) for i in range(300)]
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    monkeypatch.setattr(values, "_BLOCK", 2048)
    monkeypatch.setattr(values, "_ROWS", 16)
    with monkeypatch.context() as m:
        m.setattr(values, "_read_models", lambda *a: pytest.fail("fell back to the model"))
        fast = load_values(tmp_path, ["correct"])
    monkeypatch.setattr(values, "_read_arrow", lambda *a: (_ for _ in ()).throw(values._Unfit()))
    _same(fast, load_values(tmp_path, ["correct"]))
    clusters = fast[("t", "a")].clusters
    assert clusters is not None and clusters.null_count == 250 + 50  # the first 250, and every third after
    assert fast[("t", "b")].clusters is None


def test_repeats_past_a_byte_in_a_later_batch_and_constant_columns(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeats are held in a byte a row until a later batch brings one past 127 (then widened),
    and a value that is the same on every row is held as a read-only view of one value: both
    must come out as the model reads them."""
    lines = [_line("t", "a", f"item{i % 3}", i // 3, values={"zero": 0, "half": 0.5, "flag": (i // 3) % 2})
             for i in range(3 * 150)]
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    monkeypatch.setattr(values, "_BLOCK", 2048)
    monkeypatch.setattr(values, "_ROWS", 16)
    names = ["zero", "half", "flag"]
    with monkeypatch.context() as m:
        m.setattr(values, "_read_models", lambda *a: pytest.fail("fell back to the model"))
        fast = load_values(tmp_path, names)
    monkeypatch.setattr(values, "_read_arrow", lambda *a: (_ for _ in ()).throw(values._Unfit()))
    _same(fast, load_values(tmp_path, names))
    pv = fast[("t", "a")]
    assert pv.keys == [(f"item{i}", r) for i in range(3) for r in range(150)]
    assert pv.repeats.dtype == np.int16 and pv.repeats.max() == 149
    assert pv.columns["zero"].strides == (0,) and pv.columns["half"].strides == (0,)  # one value, no column
    assert pv.columns["flag"].strides == (1,)
    assert pv.columns["zero"].tolist() == [0] * 450 and pv.values_of("half").tolist() == [0.5] * 450
    assert pv.stored("never") is None
    assert pv.column("flag").tolist() == [float(r % 2) for _ in range(3) for r in range(150)]


def test_a_line_longer_than_a_block_is_read_in_larger_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A score line can be long (a consultation's findings in its details): longer than the
    reader's 64 KB block, the record is read again with larger blocks, not line by line."""
    rows = messy_record(tmp_path / "scores.jsonl")
    rows[5]["details"] = {"wer": {"ops": ["substitution"] * 20_000}}
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                           encoding="utf-8")
    assert len(json.dumps(rows[5])) > 4 * values._BLOCK
    with monkeypatch.context() as m:
        m.setattr(values, "_read_models", lambda *a: pytest.fail("fell back to the model"))
        fast = load_values(tmp_path, NAMES)
    monkeypatch.setattr(values, "_read_arrow", lambda *a: (_ for _ in ()).throw(values._Unfit()))
    _same(fast, load_values(tmp_path, NAMES))


def test_a_torn_last_line_is_left_out_without_leaving_the_columnar_read(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    messy_record(tmp_path / "scores.jsonl")
    whole = load_values(tmp_path, NAMES)
    with (tmp_path / "scores.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"task": "t1", "adapter": "a", "item_id": "late", "repeat": 0, "stat')  # a crash mid-write
    monkeypatch.setattr(values, "_read_models", lambda *a: pytest.fail("fell back to the model"))
    _same(load_values(tmp_path, NAMES), whole)


def test_a_line_that_fits_neither_is_named_with_its_number(tmp_path: Path) -> None:
    rows = messy_record(tmp_path / "scores.jsonl")
    rows.insert(3, _line("t1", "a", "bad", values={"correct": "yes"}))
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(RecordError, match=r"scores.jsonl:4: not a ScoreLine line \(values.correct"):
        load_values(tmp_path, NAMES)
    rows[3] = {k: v for k, v in rows[3].items() if k != "repeat"}
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(RecordError, match=r"scores.jsonl:4: not a ScoreLine line \(repeat"):
        load_values(tmp_path, NAMES)


def test_paired_rows_are_the_shared_items_in_key_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    items_a = [("x", 0), ("x", 1), ("y", 0), ("z", 0), ("w", 1)]
    items_b = [("z", 0), ("x", 1), ("v", 0), ("y", 0), ("w", 0)]
    for folder, items in ((a, items_a), (b, items_b)):
        (folder / "scores.jsonl").write_text("".join(
            json.dumps(_line("t", "s", i, r, values={"correct": (len(i) + r) % 2})) + "\n" for i, r in items))
    va, vb = load_values(a, ["correct"])[("t", "s")], load_values(b, ["correct"])[("t", "s")]
    rows_a, rows_b = shared_rows(va, vb)
    assert [va.keys[r] for r in rows_a] == [vb.keys[r] for r in rows_b] == sorted(set(items_a) & set(items_b))
    spec = {"name": "accuracy", "aggregation": "proportion", "value": "correct"}
    both = paired(va, vb, spec)
    assert len(both) == 3 and both.a.shape == (3, 2)
    same = shared_rows(va, va)
    assert same[0].tolist() == same[1].tolist() == list(range(len(va)))


def test_a_run_its_report_and_a_comparison_never_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas on its first Python or NumPy conversion (0.2–0.4 s and ~50 MB on
    every run); harness.arrowconv goes through buffers instead. A replay suite (Arrow-read
    export, item check) run, reported and compared in a fresh interpreter."""
    import subprocess
    import sys

    from conftest import replay_run

    first = replay_run(tmp_path)
    code = ("import sys\n"
            "from harness import run_suite\n"
            "from harness.compare import compare_runs\n"
            "run = run_suite(sys.argv[1], quiet=True, out=sys.argv[2]).run_dir\n"
            "assert compare_runs(sys.argv[3], run).comparable\n"
            "print('pandas' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "src" / "suite.yaml"), str(tmp_path / "again"),
                          str(first)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_the_warm_up_before_the_report_runs_cleanly() -> None:
    """The runner makes Arrow's first calls and compiles the HTML template in a background
    thread that swallows errors (the real work after the run reports them): make sure they
    would not all be silently failing."""
    from harness.report.html import _ENV, warm_template
    from harness.values import warm_reader

    warm_reader()
    warm_template()
    assert _ENV.cache is not None and len(_ENV.cache) >= 1
