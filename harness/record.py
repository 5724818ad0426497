"""The run record's file formats as typed, versioned models.

Every reader of a run (scorecard, compare, merge, history, reports) goes through these
models (scores.jsonl's values as columns with ScoreLine's schema, `harness.values`; line by
line through ScoreLine when a line does not fit), so a damaged or foreign record is a clear
error rather than a KeyError deep in the statistics, and `docs/record.schema.json`
(generated from them, checked by a test) tells other tools what a run holds.

Format versions: 1 is the record written before versions were stamped (read as it is);
2 adds `format_version`, `requests.jsonl`, the cache and scoring-error fields; 3 adds
corpus-level metrics (`aggregation: corpus`, BLEU and chrF from summed statistics) and a
metric's `method` (and, as an optional field read by every version-3 reader, a response's
`worker` under `executor: ray`). A record of a newer version than this harness knows is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import RecordError

FORMAT_VERSION = 3
T = TypeVar("T", bound=BaseModel)


class _Open(BaseModel):
    # later minor additions stay readable by this version
    model_config = ConfigDict(extra="allow")


class SuiteInfo(_Open):
    name: str
    description: str = ""
    path: str
    config: dict[str, Any]


class MetricInfo(_Open):
    name: str
    aggregation: Literal["mean", "proportion", "ratio", "corpus"]
    value: str
    denominator: str | None = None
    higher_is_better: bool = True
    description: str = ""
    statistics: int = Field(default=0, description="corpus: per-item values <value>#0 … summed over items")
    reducer: str = Field(default="", description="corpus: the formula applied to the summed statistics")
    reducer_args: list[Any] = Field(default_factory=list)
    method: str = Field(default="", description="how the figure is computed, with versions")


class TaskInfo(_Open):
    path: str
    config: dict[str, Any]
    items: int | None = None
    audio_digest: list[Any] | None = None
    audio_read: bool | None = Field(default=None, description="false: every adapter replayed stored outputs")
    dataset_digest: str | None = None
    scorers: dict[str, str] = Field(default_factory=dict, description="scorer → version")
    scorer_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics: list[MetricInfo]


class AdapterInfo(_Open):
    path: str
    kind: str
    description: str = ""
    settings: dict[str, Any] = Field(default_factory=dict, description="header values redacted")
    declarations: dict[str, Any] = Field(default_factory=dict)


class ModelChange(_Open):
    adapter: str
    before: str
    after: str
    at_item: str | None = None
    time: str | None = None


class Manifest(_Open):
    """manifest.json: what was run, with what, on what data, and how it ended."""

    format_version: int = 1
    run_id: str
    status: Literal["running", "interrupted", "failed", "complete"]
    harness_version: str
    suite: SuiteInfo
    tasks: dict[str, TaskInfo]
    adapters: dict[str, AdapterInfo]
    pairs: list[tuple[str, str]]
    file_hashes: dict[str, str] = Field(default_factory=dict)
    started_at: str
    ended_at: str | None = None
    seed: int = 0
    repeats: int = 1
    shard: list[int] | None = None
    provider_models: dict[str, list[str]] = Field(default_factory=dict)
    model_changes: list[ModelChange] = Field(default_factory=list)
    requests_sent: int = 0
    cache: dict[str, int] | None = None
    validation_notes: list[str] = Field(default_factory=list)
    clearance_overrides: list[dict[str, Any]] = Field(
        default_factory=list, description="data sent above an adapter's declared clearance, with who decided and why")
    pii_guard: dict[str, dict[str, Any]] | None = Field(
        default=None, description="per adapter: requests checked, blocked, pseudonymised, identifiers by type")
    scoring_workers: int | None = Field(default=None, description="processes (or Ray actors) that ran the CPU-bound "
                                                                  "scorers")
    executor: dict[str, Any] | None = Field(
        default=None, description="executor: ray — Ray version, address, nodes, and per adapter the actor pool "
                                  "(actors, CPUs, GPUs, batch size, hosts, restarts, deaths)")
    merged_from: list[str] | None = None
    resumed: int = 0


class _ItemLine(_Open):
    """The key every line of a JSONL record file carries."""

    task: str
    adapter: str
    item_id: str
    repeat: int


class ResponseLine(_ItemLine):
    """One line of responses.jsonl: an item × adapter × repeat and what came back."""

    seed: int | None = None
    request_hash: str | None = None
    status: Literal["ok", "error", "missing"]
    output: str | None = None
    error: str | None = None
    missing: bool = False
    latency_s: float | None = None
    ttft_s: float | None = Field(default=None, description="seconds to the first token (streaming adapters)")
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    energy_wh: float | None = Field(default=None, description="estimated Wh, method in the manifest's adapter")
    gwp_g: float | None = Field(default=None, description="estimated gCO2eq, same method")
    model_id: str | None = None
    system_fingerprint: str | None = None
    audio_seconds: float | None = None
    segments: list[dict[str, Any]] | None = Field(default=None, description="timed pieces: start, end, text, speaker")
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    cache_hit: bool = False
    worker: dict[str, str] | None = Field(default=None, description="executor: ray — the Ray node and actor that "
                                                                      "computed it, and the node's host name")
    time: str | None = None
    output_sha256: str | None = Field(default=None, description="store_content: false — the output's hash, not it")


class ScoreLine(_ItemLine):
    """One line of scores.jsonl: the values every metric needs, and the scorers' details."""

    cluster: str | None = None
    subgroup: str | None = None
    status: Literal["ok", "error", "missing"]
    cached: bool = False
    values: dict[str, float | None]
    details: dict[str, Any] = Field(default_factory=dict)


class RequestLine(_ItemLine):
    """One line of requests.jsonl: a request attempt, logged before it was sent."""

    attempt: int
    time: float


def check_version(manifest: Manifest, where: str) -> None:
    if manifest.format_version > FORMAT_VERSION:
        raise RecordError(f"{where}: run record format {manifest.format_version} was written by a newer "
                          f"avec-harness; this one reads formats 1 to {FORMAT_VERSION} (upgrade to read it)")


def parse_manifest(data: Any, where: str) -> Manifest:
    """Validate a manifest's data; RecordError names the first fields that are wrong."""
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise RecordError(f"{where}: not a run manifest this harness can read ({fields})") from None
    check_version(manifest, where)
    return manifest


def iter_lines(path: Path, model: type[T]) -> Iterator[T]:
    """The lines of a JSONL record file as `model`s; a half-written last line (a crash
    mid-write) is skipped, any other line that does not fit raises RecordError with its number."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                return
            try:
                yield model.model_validate_json(raw)
            except ValidationError as exc:
                if exc.errors()[0]["type"] == "json_invalid":
                    continue  # torn line from a crash, rewritten by a resume
                err = exc.errors()[0]
                raise RecordError(f"{path}:{number}: not a {model.__name__} line "
                                  f"({'.'.join(map(str, err['loc']))}: {err['msg']})") from None


FILES: dict[str, type[BaseModel]] = {"manifest.json": Manifest, "responses.jsonl": ResponseLine,
                                     "scores.jsonl": ScoreLine, "requests.jsonl": RequestLine}


def schema() -> dict[str, Any]:
    """JSON Schema of every record file, as written to docs/record.schema.json: one `$defs`
    for all models; `x-files` names the definition each file (or each JSONL line) follows."""
    from pydantic.json_schema import models_json_schema

    refs, combined = models_json_schema([(model, "validation") for model in FILES.values()],
                                        ref_template="#/$defs/{model}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"avec-harness run record, format {FORMAT_VERSION}",
        "description": "runs/<run-id>/: manifest.json, and one JSON object per line in responses.jsonl, "
                       "scores.jsonl and requests.jsonl",
        "x-files": {name: refs[(model, "validation")]["$ref"] for name, model in FILES.items()},
        "$defs": combined["$defs"],
    }


def main() -> None:
    """`python -m harness.record > docs/record.schema.json`"""
    print(json.dumps(schema(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
