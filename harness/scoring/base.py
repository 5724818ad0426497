"""The scorer contract and the metric specifications that aggregate per-item values."""

from __future__ import annotations

import re
from abc import ABC
from collections.abc import Callable
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from harness.config import TaskConfig, resolve
from harness.errors import Problem
from harness.paths import Roots
from harness.registry import Registry
from harness.report.sections import Section
from harness.types import Item, Sample, Score

#: a row's field by its name in the task (`dataset.fields` maps names to the file's columns)
FieldOf = Callable[[str], Any]

Aggregation = Literal["mean", "proportion", "ratio", "corpus"]


@dataclass(frozen=True)
class MetricSpec:
    """How per-item values become one figure with a CI.

    - `proportion`: mean of 0/1 values (Wilson interval, cluster bootstrap when clustered);
    - `mean`: mean of values (bootstrap);
    - `ratio`: sum(numerator) / sum(denominator) over items, e.g. corpus WER (bootstrap);
    - `corpus`: a formula (`reducer`, see harness.corpus) of `statistics` per-item values
      `<value>#0` … summed over items, e.g. BLEU from n-gram counts (bootstrap).

    `method` states how the figure is computed, with versions (sacrebleu's signature, an
    energy model's version): figures with different methods are not comparable.
    """

    name: str
    aggregation: Aggregation
    value: str
    denominator: str | None = None
    higher_is_better: bool = True
    description: str = ""
    statistics: int = 0
    reducer: str = ""
    reducer_args: tuple[tuple[str, Any], ...] = ()
    method: str = ""

    def statistic_names(self) -> list[str]:
        return [f"{self.value}#{i}" for i in range(self.statistics)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ScorerSettings(BaseModel):
    """Base of every scorer's settings: a task writes them beside the scorer's name,
    `scorers: [wer, {name: citations, catalogue: [refs.bib]}]`; unknown options are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class CheckContext:
    """Where a scorer's settings were written, for `Scorer.check`: problems carry the task
    file, the field (`scorers[2].catalogue[0]`) and the line; paths resolve from the task's
    folder and must stay inside the suite's roots."""

    file: str
    base_dir: Path
    field: str
    line: int | None
    roots: Roots
    notes: list[str]
    lines: dict[Any, int] = dc_field(default_factory=dict)  # YAML key path → line, for the task file

    def _line(self, where: str) -> int | None:
        path = tuple(int(p) if p.isdigit() else p for p in re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\d+", where))
        return self.lines.get(path) or self.line

    def problem(self, sub: str, message: str, **kw: Any) -> Problem:
        where = ".".join(p for p in (self.field, sub) if p)
        return Problem(self.file, where, message, self._line(where), **kw)

    def existing_file(self, relative: str, sub: str, what: str, problems: list[Problem]) -> Path:
        """Resolve a path named in the settings; report it missing or outside the roots."""
        path = resolve(self.base_dir, relative)
        if not path.is_file():
            problems.append(self.problem(sub, f"{what} not found", found=str(path)))
        where = ".".join(p for p in (self.field, sub) if p)
        outside = self.roots.problem(path, self.file, where, self._line(where))
        if outside is not None:
            problems.append(outside)
        return path


def text_reference(reference: Any) -> str | None:
    """A `reference_check` for scorers that compare the output with a text: a text or a
    number (written as one) can be scored; a list or an object cannot."""
    if reference is None or (isinstance(reference, str | int | float) and not isinstance(reference, bool)):
        return None
    return f"reference must be a text, found {type(reference).__name__} {reference!r:.60}"


class Scorer(ABC):
    """Subclass with `name`, `kinds`, `metrics` (and a `Settings` model for options); register
    with `@register_scorer`.

    Implement `score_text(item, output)` for a scorer that needs only the output, or the async
    `score(sample)` for one that needs the request or the response too (or waits on I/O).
    A scorer that raises, or runs past the suite's `scoring_timeout_s`, costs that item its
    values, with the error recorded; never the run. `summarize` turns the details of every
    item into report sections, so the report code holds nothing scorer-specific."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    metrics: ClassVar[tuple[MetricSpec, ...]]
    version: ClassVar[str] = "1"
    Settings: ClassVar[type[BaseModel]] = ScorerSettings
    #: heavy per-item computation from the text alone: may run in worker processes (scoring/pool.py)
    cpu_bound: ClassVar[bool] = False
    #: logical item fields the scorer reads besides the reference (validation requires them)
    needs_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, task: TaskConfig, settings: BaseModel | None = None) -> None:
        self.task = task
        self.settings = settings if settings is not None else self.Settings()

    @classmethod
    def metrics_for(cls, settings: BaseModel) -> tuple[MetricSpec, ...]:
        """The metrics this scorer reports under these settings; `metrics` unless they depend
        on the settings (one WER per speaker named, say)."""
        return cls.metrics

    @classmethod
    def check(cls, settings: Any, ctx: CheckContext) -> list[Problem]:
        """Static checks of the settings (files exist, parse); may resolve relative paths in
        `settings` in place. No model call."""
        return []

    @classmethod
    def reference_check(cls, task: TaskConfig, settings: Any) -> Callable[[Any], str | None] | None:
        """A check of each item's reference, run by the dataset scan at validation: it returns
        why the reference cannot be scored (None when it can). Without one, such an item is
        found only when it is scored, or (worse) silently scored wrong."""
        return None

    @classmethod
    def item_check(cls, task: TaskConfig, settings: Any) -> Callable[[Any, FieldOf], str | None] | None:
        """Like `reference_check`, for a reference that can be judged only beside the item's
        other fields (gold spans over the input, say): the check gets the reference and a
        function giving any field of the row by its task name (`input`, `context`...)."""
        return None

    def score_text(self, item: Item, output: str) -> Score:
        """Per-item values (numbers, or None when not applicable) and details."""
        raise NotImplementedError(f"scorer '{self.name}' implements neither score_text nor score")

    async def score(self, sample: Sample) -> Score:
        """Score one answered sample (item, request, response)."""
        assert sample.response.output is not None
        return self.score_text(sample.item, sample.response.output)

    @classmethod
    def summarize(cls, task: str, adapter: str, details: list[tuple[str, dict[str, Any]]]) -> list[Section]:
        """Report sections from the details this scorer recorded, as (item id, details) in item
        order; recomputed from the run record alone."""
        return []


SCORERS: Registry[type[Scorer]] = Registry(
    "scorer", "harness.scorers",
    builtins={"wer": "harness.scoring.asr", "cer": "harness.scoring.asr", "exact_match": "harness.scoring.qa",
              "drug_names": "harness.scoring.medical", "doses": "harness.scoring.medical",
              "critical_terms": "harness.scoring.medical", "numeric_fidelity": "harness.scoring.medical",
              "citations": "harness.scoring.citations", "speaker_wer": "harness.scoring.speakers",
              "pii_leak": "harness.scoring.pii", "deid": "harness.scoring.deid",
              "post_edit": "harness.scoring.post_edit", "politeness": "harness.scoring.politeness",
              "bleu": "harness.scoring.similarity", "chrf": "harness.scoring.similarity",
              "ter": "harness.scoring.similarity", "rouge_l": "harness.scoring.similarity"},
    name_attr="name")


def register_scorer(name: str) -> Any:
    def deco(cls: type[Scorer]) -> type[Scorer]:
        cls.name = name
        return SCORERS.register(name)(cls)
    return deco


#: computed for every task × adapter from the response records themselves
OPERATIONAL_METRICS = (
    MetricSpec("error_rate", "proportion", "error", higher_is_better=False,
               description="items whose request failed after retries"),
    MetricSpec("scoring_error_rate", "proportion", "scoring_error", higher_is_better=False,
               description="items a scorer raised on or timed out on (details in scores.jsonl)"),
    MetricSpec("missing_rate", "proportion", "missing", higher_is_better=False,
               description="items with no output (replay: absent from the file)"),
    MetricSpec("latency_s", "mean", "latency_s", higher_is_better=False,
               description="seconds per response"),
    MetricSpec("cost", "mean", "cost", higher_is_better=False, description="declared cost per item"),
    MetricSpec("tokens_out", "mean", "tokens_out", higher_is_better=False,
               description="output tokens per item"),
    MetricSpec("ttft_s", "mean", "ttft_s", higher_is_better=False,
               description="seconds to the first token (streaming adapters)"),
    MetricSpec("tokens_per_s", "mean", "tokens_per_s",
               description="output tokens per second of a response (throughput)"),
    MetricSpec("energy_wh", "mean", "energy_wh", higher_is_better=False,
               description="estimated energy per item, Wh (method: the adapter's energy declaration)"),
    MetricSpec("gwp_g", "mean", "gwp_g", higher_is_better=False,
               description="estimated emissions per item, gCO2eq (same method)"),
)
