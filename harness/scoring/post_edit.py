"""Correction burden (HAS key 3.2, "number of corrections"): how much a professional had to
change an output before using it. Items carry the corrected version (`post_edit`) and, when
recorded, the seconds the correction took (`correction_seconds`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.report.sections import Section
from harness.scoring.asr import edit_counts
from harness.scoring.base import MetricSpec, Scorer, ScorerSettings, register_scorer
from harness.scoring.normalize import normalizer
from harness.types import Item, Sample, Score


@register_scorer("post_edit")
class PostEdit(Scorer):
    """HTER-style edit rate (word edits from the output to its correction / words of the
    correction), the share of outputs used unchanged, and time to correct."""

    kinds = frozenset({"generation", "transcription", "qa", "translation"})
    needs_fields = ("post_edit",)
    metrics = (
        MetricSpec("post_edit_rate", "ratio", "pe_edits", "pe_words", higher_is_better=False,
                   description="word edits to reach the corrected version / its words (HTER-style)"),
        MetricSpec("used_unchanged_rate", "proportion", "pe_unchanged",
                   description="outputs the professional kept as they were (after normalization)"),
        MetricSpec("time_to_correct_s", "mean", "pe_seconds", higher_is_better=False,
                   description="seconds spent correcting, where recorded"),
    )

    class Settings(ScorerSettings):
        adapter: str | None = Field(
            default=None, description="the system whose outputs were corrected; the others get no value")

    async def score(self, sample: Sample) -> Score:
        wanted = self.settings.adapter  # type: ignore[attr-defined]
        if wanted is not None and sample.adapter != wanted:
            return Score(dict.fromkeys(("pe_edits", "pe_words", "pe_unchanged", "pe_seconds")))
        return await super().score(sample)

    def score_text(self, item: Item, output: str) -> Score:
        norm = normalizer(self.task.language, self.task.normalizer)
        corrected = item.data.get("post_edit")
        if corrected in (None, ""):
            return Score({"pe_edits": None, "pe_words": None, "pe_unchanged": None, "pe_seconds": None})
        target = norm(str(corrected)).split()
        sub, dele, ins, _ = edit_counts(target, norm(output).split())
        edits = sub + dele + ins
        seconds = item.data.get("correction_seconds")
        try:
            seconds_value = None if seconds in (None, "") else float(seconds)
        except (TypeError, ValueError):
            raise ValueError(f"correction_seconds of item {item.id!r} is not a number: {seconds!r}") from None
        return Score({"pe_edits": edits, "pe_words": len(target), "pe_unchanged": int(edits == 0),
                      "pe_seconds": seconds_value}, {"edits": edits} if edits else {})

    @classmethod
    def summarize(cls, task: str, adapter: str, details: list[tuple[str, dict[str, Any]]]) -> list[Section]:
        heavy = sorted(details, key=lambda d: -d[1].get("edits", 0))[:5]
        if not heavy:
            return []
        return [Section("Most corrected outputs", task, adapter, cls.name,
                        bullets=[f"{item}: {d['edits']} word edits" for item, d in heavy],
                        data={"most_corrected": [{"item": i, "edits": d["edits"]} for i, d in heavy]})]
