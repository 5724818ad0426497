"""HAS key 2.7 (Estimer, environmental cost): the share of prompt words spent on greetings,
thanks and courtesy ("bonjour", "merci", "s'il vous plaît", "please", "thank you"), which a
model still reads and bills: what stripping them from the prompts would save."""

from __future__ import annotations

import re
from typing import Any

from harness.report.sections import Section
from harness.scoring.base import MetricSpec, Scorer, register_scorer
from harness.types import Sample, Score

COURTESY = re.compile(
    r"\b(?:bonjour|bonsoir|salut|merci(?: beaucoup| bien)?|s'il (?:vous|te) pla[iî]t|svp|je vous prie|"
    r"veuillez|cordialement|bien à vous|hello|hi|dear|please|kindly|thank you(?: very much| so much)?|thanks|"
    r"many thanks|best regards|kind regards|regards|cheers)\b", re.IGNORECASE)
_WORD = re.compile(r"\w+(?:'\w+)?")


@register_scorer("politeness")
class Politeness(Scorer):
    """Courtesy words / all words of the prompt sent (system and user messages)."""

    kinds = frozenset({"qa", "generation", "deidentification", "translation"})
    metrics = (MetricSpec("courtesy_word_share", "ratio", "courtesy_words", "prompt_words", higher_is_better=False,
                          description="prompt words spent on greetings and thanks"),)

    async def score(self, sample: Sample) -> Score:
        if sample.request is None or not sample.request.messages:
            return Score({"courtesy_words": None, "prompt_words": None})
        text = "\n".join(str(m.get("content", "")) for m in sample.request.messages)
        polite = sum(len(_WORD.findall(m.group())) for m in COURTESY.finditer(text))
        return Score({"courtesy_words": polite, "prompt_words": len(_WORD.findall(text))},
                     {"courtesy_words": polite} if polite else {})

    @classmethod
    def summarize(cls, task: str, adapter: str, details: list[tuple[str, dict[str, Any]]]) -> list[Section]:
        total = sum(d.get("courtesy_words", 0) for _, d in details)
        if not total:
            return []
        return [Section("Courtesy in prompts", task, adapter, cls.name, group="Estimer (HAS 2.7)",
                        paragraphs=[f"{total} courtesy words in the prompts of {len(details)} items: removing them "
                                    "saves those tokens on every request, with no effect on the answer to expect."],
                        data={"courtesy_words": total, "items": len(details)})]
