"""Who said what: WER per reference speaker and the concatenated minimum-permutation WER.

- **Per-speaker WER** ("doctor only"): the whole output is aligned with the whole reference
  (its speaker turns in time order) and each error is charged to the speaker of the reference
  words it touches (an insertion to the speaker of the word before it). It needs no speaker
  labels in the output, and the speakers' errors add up to the task's WER errors.
- **cpWER** (CHiME-6; what `meeteval` computes): the reference and the output are each
  concatenated per speaker, output speakers are matched one-to-one with reference speakers
  so that the total word errors are least (Hungarian assignment; unmatched speakers count all
  their words as deletions or insertions), and errors / reference words is the rate. It needs
  output segments with speakers (a diarized transcript); without them it is not computed.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator
from rapidfuzz.distance import Levenshtein

from harness.config import TaskConfig
from harness.report.sections import Section, Table
from harness.scoring.base import MetricSpec, Scorer, ScorerSettings, register_scorer
from harness.scoring.normalize import normalizer
from harness.segments import Segment, from_dicts, in_order
from harness.types import Sample, Score

_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class SpeakerSettings(ScorerSettings):
    speakers: list[str] = Field(default_factory=list,
                                description="reference speakers to report a WER for, e.g. [doctor, patient]")

    @field_validator("speakers")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not _LABEL.match(label):
                raise ValueError(f"speaker label {label!r}: use letters, digits, '_' or '-' (it names a metric)")
        return value


def _metric_label(speaker: str) -> str:
    return speaker.replace("-", "_").lower()


def cp_errors(ref: dict[str, list[str]], hyp: dict[str, list[str]]) -> tuple[int, dict[str, str | None]]:
    """Least total word errors over one-to-one speaker matchings, and the matching
    (reference speaker → output speaker, None when unmatched)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    r_names, h_names = list(ref), list(hyp)
    size = max(len(r_names), len(h_names))
    cost = np.zeros((size, size), dtype=np.int64)
    for i in range(size):
        for j in range(size):
            if i < len(r_names) and j < len(h_names):
                cost[i, j] = Levenshtein.distance(ref[r_names[i]], hyp[h_names[j]])
            elif i < len(r_names):
                cost[i, j] = len(ref[r_names[i]])  # reference speaker left unmatched: all deleted
            elif j < len(h_names):
                cost[i, j] = len(hyp[h_names[j]])  # output speaker nobody said: all inserted
    rows, cols = linear_sum_assignment(cost)
    mapping: dict[str, str | None] = {name: None for name in r_names}
    for i, j in zip(rows, cols, strict=True):
        if i < len(r_names) and j < len(h_names):
            mapping[r_names[i]] = h_names[j]
    return int(cost[rows, cols].sum()), mapping


def attributed_errors(ref_words: list[str], ref_speakers: list[str], hyp_words: list[str]) -> dict[str, list[int]]:
    """Speaker → [errors, reference words] from one alignment of the whole texts."""
    out: dict[str, list[int]] = {}
    for speaker in ref_speakers:
        out.setdefault(speaker, [0, 0])[1] += 1
    if not ref_speakers:
        return out
    ops: list[tuple[str, int, int, int, int]] = Levenshtein.opcodes(ref_words, hyp_words).as_list()  # type: ignore[assignment]
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        if tag == "insert":
            out[ref_speakers[max(i1 - 1, 0)]][0] += j2 - j1
        else:  # replace, delete: one error per reference word
            for i in range(i1, i2):
                out[ref_speakers[i]][0] += 1
    return out


@register_scorer("speaker_wer")
class SpeakerWER(Scorer):
    """WER per reference speaker, and cpWER when the output carries speakers."""

    Settings = SpeakerSettings
    settings: SpeakerSettings
    kinds = frozenset({"transcription"})
    needs_fields = ("segments",)
    metrics = (
        MetricSpec("cpwer", "ratio", "cpwer_errors", "cpwer_ref", higher_is_better=False,
                   description="concatenated minimum-permutation WER: words and speakers (diarized outputs)"),
    )

    def __init__(self, task: TaskConfig, settings: BaseModel | None = None) -> None:
        super().__init__(task, settings)
        self.normalize = normalizer(task.language, task.normalizer)

    @classmethod
    def metrics_for(cls, settings: BaseModel) -> tuple[MetricSpec, ...]:
        assert isinstance(settings, SpeakerSettings)
        per_speaker = tuple(
            MetricSpec(f"wer_{_metric_label(s)}", "ratio", f"wer_{_metric_label(s)}_errors",
                       f"wer_{_metric_label(s)}_ref", higher_is_better=False,
                       description=f"WER of what '{s}' said (errors charged by alignment with the whole output)")
            for s in settings.speakers)
        return per_speaker + cls.metrics

    def _words(self, segments: list[Segment]) -> tuple[list[str], list[str]]:
        words, speakers = [], []
        for seg in in_order(segments):
            tokens = self.normalize(seg.text).split()
            words.extend(tokens)
            speakers.extend([seg.speaker or "?"] * len(tokens))
        return words, speakers

    async def score(self, sample: Sample) -> Score:
        item, response = sample.item, sample.response
        if not item.segments:
            raise ValueError(f"item {item.id!r} has no reference segments (map `segments` in dataset.fields)")
        assert response.output is not None
        ref_words, ref_speakers = self._words(item.segments)
        per = attributed_errors(ref_words, ref_speakers, self.normalize(response.output).split())
        values: dict[str, float | None] = {}
        for s in self.settings.speakers:
            errors, n = per.get(s, [0, 0])
            key = f"wer_{_metric_label(s)}"
            values.update({f"{key}_errors": errors if n else None, f"{key}_ref": n or None,
                           key: errors / n if n else None})
        details: dict[str, Any] = {"speakers": {s: {"errors": e, "words": n} for s, (e, n) in per.items()}}
        hyp_segments = from_dicts(response.segments or [])
        if hyp_segments and all(seg.speaker is not None for seg in hyp_segments):
            ref_by = _by_speaker(ref_words, ref_speakers)
            hyp_words, hyp_speakers = self._words(hyp_segments)
            errors, mapping = cp_errors(ref_by, _by_speaker(hyp_words, hyp_speakers))
            values.update({"cpwer_errors": errors, "cpwer_ref": len(ref_words),
                           "cpwer": errors / len(ref_words) if ref_words else None})
            details["mapping"] = mapping
        else:
            values.update({"cpwer_errors": None, "cpwer_ref": None, "cpwer": None})
        return Score(values, details)

    @classmethod
    def summarize(cls, task: str, adapter: str, details: list[tuple[str, dict[str, Any]]]) -> list[Section]:
        totals: dict[str, list[int]] = {}
        matched: dict[tuple[str, str | None], int] = {}
        diarized = 0
        for _, d in details:
            for speaker, counts in d.get("speakers", {}).items():
                t = totals.setdefault(speaker, [0, 0])
                t[0] += counts["errors"]
                t[1] += counts["words"]
            if "mapping" in d:
                diarized += 1
                for ref, hyp in d["mapping"].items():
                    matched[(ref, hyp)] = matched.get((ref, hyp), 0) + 1
        if not totals:
            return []
        rows = [[s, n, e, f"{e / n:.3f}" if n else "–"] for s, (e, n) in sorted(totals.items())]
        section = Section(
            "Word errors by speaker", task, adapter, cls.name,
            paragraphs=[f"Each error charged to the reference speaker whose words it touches; {diarized} of "
                        f"{len(details)} outputs carried speaker labels (cpWER is computed on those)."],
            tables=[Table(["speaker", "reference words", "errors", "WER"], rows)],
            data={"speakers": {s: {"errors": e, "words": n} for s, (e, n) in totals.items()}, "diarized": diarized})
        if matched:
            section.tables.append(Table(["reference speaker", "matched output speaker", "items"],
                                        [[r, h or "(none)", c] for (r, h), c in sorted(matched.items(),
                                                                                        key=lambda x: str(x))]))
        return [section]


def _by_speaker(words: list[str], speakers: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for word, speaker in zip(words, speakers, strict=True):
        out.setdefault(speaker, []).append(word)
    return out
