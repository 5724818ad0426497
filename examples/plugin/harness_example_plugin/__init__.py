"""A third-party adapter and scorer for avec-harness, each with its own settings."""

from __future__ import annotations

from typing import Any, Literal

from harness.adapters import Adapter, Settings
from harness.scoring import MetricSpec, Scorer, ScorerSettings
from harness.types import Request, Response, Sample, Score


class ConstantSettings(Settings):
    answer: str = "A"


class Constant(Adapter):
    """A baseline that always gives the same answer."""

    Settings = ConstantSettings
    modalities = frozenset({"text"})

    async def generate(self, request: Request) -> Response:
        return Response(output=f"The answer is {self.settings.answer}.", model_id="constant-1")


class LengthRatioSettings(ScorerSettings):
    unit: Literal["words", "characters"] = "words"


class LengthRatio(Scorer):
    """Output length over reference length (corpus level), in words or characters."""

    kinds = frozenset({"qa", "generation", "transcription"})
    Settings = LengthRatioSettings
    metrics = (MetricSpec("length_ratio", "ratio", "out_len", "ref_len", higher_is_better=False,
                          description="output length / reference length"),)

    async def score(self, sample: Sample) -> Score:
        def size(text: Any) -> int:
            return len(str(text)) if self.settings.unit == "characters" else len(str(text).split())

        return Score({"out_len": size(sample.response.output), "ref_len": size(sample.item.reference)},
                     {"unit": self.settings.unit})
