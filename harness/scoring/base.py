"""The scorer contract and the metric specifications that aggregate per-item values."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from harness.config import TaskConfig
from harness.registry import Registry
from harness.types import Item, Score

Aggregation = Literal["mean", "proportion", "ratio"]


@dataclass(frozen=True)
class MetricSpec:
    """How per-item values become one figure with a CI.

    - `proportion`: mean of 0/1 values (Wilson interval, cluster bootstrap when clustered);
    - `mean`: mean of values (bootstrap);
    - `ratio`: sum(numerator) / sum(denominator) over items, e.g. corpus WER (bootstrap).
    """

    name: str
    aggregation: Aggregation
    value: str
    denominator: str | None = None
    higher_is_better: bool = True
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorer(ABC):
    """Subclass with `name`, `kinds`, `metrics`; register with `@register_scorer`."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    metrics: ClassVar[tuple[MetricSpec, ...]]
    version: ClassVar[str] = "1"

    def __init__(self, task: TaskConfig) -> None:
        self.task = task

    @abstractmethod
    def score(self, item: Item, output: str) -> Score:
        """Per-item values (numbers, or None when not applicable) and details."""


SCORERS: Registry[type[Scorer]] = Registry(
    "scorer", "harness.scorers", builtins=("harness.scoring.asr", "harness.scoring.qa", "harness.scoring.medical",
                                    "harness.scoring.citations"), name_attr="name")


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
)
