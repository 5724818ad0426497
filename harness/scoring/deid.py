"""De-identification quality against gold spans (issue 11): which identifiers of the input
are gone from the output. Recall first: a name left in the text is the costly error.

The input and the output are aligned word by word (Levenshtein opcodes on lowercased words);
an input word kept where the alignment puts it survived, any other was masked. An entity is
caught when none of its words survived; token precision counts masked words outside every
entity against it (over-redaction hides clinical content)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, field_validator
from rapidfuzz.distance import Levenshtein

from harness.config import TaskConfig
from harness.pii.detect import KINDS, Entity
from harness.report.sections import Section, Table
from harness.scoring.base import FieldOf, MetricSpec, Scorer, ScorerSettings, register_scorer
from harness.types import Item, Score

_WORD = re.compile(r"\w+")


class DeidSettings(ScorerSettings):
    types: list[str] = Field(default_factory=lambda: list(KINDS), description="identifier types with a recall each")

    @field_validator("types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for kind in value:
            if kind not in KINDS:
                raise ValueError(f"unknown identifier type {kind!r}; expected one of {', '.join(KINDS)}")
        return value


def gold_entities(reference: Any, text: str) -> list[Entity]:
    """Gold spans from an item's reference: the annotated text (`[NAME:Jean Morel]`, the
    bundled format) or a list of {type, start, end} over the input."""
    if isinstance(reference, list):
        return [Entity(str(g["type"]), int(g["start"]), int(g["end"]), text[int(g["start"]):int(g["end"])])
                for g in reference]
    from harness.pii.evaluate import parse

    plain, gold = parse(str(reference or ""))
    if plain != text:
        raise ValueError("the annotated reference is not the input with [TYPE:text] marks")
    return gold


@register_scorer("deid")
class Deidentification(Scorer):
    """Entity recall (overall and per type) and token precision, recall and F1."""

    Settings = DeidSettings
    settings: DeidSettings
    kinds = frozenset({"deidentification"})
    metrics = (
        MetricSpec("deid_entity_recall", "ratio", "deid_caught", "deid_entities",
                   description="gold identifiers entirely gone from the output"),
        MetricSpec("deid_token_recall", "ratio", "deid_tp", "deid_gold_tokens",
                   description="words of identifiers masked"),
        MetricSpec("deid_token_precision", "ratio", "deid_tp", "deid_masked",
                   description="masked words that were part of an identifier"),
        MetricSpec("deid_token_f1", "ratio", "deid_tp2", "deid_f1_den", description="2TP / (2TP + FP + FN)"),
    )

    @classmethod
    def item_check(cls, task: TaskConfig, settings: Any) -> Callable[[Any, FieldOf], str | None]:
        """Gold identifiers that can be scored: marks that give back the input, or spans inside
        it. Found only at scoring, such an item cost every system a request and then lost
        its scores."""

        def check(reference: Any, field: FieldOf) -> str | None:
            text = str(field("input") or "")
            try:
                gold = gold_entities(reference, text)
            except ValueError as exc:
                return str(exc)
            except (KeyError, TypeError) as exc:  # a span without start, a start that is not a number
                return (f"gold identifiers must be [TYPE:text] marks or a list of {{type, start, end}} "
                        f"({type(exc).__name__}: {exc})")
            for g in gold:  # a type outside KINDS counts in the overall recall, in no per-type one
                if not 0 <= g.start < g.end <= len(text):
                    return f"gold span {g.start}-{g.end} is not inside the input ({len(text)} characters)"
            return None

        return check

    @classmethod
    def metrics_for(cls, settings: BaseModel) -> tuple[MetricSpec, ...]:
        assert isinstance(settings, DeidSettings)
        return cls.metrics + tuple(
            MetricSpec(f"deid_recall_{kind.lower()}", "ratio", f"deid_caught_{kind}", f"deid_entities_{kind}",
                       description=f"{kind} identifiers entirely gone from the output") for kind in settings.types)

    def score_text(self, item: Item, output: str) -> Score:
        text = str(item.data.get("input") or "")
        gold = gold_entities(item.reference, text)
        words = list(_WORD.finditer(text))
        kept = [False] * len(words)
        ops: list[tuple[str, int, int, int, int]] = Levenshtein.opcodes(  # type: ignore[assignment]
            [w.group().lower() for w in words], [w.lower() for w in _WORD.findall(output)]).as_list()
        for tag, i1, i2, _, _ in ops:
            if tag == "equal":
                kept[i1:i2] = [True] * (i2 - i1)
        inside = [next((g for g in gold if w.start() < g.end and g.start < w.end()), None) for w in words]
        tp = sum(1 for k, g in zip(kept, inside, strict=True) if g is not None and not k)
        fp = sum(1 for k, g in zip(kept, inside, strict=True) if g is None and not k)
        fn = sum(1 for k, g in zip(kept, inside, strict=True) if g is not None and k)
        values: dict[str, float | None] = {
            "deid_tp": tp, "deid_masked": tp + fp, "deid_gold_tokens": tp + fn, "deid_tp2": 2 * tp,
            "deid_f1_den": 2 * tp + fp + fn, "deid_entities": len(gold)}
        caught, missed = 0, []
        per_type: dict[str, list[int]] = {kind: [0, 0] for kind in self.settings.types}
        for g in gold:
            survived = any(k for k, w in zip(kept, words, strict=True) if w.start() < g.end and g.start < w.end())
            caught += not survived
            if g.kind in per_type:
                per_type[g.kind][0] += not survived
                per_type[g.kind][1] += 1
            if survived:
                missed.append(g.kind)
        values["deid_caught"] = caught
        for kind, (c, n) in per_type.items():
            values[f"deid_caught_{kind}"] = c if n else None
            values[f"deid_entities_{kind}"] = n or None
        return Score(values, {"missed_types": missed, "over_masked_words": fp})

    @classmethod
    def summarize(cls, task: str, adapter: str, details: list[tuple[str, dict[str, Any]]]) -> list[Section]:
        missed: dict[str, int] = {}
        over = 0
        for _, d in details:
            for kind in d.get("missed_types", []):
                missed[kind] = missed.get(kind, 0) + 1
            over += d.get("over_masked_words", 0)
        rows: list[list[Any]] = [[kind, n] for kind, n in sorted(missed.items(), key=lambda x: -x[1])]
        return [Section("Identifiers left in the output", task, adapter, cls.name, group="Confidentiality (HAS 2.4)",
                        paragraphs=[f"{sum(missed.values())} identifiers survived de-identification; {over} words "
                                    "that were not identifiers were masked."],
                        tables=[Table(["type", "left in the output"], rows, [True] * len(rows))] if rows else [],
                        data={"missed": missed, "over_masked_words": over})]
