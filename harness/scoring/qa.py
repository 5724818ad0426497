"""Question answering: extract the answer from free text, normalize, compare."""

from __future__ import annotations

import re

from pydantic import BaseModel

from harness.config import TaskConfig
from harness.scoring.base import MetricSpec, Scorer, register_scorer
from harness.scoring.normalize import normalizer
from harness.types import Item, Score


def choice_patterns(choices: list[str]) -> list[re.Pattern[str]]:
    """Patterns for a choice label, most explicit first."""
    alt = "|".join(re.escape(c) for c in sorted(choices, key=len, reverse=True))
    return [
        re.compile(rf"(?:answer|réponse|reponse|option|choice|choix)\s*(?:is|est|:|=)?\s*:?\s*\(?\*?\*?({alt})\b",
                   re.IGNORECASE),
        re.compile(rf"^\s*\(?\*?\*?({alt})\*?\*?\s*[).:\-]", re.MULTILINE),
        re.compile(rf"(?<![\w'])\(?({alt})\)?(?![\w'])"),
    ]


@register_scorer("exact_match")
class ExactMatch(Scorer):
    """Accuracy after extraction; answers that cannot be extracted count as wrong and
    are also reported on their own (`unextractable_rate`)."""

    kinds = frozenset({"qa"})
    metrics = (
        MetricSpec("accuracy", "proportion", "correct", description="extracted answer equals the reference"),
        MetricSpec("unextractable_rate", "proportion", "unextractable", higher_is_better=False,
                   description="outputs from which no answer could be extracted"),
    )

    def __init__(self, task: TaskConfig, settings: BaseModel | None = None) -> None:
        super().__init__(task, settings)
        self.normalize = normalizer(task.language, task.normalizer)
        self.pattern = re.compile(task.answer_pattern, re.IGNORECASE | re.MULTILINE) if task.answer_pattern else None
        self.choice_res = choice_patterns(task.choices) if task.choices else []
        self.choices = {c.casefold(): c for c in task.choices or []}

    def extract(self, output: str) -> str | None:
        if self.pattern is not None:
            m = self.pattern.search(output)
            if not m:
                return None
            return m.group(1) if m.groups() else m.group(0)
        if self.choice_res:
            for i, rx in enumerate(self.choice_res):
                found = {m.group(1).casefold() for m in rx.finditer(output)}
                if i < 2 and found:
                    return self.choices[next(iter(found))] if len(found) == 1 else None
                if i == 2:
                    # a bare label counts only when exactly one label appears
                    bare = {m.group(1) for m in rx.finditer(output) if m.group(1).isupper() or len(found) == 1}
                    return self.choices[bare.pop().casefold()] if len(bare) == 1 else None
            return None
        return output.strip() or None

    def score_text(self, item: Item, output: str) -> Score:
        answer = self.extract(output)
        if answer is None:
            return Score({"correct": 0, "unextractable": 1}, {"extracted": None})
        correct = self.normalize(answer) == self.normalize(str(item.reference))
        return Score({"correct": int(correct), "unextractable": 0}, {"extracted": answer})
