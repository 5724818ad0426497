"""Reference-based text similarity for generation and translation (HAS 2.2, Estimer):
sacrebleu's BLEU, chrF and TER at corpus level, and ROUGE-L for summaries and letters.

The sacrebleu scorers record each item's sufficient statistics and let the metrics layer
reduce their sums (harness.corpus), so the scorecard's figure is the one the `sacrebleu`
command line prints on the same files, with its signature as the metric's method.
`against: source` compares the output with the item's source instead of its reference:
a back-translation check (the output is the text translated back; the source the
original).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from harness.config import TaskConfig
from harness.corpus import new_sacrebleu_metric, sacrebleu_metric
from harness.scoring.base import MetricSpec, Scorer, ScorerSettings, register_scorer, text_reference
from harness.types import Item, Score

TEXT_KINDS = frozenset({"generation", "translation"})


class _Compared(ScorerSettings):
    against: Literal["reference", "source"] = Field(
        "reference", description="compare with the reference, or with the source (back-translation)")


def _target(item: Item, against: str) -> str | None:
    text = item.reference if against == "reference" else item.data.get("source")
    if text is None or text == "":
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        return str(text)
    if not isinstance(text, str):
        raise ValueError(f"item {item.id!r}: {against} must be a text, got {type(text).__name__}")
    return text


@lru_cache(maxsize=32)
def _signature(name: str, args: tuple[tuple[str, Any], ...]) -> str:
    """sacrebleu's signature for these arguments and one reference, as its CLI prints it."""
    metric = new_sacrebleu_metric(name, args)  # its own object: scoring a corpus sets its state
    metric.corpus_score(["a"], [["a"]])  # the signature needs the number of references
    return f"sacrebleu {name} {metric.get_signature().format()}"


class _Comparing(Scorer):
    """A scorer of the output against a text: the reference (checked at validation) or the source."""

    @classmethod
    def reference_check(cls, task: TaskConfig, settings: Any) -> Callable[[Any], str | None] | None:
        return text_reference if getattr(settings, "against", "reference") == "reference" else None


class _SacreBleuScorer(_Comparing):
    """Per-item sufficient statistics of one sacrebleu metric."""

    kinds = TEXT_KINDS
    cpu_bound = True
    version = "1"
    metric_class: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    statistics: ClassVar[int]
    description: ClassVar[str]

    @classmethod
    def sacrebleu_args(cls, settings: Any) -> tuple[tuple[str, Any], ...]:
        return tuple(sorted(settings.model_dump(exclude={"against"}).items()))

    @classmethod
    def statistic_count(cls, settings: Any) -> int:
        return cls.statistics

    @classmethod
    def metrics_for(cls, settings: BaseModel) -> tuple[MetricSpec, ...]:
        args = cls.sacrebleu_args(settings)
        against = getattr(settings, "against", "reference")
        name = cls.name if against == "reference" else f"{cls.name}_vs_source"
        return (MetricSpec(name, "corpus", name, higher_is_better=cls.higher_is_better,
                           description=cls.description + ("" if against == "reference"
                                                          else " (output against the source: back-translation)"),
                           statistics=cls.statistic_count(settings), reducer=f"sacrebleu.{cls.metric_class}",
                           reducer_args=args, method=_signature(cls.metric_class, args)),)

    def __init__(self, task: TaskConfig, settings: BaseModel | None = None) -> None:
        super().__init__(task, settings)
        # once per scorer, not per item: the value names and the configured sacrebleu object
        self._names = self.metrics_for(self.settings)[0].statistic_names()
        self._metric = sacrebleu_metric(self.metric_class, self.sacrebleu_args(self.settings))

    def score_text(self, item: Item, output: str) -> Score:
        target = _target(item, self.settings.against)  # type: ignore[attr-defined]
        if target is None:
            return Score(dict.fromkeys(self._names))
        stats = self._metric._extract_corpus_statistics([output], [[target]])[0]
        return Score({n: float(v) for n, v in zip(self._names, stats, strict=True)})


@register_scorer("bleu")
class Bleu(_SacreBleuScorer):
    """Corpus BLEU (sacrebleu; 0–100)."""

    class Settings(_Compared):
        tokenize: Literal["13a", "intl", "char", "none", "zh", "ja-mecab", "ko-mecab", "flores101",
                          "flores200"] = "13a"
        lowercase: bool = False
        smooth_method: Literal["exp", "floor", "add-k", "none"] = "exp"

    metric_class = "BLEU"
    statistics = 10  # matches and totals for 1- to 4-grams, hypothesis and reference lengths
    description = "corpus BLEU, 0–100 (sacrebleu)"
    metrics = (MetricSpec("bleu", "corpus", "bleu", statistics=10, reducer="sacrebleu.BLEU"),)


@register_scorer("chrf")
class Chrf(_SacreBleuScorer):
    """Corpus chrF (chrF++ with `word_order: 2`; sacrebleu; 0–100)."""

    class Settings(_Compared):
        char_order: int = Field(6, ge=1, le=10)
        word_order: int = Field(0, ge=0, le=4, description="2 gives chrF++")
        beta: int = Field(2, ge=1)
        lowercase: bool = False
        whitespace: bool = False

    metric_class = "CHRF"
    description = "corpus chrF, 0–100 (sacrebleu)"
    statistics = 18
    metrics = (MetricSpec("chrf", "corpus", "chrf", statistics=18, reducer="sacrebleu.CHRF"),)

    @classmethod
    def statistic_count(cls, settings: Any) -> int:
        return 3 * (settings.char_order + settings.word_order)


@register_scorer("ter")
class Ter(_SacreBleuScorer):
    """Corpus TER (sacrebleu; edits per 100 reference words, lower is better)."""

    class Settings(_Compared):
        normalized: bool = False
        no_punct: bool = False
        case_sensitive: bool = False

    metric_class = "TER"
    higher_is_better = False
    statistics = 2
    description = "corpus TER: edits / reference words × 100 (sacrebleu)"
    metrics = (MetricSpec("ter", "corpus", "ter", higher_is_better=False, statistics=2, reducer="sacrebleu.TER"),)


_WORD = re.compile(r"\w+", re.UNICODE)


def rouge_tokens(text: str) -> list[str]:
    """Lowercased words. rouge-score's tokenizer keeps [a-z0-9] only, which deletes every
    accented letter of a French text ("hépatite" → "h patite"); this one keeps them and
    gives rouge-score's tokens on ASCII text (tests/test_similarity.py)."""
    return _WORD.findall(text.lower().replace("_", " "))


def lcs_length(a: list[str], b: list[str]) -> int:
    from rapidfuzz.distance import LCSseq

    return int(LCSseq.similarity(a, b))


@register_scorer("rouge_l")
class RougeL(_Comparing):
    """ROUGE-L F1 per item (longest common subsequence of words), averaged: the usual
    figure for summaries, discharge letters and patient information."""

    class Settings(_Compared):
        pass

    kinds = TEXT_KINDS
    cpu_bound = True
    metrics = (MetricSpec("rouge_l", "mean", "rouge_l", description="ROUGE-L F1 (LCS of words), mean over items",
                          method="ROUGE-L F1, β = 1, Unicode word tokens, lowercased"),)

    def score_text(self, item: Item, output: str) -> Score:
        target = _target(item, self.settings.against)  # type: ignore[attr-defined]
        if target is None:
            return Score({"rouge_l": None})
        ref, hyp = rouge_tokens(target), rouge_tokens(output)
        if not ref or not hyp:
            return Score({"rouge_l": 0.0})
        lcs = lcs_length(ref, hyp)
        precision, recall = lcs / len(hyp), lcs / len(ref)
        f1 = 0.0 if lcs == 0 else 2 * precision * recall / (precision + recall)
        return Score({"rouge_l": f1})
