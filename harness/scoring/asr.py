"""Word and character error rates.

Alignment is the Levenshtein alignment jiwer computes (jiwer 4 delegates to
rapidfuzz); we call rapidfuzz's opcodes directly on normalized tokens because
jiwer's transform pipeline costs ~25 µs a pair, more than the alignment itself.
`tests/test_scoring.py` checks the counts equal jiwer's on random pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from rapidfuzz.distance import Levenshtein

from harness.config import TaskConfig
from harness.scoring.base import MetricSpec, Scorer, register_scorer, text_reference
from harness.scoring.normalize import normalizer
from harness.types import Item, Score

TEXT_KINDS = frozenset({"transcription", "generation"})  # generation: against its reference


def edit_counts(ref: list[str] | str, hyp: list[str] | str) -> tuple[int, int, int, int]:
    """(substitutions, deletions, insertions, hits) of the minimal alignment."""
    sub = dele = ins = hits = 0
    # as_list(): plain tuples, three times cheaper than iterating Opcode objects
    ops: list[tuple[str, int, int, int, int]] = Levenshtein.opcodes(ref, hyp).as_list()  # type: ignore[assignment]
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            hits += i2 - i1
        elif tag == "replace":
            sub += i2 - i1
        elif tag == "delete":
            dele += i2 - i1
        else:
            ins += j2 - j1
    return sub, dele, ins, hits


class _ErrorRate(Scorer):
    unit: str
    keep_text = False  # the normalized texts go into scores.jsonl once, with WER
    cpu_bound = True

    def __init__(self, task: TaskConfig, settings: BaseModel | None = None) -> None:
        super().__init__(task, settings)
        self.normalize = normalizer(task.language, task.normalizer)

    @classmethod
    def reference_check(cls, task: TaskConfig, settings: Any) -> Callable[[Any], str | None]:
        return text_reference

    def _split(self, text: str) -> list[str] | str:
        return text.split()

    def score_text(self, item: Item, output: str) -> Score:
        ref, hyp = self.normalize(str(item.reference or "")), self.normalize(output)
        ref_units = self._split(ref)
        sub, dele, ins, _ = edit_counts(ref_units, self._split(hyp))
        n = len(ref_units)
        errors = sub + dele + ins
        u = self.unit
        values: dict[str, float | None] = {
            f"{u}_errors": errors, f"{u}_ref": n, u: errors / n if n else None,
            f"{u}_sub": sub, f"{u}_del": dele, f"{u}_ins": ins,
        }
        return Score(values, {"ref_norm": ref, "hyp_norm": hyp} if self.keep_text else {})


@register_scorer("wer")
class WER(_ErrorRate):
    """Corpus word error rate: total (S + D + I) / total reference words, after normalization."""

    unit = "wer"
    keep_text = True
    kinds = TEXT_KINDS
    metrics = (
        MetricSpec("wer", "ratio", "wer_errors", "wer_ref", higher_is_better=False,
                   description="corpus WER: all word errors / all reference words (long files weigh more)"),
        MetricSpec("wer_item_mean", "mean", "wer", higher_is_better=False,
                   description="mean of per-file WER: each file counts once (what most leaderboards publish)"),
    )


@register_scorer("cer")
class CER(_ErrorRate):
    """Corpus character error rate on the normalized text (spaces count as characters)."""

    unit = "cer"
    kinds = TEXT_KINDS
    metrics = (MetricSpec("cer", "ratio", "cer_errors", "cer_ref", higher_is_better=False,
                          description="character errors / reference characters (corpus level)"),)

    def _split(self, text: str) -> str:
        return text
