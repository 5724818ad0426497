"""The `citations` scorer: extract what an answer cites and judge each citation."""

from __future__ import annotations

from pathlib import Path

from harness.citations.extract import extract_citations
from harness.citations.verify import Verifier, build_verifier
from harness.config import CitationsSpec, TaskConfig
from harness.scoring.base import MetricSpec, Scorer, register_scorer
from harness.types import Item, Score

_VERIFIERS: dict[str, Verifier] = {}


@register_scorer("citations")
class Citations(Scorer):
    """Fabricated, mismatched, verified and outdated rates over the citations of all answers,
    citations per answer, and answers without any citation."""

    kinds = frozenset({"qa", "generation"})
    metrics = (
        MetricSpec("fabricated_rate", "ratio", "cit_not_found", "citations", higher_is_better=False,
                   description="citations that do not exist (not found where they should be)"),
        MetricSpec("mismatched_rate", "ratio", "cit_mismatched", "citations", higher_is_better=False,
                   description="real identifier, metadata of another work"),
        MetricSpec("verified_rate", "ratio", "cit_verified", "citations"),
        MetricSpec("unverifiable_rate", "ratio", "cit_unverifiable", "citations", higher_is_better=False),
        MetricSpec("outdated_rate", "ratio", "cit_outdated", "citations", higher_is_better=False,
                   description="withdrawn or superseded guidelines, or older than max_age_years"),
        MetricSpec("citations_per_answer", "mean", "citations"),
        MetricSpec("answers_without_citation", "proportion", "no_citation", higher_is_better=False),
    )

    def __init__(self, task: TaskConfig) -> None:
        super().__init__(task)
        spec = task.citations or CitationsSpec()
        key = spec.model_dump_json()
        if key not in _VERIFIERS:  # catalogues are indexed once per process
            _VERIFIERS[key] = build_verifier(spec, Path(spec.cache_dir or ".harness-cache"))
        self.verifier = _VERIFIERS[key]

    def score(self, item: Item, output: str) -> Score:
        found = extract_citations(output)
        verdicts = [(c, self.verifier.verify(c)) for c in found]
        count = {s: sum(1 for _, v in verdicts if v.status == s)
                 for s in ("verified", "mismatched", "not_found", "unverifiable")}
        values: dict[str, float | None] = {
            "citations": len(found), "no_citation": int(not found),
            "cit_verified": count["verified"], "cit_mismatched": count["mismatched"],
            "cit_not_found": count["not_found"], "cit_unverifiable": count["unverifiable"],
            "cit_outdated": sum(1 for _, v in verdicts if v.outdated)}
        details = {"verdicts": [{**c.to_dict(), **v.to_dict()} for c, v in verdicts]}
        return Score(values, details)
