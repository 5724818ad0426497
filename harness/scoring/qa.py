"""Question answering: extract the answer from free text, normalize, compare."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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
            alone = self.choices.get(output.strip(" \t\r\n.()*:").casefold())
            if alone is not None:  # the whole answer is a label, in any case: "b", "(c)", "**D**."
                return alone
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

    @classmethod
    def reference_check(cls, task: TaskConfig, settings: Any) -> Callable[[Any], str | None]:
        """A reference is a text or number, or a list of them (acceptable answers); with
        `choices` (and no `answer_pattern`), each one a choice: an answer column holding the
        option's text ("Furosemide" for "B") scored every item wrong."""
        normalize = normalizer(task.language, task.normalizer)
        labels = {normalize(c) for c in task.choices or []} if not task.answer_pattern else set()
        #: references already found to be choices, as written ("B", "b)"): a million-item scan
        #: looks each up in a set (0.1 s) rather than normalizing it again (0.9 s)
        seen: set[str] = set()

        def check(reference: Any) -> str | None:
            if type(reference) is str and reference in seen:
                return None
            for answer in reference if isinstance(reference, list) else [reference]:
                if isinstance(answer, dict | list):
                    return (f"reference must be a text, a number or a list of acceptable answers, "
                            f"found {type(answer).__name__} {answer!r:.60}")
                if labels and normalize(str(answer)) not in labels:
                    return f"reference {answer!r:.60} is not one of the choices " + ", ".join(task.choices or [])
            if labels and type(reference) is str and len(seen) < 1000:  # bounded: free-text answers are not kept
                seen.add(reference)
            return None

        return check

    def score_text(self, item: Item, output: str) -> Score:
        """Correct when the extracted answer is the reference, or one of a list of acceptable
        answers ("paracetamol", "acetaminophen"), after normalization."""
        answer = self.extract(output)
        if answer is None:
            return Score({"correct": 0, "unextractable": 1}, {"extracted": None})
        references = item.reference if isinstance(item.reference, list) else [item.reference]
        extracted = self.normalize(answer)
        correct = any(extracted == self.normalize(str(r)) for r in references if r is not None)
        return Score({"correct": int(correct), "unextractable": 0}, {"extracted": answer})
