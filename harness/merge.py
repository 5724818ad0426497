"""Merge the records of a sharded run (`harness run --shard i/n`) into one run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, Problem
from harness.metrics import build_scorecard
from harness.record import RequestLine, ResponseLine, ScoreLine, iter_lines
from harness.report.scorecard import write_reports
from harness.store import MANIFEST, REQUESTS, RESPONSES, SCORES, RunWriter, read_manifest


def _replaceable(out: Path, first: dict[str, Any]) -> None:
    """`--out` may be new, empty, or an earlier merge of the same suite (merging again
    replaces it); anything else is refused, never deleted."""
    if not out.exists() or (out.is_dir() and not out.is_symlink() and not any(out.iterdir())):
        return
    if out.is_dir() and (out / MANIFEST).is_file():
        try:
            previous = read_manifest(out)
        except ConfigError:
            previous = {}
        if previous.get("merged_from") and previous.get("suite", {}).get("name") == first["suite"]["name"]:
            return
    raise ConfigError([Problem(str(out), "--out", "exists and is not an earlier merge of this suite; "
                                                  "nothing was deleted", expected="a new or empty folder")])


def merge_runs(run_dirs: list[Path], out: Path) -> dict[str, Any]:
    """Check that the shards ran the same suite on the same files and cover 1..n once,
    then concatenate their records (deduplicated by item key) and recompute the scorecard."""
    if not run_dirs:
        raise ConfigError([Problem("merge", "", "no run directories given")])
    manifests = []
    for d in run_dirs:
        if not (d / MANIFEST).is_file():
            raise ConfigError([Problem(str(d), "", "not a run record (no manifest.json)")])
        manifests.append(read_manifest(d))
    first = manifests[0]
    problems = []
    for d, m in zip(run_dirs, manifests, strict=True):
        if m["file_hashes"] != first["file_hashes"] or m["suite"]["config"] != first["suite"]["config"]:
            problems.append(Problem(str(d / MANIFEST), "file_hashes", "not the same suite, configuration or data "
                                    f"as {run_dirs[0]}"))
        if m.get("status") != "complete":
            problems.append(Problem(str(d / MANIFEST), "status", "shard did not complete", expected="complete",
                                    found=repr(m.get("status"))))
    shards = sorted(tuple(m["shard"]) for m in manifests if m.get("shard"))
    if shards:
        count = shards[0][1]
        if shards != [(i, count) for i in range(1, count + 1)]:
            problems.append(Problem("merge", "shard", "shards must be 1/n … n/n, each once",
                                    found=", ".join(f"{i}/{n}" for i, n in shards)))
    if problems:
        raise ConfigError(problems)
    _replaceable(out, first)
    if out.exists():
        shutil.rmtree(out)
    writer = RunWriter(out)
    models: tuple[tuple[str, type[Any]], ...] = ((RESPONSES, ResponseLine), (SCORES, ScoreLine),
                                                (REQUESTS, RequestLine))
    for name, model in models:
        seen: set[tuple[str, str, str, int, int]] = set()
        for d in run_dirs:
            for rec in iter_lines(d / name, model):
                key = (rec.task, rec.adapter, rec.item_id, rec.repeat, getattr(rec, "attempt", 0))
                if key not in seen:
                    seen.add(key)
                    # a merge is redone from its shards if it fails: no line need reach the disk alone
                    writer.append(name, rec.model_dump(mode="json", exclude_unset=True), flush=False)
    writer.close()
    merged = dict(first)
    merged.update(run_id=out.name, shard=None, merged_from=[str(d) for d in run_dirs],
                  started_at=min(m["started_at"] for m in manifests), ended_at=max(m["ended_at"] for m in manifests),
                  requests_sent=sum(m.get("requests_sent", 0) for m in manifests),
                  provider_models={a: sorted({x for m in manifests for x in m.get("provider_models", {}).get(a, [])})
                                   for a in first["adapters"]})
    writer.manifest(merged)
    card = build_scorecard(out)
    write_reports(out, card)
    return card
