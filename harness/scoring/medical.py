"""Medical scorers (HAS key 2.6, Vérifier): drug names, doses and units, critical terms,
and numeric fidelity of generated text to its source. See harness/clinical/analysis.py for
how errors are found and classified."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, Field

from harness.clinical.analysis import Analysis, analyse, same_quantity
from harness.clinical.extract import extract
from harness.clinical.lexicon import load_lexicon
from harness.config import TaskConfig
from harness.errors import Problem
from harness.report.sections import Section, Table, counts_text
from harness.scoring.base import (
    CheckContext,
    MetricSpec,
    Scorer,
    ScorerSettings,
    register_scorer,
    text_reference,
)
from harness.types import Item, Score

MEDICAL_KINDS = frozenset({"transcription", "generation", "qa", "translation"})
DOSE_CLASSES = ("unit_magnitude", "decimal_slip", "per_unit", "value", "unit_dropped", "dropped", "invented")


GROUP = "Errors that matter in medicine"
TOP_FINDINGS = 10
EXAMPLES = 3


class MedicalSettings(ScorerSettings):
    """Options shared by the medical scorers."""

    formulary: str | None = Field(default=None, description="CSV (variant,canonical) of local drug names")
    critical_terms: list[tuple[str, str]] = Field(default_factory=list,
                                                  description="extra near-homophone pairs, e.g. [[ileum, ilium]]")


def _check_formulary(settings: Any, ctx: CheckContext) -> list[Problem]:
    problems: list[Problem] = []
    if settings.formulary is not None:
        path = ctx.existing_file(settings.formulary, "formulary", "formulary file", problems)
        settings.formulary = str(path)
        if not problems:
            from harness.clinical.lexicon import formulary_problems

            problems.extend(formulary_problems(path))
    return problems


def _findings_summary(cls: type[Scorer], task: str, adapter: str, details: list[tuple[str, dict[str, Any]]],
                      title: str) -> list[Section]:
    """Counts by kind, the most frequent drug errors (reference → heard, why flagged) and a few
    examples of every other kind, from the findings this scorer recorded."""
    kinds: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    why: dict[tuple[str, str], str] = {}
    examples: dict[str, list[dict[str, str]]] = {}
    for item_id, d in details:
        for f in d.get("findings", []):
            kinds[f["kind"]] += 1
            if f["kind"].startswith("drug_"):
                pairs[(f["reference"], f["output"])] += 1
                why[(f["reference"], f["output"])] = f["detail"]
            else:
                examples.setdefault(f["kind"], []).append(
                    {"item_id": item_id, "reference": f["reference"], "output": f["output"]})
    if not kinds:
        return []
    by_kind = dict(kinds.most_common())
    top = [{"reference": r, "output": o, "count": n, "detail": why[(r, o)]}
           for (r, o), n in pairs.most_common(TOP_FINDINGS)]
    shown = {k: v[:EXAMPLES] for k, v in examples.items()}
    section = Section(title, task, adapter, cls.name, group=GROUP, paragraphs=[counts_text(by_kind)],
                      data={"by_kind": by_kind, "top_drug_errors": top, "examples": shown})
    if top:
        section.tables.append(Table(["Reference drug", "Heard / written", "Times", "Why flagged"],
                                    [[e["reference"], e["output"], e["count"], e["detail"]] for e in top],
                                    [True] * len(top)))
    section.bullets = [f"{kind.replace('_', ' ')}: "
                       + "; ".join(f"{e['reference']} → {e['output']} ({e['item_id']})" for e in ex)
                       for kind, ex in shown.items()]
    return [section]


class _Medical(Scorer):
    kinds = MEDICAL_KINDS
    cpu_bound = True
    prefixes: tuple[str, ...] = ()
    title = ""
    Settings = MedicalSettings
    settings: MedicalSettings

    def __init__(self, task: TaskConfig, settings: BaseModel | None = None) -> None:
        super().__init__(task, settings)
        self.lexicon = load_lexicon(self.settings.formulary)
        self.extra_pairs = tuple(tuple(p) for p in self.settings.critical_terms)

    @classmethod
    def check(cls, settings: Any, ctx: CheckContext) -> list[Problem]:
        return _check_formulary(settings, ctx)

    @classmethod
    def reference_check(cls, task: TaskConfig, settings: Any) -> Callable[[Any], str | None]:
        return text_reference

    def analysis(self, item: Item, output: str) -> Analysis:
        return analyse(str(item.reference or ""), output, self.task.language, self.lexicon,
                       self.extra_pairs)  # type: ignore[arg-type]

    def findings(self, a: Analysis) -> list[dict[str, Any]]:
        return [asdict(f) for f in a.findings if f.kind.startswith(self.prefixes)]

    @classmethod
    def summarize(cls, task: str, adapter: str, details: list[tuple[str, dict[str, Any]]]) -> list[Section]:
        return _findings_summary(cls, task, adapter, details, cls.title)


@register_scorer("drug_names")
class DrugNames(_Medical):
    """Recall and precision of reference drugs after canonicalization to an INN; every
    substitution listed, flagged look-alike / sound-alike."""

    prefixes = ("drug_",)
    title = "Drug names"
    metrics = (
        MetricSpec("drug_recall", "ratio", "drug_matched", "drug_ref", description="reference drugs found"),
        MetricSpec("drug_precision", "ratio", "drug_matched", "drug_out", description="output drugs that were said"),
        MetricSpec("drug_substitution_rate", "ratio", "drug_substituted", "drug_ref", higher_is_better=False,
                   description="reference drugs replaced by another drug (lost ones are in 1 − recall)"),
    )

    def score_text(self, item: Item, output: str) -> Score:
        a = self.analysis(item, output)
        subs = sum(1 for f in a.findings if f.kind == "drug_substitution")
        lasa = sum(1 for f in a.findings if f.kind in ("drug_substitution", "drug_lost")
                   and ("alike" in f.detail or "confusable" in f.detail))
        return Score({"drug_ref": a.drug_ref, "drug_out": a.drug_out, "drug_matched": a.drug_matched,
                      "drug_substituted": subs, "drug_lasa": lasa}, {"findings": self.findings(a)})


@register_scorer("doses")
class Doses(_Medical):
    """A dose is correct only if value, unit and per-unit match (1 g = 1000 mg); errors by class."""

    prefixes = ("dose_",)
    title = "Doses and units"
    metrics = (
        MetricSpec("dose_accuracy", "ratio", "dose_correct", "dose_ref",
                   description="reference doses rendered exactly"),
        MetricSpec("dose_magnitude_error_rate", "ratio", "dose_err_critical", "dose_ref", higher_is_better=False,
                   description="unit magnitude (mg↔µg), decimal slip (×10) or per-unit change"),
        MetricSpec("dose_invented_per_item", "mean", "dose_err_invented", higher_is_better=False,
                   description="doses in the output that the reference does not have"),
    )

    def score_text(self, item: Item, output: str) -> Score:
        a = self.analysis(item, output)
        values: dict[str, float | None] = {"dose_ref": a.dose_ref, "dose_correct": a.dose_correct,
                                           "dose_out": a.dose_out}
        for cls in DOSE_CLASSES:
            values[f"dose_err_{cls}"] = a.dose_errors(cls)
        values["dose_err_critical"] = sum(a.dose_errors(c) for c in ("unit_magnitude", "decimal_slip", "per_unit"))
        return Score(values, {"findings": self.findings(a)})


@register_scorer("critical_terms")
class CriticalTerms(_Medical):
    """Negation flips, laterality flips, near-homophone swaps; and the severity-weighted
    error score of the whole output (critical ×5, major ×2, other word errors ×1, per
    reference word), to read beside WER."""

    prefixes = ("negation_", "laterality_", "near_homophone", "frequency_")
    title = "Negation, laterality, near-homophones, dosing frequency"
    metrics = (
        MetricSpec("critical_term_error_rate", "ratio", "critical_errors", "critical_ref", higher_is_better=False,
                   description="critical errors / critical terms in the reference"),
        MetricSpec("severity_weighted_error_rate", "ratio", "severity_points", "severity_words",
                   higher_is_better=False, description="(5·critical + 2·major + minor word errors) / reference words"),
    )

    def score_text(self, item: Item, output: str) -> Score:
        a = self.analysis(item, output)
        score = a.severity_score
        return Score({"critical_ref": a.critical_ref, "critical_errors": a.critical_errors,
                      "severity_points": None if score is None else score * a.ref_words,
                      "severity_words": a.ref_words or None,
                      "critical_findings": a.count("critical"), "major_findings": a.count("major")},
                     {"findings": self.findings(a)})


@register_scorer("numeric_fidelity")
class NumericFidelity(Scorer):
    """Every dose and number in a generated text must be supported by the source document."""

    kinds = frozenset({"generation", "translation"})
    metrics = (MetricSpec("unsupported_number_rate", "ratio", "numbers_unsupported", "numbers_out",
                          higher_is_better=False, description="doses and numbers absent from the source"),
               MetricSpec("outputs_with_unsupported_numbers", "proportion", "has_unsupported",
                          higher_is_better=False))

    Settings = MedicalSettings
    settings: MedicalSettings

    def __init__(self, task: TaskConfig, settings: BaseModel | None = None) -> None:
        super().__init__(task, settings)
        self.lexicon = load_lexicon(self.settings.formulary)

    @classmethod
    def check(cls, settings: Any, ctx: CheckContext) -> list[Problem]:
        return _check_formulary(settings, ctx)

    def score_text(self, item: Item, output: str) -> Score:
        # a translation's source is in its own language ("deux comprimés" for "two tablets")
        source = extract(str(item.data.get("source") or ""), self.task.source_language or self.task.language,
                         self.lexicon)
        out = extract(output, self.task.language, self.lexicon)
        source_values = {v for _, v in source.numbers}
        unsupported = [d.surface for d in out.doses if not any(same_quantity(d, s) for s in source.doses)]
        in_doses = {j for d in out.doses for j in range(d.first, d.last + 1)}
        unsupported += [out.words[j] for j, v in out.numbers if j not in in_doses and v not in source_values]
        total = len(out.doses) + sum(1 for j, _ in out.numbers if j not in in_doses)
        return Score({"numbers_out": total, "numbers_unsupported": len(unsupported),
                      "has_unsupported": int(bool(unsupported))}, {"unsupported": unsupported})
