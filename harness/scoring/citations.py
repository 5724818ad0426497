"""The `citations` scorer: extract what an answer cites and judge each citation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.citations.extract import extract_citations
from harness.citations.verify import Verifier, build_verifier
from harness.config import CitationsSpec, TaskConfig
from harness.errors import Problem
from harness.report.sections import Section, Table, counts_text
from harness.scoring.base import CheckContext, MetricSpec, Scorer, register_scorer
from harness.types import Item, Score

_VERIFIERS: dict[str, Verifier] = {}
CATALOGUE_FORMATS = (".csv", ".jsonl", ".bib", ".ris", ".xml")
MAX_LISTED = 20


class CitationsSettings(CitationsSpec):
    """How the scorer checks the references an answer cites (HAS key 2.5)."""


def survey_catalogue(path: Path, field: str, closed_world: bool, ctx: CheckContext, problems: list[Problem]) -> None:
    """Entries read from a catalogue file, and each entry that could not be read with its line.
    In a closed-world catalogue a lost entry turns every citation of it into 'fabricated', so
    unreadable entries are errors there, notes otherwise; a file that yields nothing is an error."""
    from harness.citations.catalogue import survey

    read, unreadable = survey(path)
    ctx.notes.append(f"{path}: {read} catalogue entries read, {len(unreadable)} unreadable")
    for u in unreadable[:MAX_LISTED]:
        if closed_world:
            problems.append(Problem(str(path), "", f"{u.reason} (closed-world catalogue: citations of this work "
                                                   "would be called fabricated)", u.line))
        else:
            ctx.notes.append(str(Problem(str(path), "", u.reason, u.line)))
    if read == 0:
        problems.append(ctx.problem(field, "no entry could be read from the catalogue file", found=str(path)))


@register_scorer("citations")
class Citations(Scorer):
    """Fabricated, mismatched, verified and outdated rates over the citations of all answers,
    citations per answer, and answers without any citation."""

    kinds = frozenset({"qa", "generation"})
    Settings = CitationsSettings
    settings: CitationsSettings
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

    @classmethod
    def check(cls, settings: Any, ctx: CheckContext) -> list[Problem]:
        from harness.cache import default_cache_dir

        problems: list[Problem] = []
        files = []
        for i, relative in enumerate(settings.catalogue):
            field = f"catalogue[{i}]"
            before = len(problems)
            path = ctx.existing_file(relative, field, "catalogue file", problems)
            if path.is_file() and path.suffix.lower() not in CATALOGUE_FORMATS:
                problems.append(ctx.problem(field, "unknown catalogue format",
                                            expected=".csv, .jsonl, .bib, .ris or .xml (PubMed)", found=path.suffix))
            elif len(problems) == before:
                survey_catalogue(path, field, settings.closed_world, ctx, problems)
            files.append(str(path))
        settings.catalogue = files
        if settings.registry is not None:
            before = len(problems)
            registry = ctx.existing_file(settings.registry, "registry", "guideline registry", problems)
            settings.registry = str(registry)
            if len(problems) == before:
                from harness.citations.guidelines import registry_problems

                problems.extend(registry_problems(registry))
        settings.cache_dir = settings.cache_dir or str(default_cache_dir(ctx.base_dir))
        return problems

    def __init__(self, task: TaskConfig, settings: BaseModel | None = None) -> None:
        super().__init__(task, settings)
        key = self.settings.model_dump_json()
        if key not in _VERIFIERS:  # catalogues are indexed once per process
            _VERIFIERS[key] = build_verifier(self.settings, Path(self.settings.cache_dir or ".harness-cache"))
        self.verifier = _VERIFIERS[key]

    def score_text(self, item: Item, output: str) -> Score:
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

    @classmethod
    def summarize(cls, task: str, adapter: str, details: list[tuple[str, dict[str, Any]]]) -> list[Section]:
        """Every citation that is not plainly verified and current, with its verdict and reason,
        and the count of each verdict."""
        counts: Counter[str] = Counter()
        flagged = []
        seen = False
        for item_id, d in details:
            verdicts = d.get("verdicts")
            if verdicts is None:
                continue
            seen = True
            for v in verdicts:
                counts[v["status"]] += 1
                counts["outdated"] += int(bool(v.get("outdated")))
                if v["status"] != "verified" or v.get("outdated"):
                    cited = v.get("title") or v.get("doi") or v.get("pmid") or v.get("pmcid") or v.get("url") \
                        or v["raw"]
                    flagged.append({"item_id": item_id, "cited": cited, "status": v["status"],
                                    "reason": v["reason"], "outdated": v.get("outdated_reason")})
        if not seen:
            return []
        section = Section("Cited sources", task, adapter, cls.name, group="Cited sources (HAS 2.5)",
                          paragraphs=[counts_text(dict(counts))], data={"counts": dict(counts), "flagged": flagged})
        if flagged:
            section.tables.append(Table(["Item", "Cited", "Verdict", "Why", "Outdated"],
                                        [[f["item_id"], f["cited"], f["status"], f["reason"], f["outdated"]]
                                         for f in flagged],
                                        [f["status"] in ("not_found", "mismatched") for f in flagged]))
        return [section]
