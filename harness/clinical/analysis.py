"""Reference text against output text: which medically critical errors were made.

Both texts are tokenized the same way and aligned word by word (Levenshtein opcodes);
each reference mention (drug, dose, negation cue, side, near-homophone) is looked up at
its aligned position in the output.

Severity: critical — drug substitution or loss, dose magnitude (mg↔µg, g↔mg), decimal
slip (×10), per-unit change (mg ↔ mg/kg), negation flip, laterality flip, near-homophone
swap; major — other dose value error, unit dropped, dose dropped, dose invented, drug
invented; minor — any other word error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from harness.clinical.extract import Dose, DrugMention, Extraction, extract
from harness.clinical.extract import side as side_of
from harness.clinical.lexicon import Lexicon, critical_terms
from harness.textcache import text_cache

SEVERITY_WEIGHTS = {"critical": 5.0, "major": 2.0, "minor": 1.0}
LASA_ORTHOGRAPHIC = 70.0   # rapidfuzz ratio, 0-100
LASA_PHONETIC = 80.0
CRITICAL_DOSE_ERRORS = {"unit_magnitude", "decimal_slip", "per_unit"}


def phonetic_key(word: str) -> str:
    """A coarse sound skeleton shared by English and French drug names: ph→f, soft c→s,
    hard c/k/q→k, y→i, z→s, x→ks, no h, no doubled letters, vowels kept as one 'a'."""
    w = re.sub(r"c(?=[eiyéè])", "s", word.lower())
    for a, b in (("ph", "f"), ("qu", "k"), ("ch", "k"), ("ck", "k"), ("x", "ks"), ("h", ""), ("y", "i"),
                 ("z", "s"), ("c", "k"), ("q", "k")):
        w = w.replace(a, b)
    out: list[str] = []
    for ch in w:
        ch = "a" if ch in "aeiouéèêëàâîïôûù" else ch
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(c for c in out if c.isalpha())


@dataclass
class Finding:
    kind: str
    severity: str
    reference: str
    output: str
    detail: str = ""


@dataclass
class Analysis:
    drug_ref: int = 0
    drug_out: int = 0
    drug_matched: int = 0
    dose_ref: int = 0
    dose_correct: int = 0
    dose_out: int = 0
    critical_ref: int = 0
    critical_errors: int = 0
    word_errors: int = 0
    ref_words: int = 0
    findings: list[Finding] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def dose_errors(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == f"dose_{kind}")

    @property
    def severity_score(self) -> float | None:
        """Severity-weighted errors per reference word (minor = word errors not explained
        by a critical or major finding)."""
        if not self.ref_words:
            return None
        critical, major = self.count("critical"), self.count("major")
        minor = max(0, self.word_errors - critical - major)
        return (SEVERITY_WEIGHTS["critical"] * critical + SEVERITY_WEIGHTS["major"] * major
                + SEVERITY_WEIGHTS["minor"] * minor) / self.ref_words


def _alignment(ref: Extraction, out: Extraction) -> tuple[list[tuple[int, int]], int]:
    """For each reference token, the output token span [j1, j2) it aligns with; word errors."""
    spans: list[tuple[int, int]] = [(0, 0)] * len(ref.words)
    errors = 0
    ops: list[tuple[str, int, int, int, int]] = Levenshtein.opcodes(  # type: ignore[assignment]
        ref.words, out.words).as_list()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            for k in range(i2 - i1):
                spans[i1 + k] = (j1 + k, j1 + k + 1)
        elif tag in ("replace", "delete"):
            for i in range(i1, i2):
                spans[i] = (j1, j2)
            errors += max(i2 - i1, j2 - j1)
        else:
            errors += j2 - j1
    return spans, errors


def _span(spans: list[tuple[int, int]], first: int, last: int, n_out: int) -> tuple[int, int]:
    """Output tokens standing where reference tokens first..last stood: everything between
    the neighbours' alignments, so that words inserted around a misheard term count
    ('ceftriaxone' heard as 'chef triac zone')."""
    parts = spans[first:last + 1]
    inner = (min(p[0] for p in parts), max(p[1] for p in parts))
    start = spans[first - 1][1] if first > 0 else 0
    end = spans[last + 1][0] if last + 1 < len(spans) else n_out
    return (min(start, inner[0]), max(end, inner[1])) if start <= end else inner


def _overlaps(first: int, last: int, span: tuple[int, int]) -> bool:
    return first < span[1] and last >= span[0] if span[1] > span[0] else False


def lasa(lexicon: Lexicon, a: str, b: str) -> str | None:
    """Why two names look or sound alike, or None."""
    known = lexicon.known_confusable(a, b)
    if known:
        return f"known confusable pair ({known})"
    ortho = fuzz.ratio(a, b)
    if ortho >= LASA_ORTHOGRAPHIC:
        return f"look-alike (spelling {ortho:.0f}%)"
    phon = fuzz.ratio(phonetic_key(a), phonetic_key(b))
    if phon >= LASA_PHONETIC:
        return f"sound-alike (phonetic {phon:.0f}%)"
    return None


MISSPELLING_RATIO = 85.0


def _misspelling(surface: str, heard: str, lexicon: Lexicon) -> bool:
    """`heard` is the reference drug written wrong, not another word: close in spelling (the
    spaces of a name heard in pieces removed), at least 5 letters, and no drug or common word
    of its own (the precision guard)."""
    joined = heard.replace(" ", "").replace("-", "")
    if len(joined) < 5 or any(w in lexicon.variants or w in lexicon.stopwords for w in heard.split() if len(w) > 3):
        return False
    return fuzz.ratio(surface.replace(" ", ""), joined) >= MISSPELLING_RATIO


def _drugs(a: Analysis, ref: Extraction, out: Extraction, spans: list[tuple[int, int]], lexicon: Lexicon) -> None:
    a.drug_ref, a.drug_out = len(ref.drugs), len(out.drugs)
    # Match by position first: a reference mention is rendered when the same drug sits where the
    # word alignment puts it. Only then by identity anywhere (a reordered list is not a loss).
    # Matching as a multiset alone attributed a lost mention to another one of the same drug.
    used: set[int] = set()
    pending: list[DrugMention] = []
    for d in ref.drugs:
        span = _span(spans, d.first, d.last, len(out.words))
        k = next((k for k, o in enumerate(out.drugs) if k not in used and o.canonical == d.canonical
                  and _overlaps(o.first, o.last, span)), None)
        if k is None:
            pending.append(d)
        else:
            used.add(k)
            a.drug_matched += 1
    unmatched: list[DrugMention] = []
    for d in pending:
        k = next((k for k, o in enumerate(out.drugs) if k not in used and o.canonical == d.canonical), None)
        if k is None:
            unmatched.append(d)
        else:
            used.add(k)
            a.drug_matched += 1
    remaining = [o.canonical for k, o in enumerate(out.drugs) if k not in used]
    for d in unmatched:
        span = _span(spans, d.first, d.last, len(out.words))
        other = next((o for k, o in enumerate(out.drugs) if k not in used and _overlaps(o.first, o.last, span)
                      and o.canonical in remaining), None)
        if other is not None:
            used.add(out.drugs.index(other))
            reason = lasa(lexicon, d.canonical, other.canonical) or lasa(lexicon, d.surface, other.surface)
            a.findings.append(Finding("drug_substitution", "critical", d.canonical, other.canonical,
                                      reason or "different drug"))
        else:
            heard = " ".join(out.words[span[0]:span[1]])
            if heard and _misspelling(d.surface, heard, lexicon):
                # "metforman", "a tor va statin": the drug is there, badly spelt; it counts for
                # recall and, being an output mention of the drug, for precision's denominator
                # too (counted in one only, precision went above 1)
                a.drug_matched += 1
                a.drug_out += 1
                a.findings.append(Finding("drug_misspelled", "major", d.canonical, heard,
                                          f"heard as a misspelling of {d.canonical}"))
                continue
            reason = lasa(lexicon, d.surface, heard.replace(" ", "")) if heard else None
            a.findings.append(Finding("drug_lost", "critical", d.canonical, heard or "(nothing)",
                                      reason or ("deleted" if not heard else "replaced by other words")))
    for k, o in enumerate(out.drugs):
        if k not in used:
            a.findings.append(Finding("drug_invented", "major", "(none)", o.canonical))


def same_quantity(x: Dose, y: Dose) -> bool:
    bx, by = x.base_amount(), y.base_amount()
    if bx and by and bx[0] == by[0]:
        return math.isclose(bx[1], by[1], rel_tol=1e-9) and x.per == y.per
    return x.unit == y.unit and math.isclose(x.value, y.value) and x.high == y.high and x.per == y.per


def classify_dose(ref: Dose, out: Dose) -> str | None:
    """None when the doses are the same quantity; else the class of error."""
    if same_quantity(ref, out):
        return None
    if ref.per != out.per and math.isclose(ref.value, out.value) and ref.unit == out.unit:
        return "per_unit"
    br, bo = ref.base_amount(), out.base_amount()
    if br and bo and br[0] == bo[0] and bo[1] and br[1]:
        ratio = bo[1] / br[1]
        if ref.unit != out.unit and any(math.isclose(ratio, f) for f in (1e3, 1e-3, 1e6, 1e-6)):
            return "unit_magnitude"
        if any(math.isclose(ratio, f) for f in (10, 0.1, 100, 0.01)):
            return "decimal_slip"
    elif ref.unit == out.unit and ref.value and any(
            math.isclose(out.value / ref.value, f) for f in (10, 0.1, 100, 0.01)):
        return "decimal_slip"
    return "value"


def _doses(a: Analysis, ref: Extraction, out: Extraction, spans: list[tuple[int, int]]) -> None:
    a.dose_ref, a.dose_out = len(ref.doses), len(out.doses)
    used: set[int] = set()
    for d in ref.doses:
        span = _span(spans, d.first, d.last, len(out.words))
        cands = [k for k, o in enumerate(out.doses) if k not in used and _overlaps(o.first, o.last, span)]
        if not cands:  # the same dose said elsewhere in the sentence still counts
            cands = [k for k, o in enumerate(out.doses) if k not in used and same_quantity(d, o)]
        if cands:
            k = next((c for c in cands if same_quantity(d, out.doses[c])), cands[0])
            used.add(k)
            error = classify_dose(d, out.doses[k])
            if error is None:
                a.dose_correct += 1
            else:
                severity = "critical" if error in CRITICAL_DOSE_ERRORS else "major"
                a.findings.append(Finding(f"dose_{error}", severity, d.surface, out.doses[k].surface))
            continue
        numbers = [v for j, v in out.numbers if span[0] <= j < span[1]]
        if any(math.isclose(v, d.value) for v in numbers):
            a.findings.append(Finding("dose_unit_dropped", "major", d.surface, f"{d.value:g} (no unit)"))
        else:
            heard = " ".join(out.words[span[0]:span[1]])
            a.findings.append(Finding("dose_dropped", "major", d.surface, heard or "(nothing)"))
    for k, o in enumerate(out.doses):
        if k not in used and not any(same_quantity(o, d) for d in ref.doses):
            a.findings.append(Finding("dose_invented", "major", "(none)", o.surface))


def _critical(a: Analysis, ref: Extraction, out: Extraction, spans: list[tuple[int, int]], lang: str,
              extra_pairs: tuple[tuple[str, str], ...]) -> None:
    terms = critical_terms()
    words_out = out.words
    negation_words = set(terms["negation"][lang])
    opposite = terms["laterality"][lang]
    pairs = {}
    for x, y in [*terms["near_homophones"][lang], *extra_pairs]:
        pairs[x], pairs[y] = y, x
    ref_words = ref.words
    homophones = [(i, w) for i, w in enumerate(ref_words) if w in pairs]
    a.critical_ref = len(ref.negations) + len(ref.laterality) + len(homophones)
    for i in ref.negations:
        j1, j2 = _span(spans, i, i, len(out.words))
        if not any(w in negation_words for w in words_out[j1:j2]):
            a.findings.append(Finding("negation_lost", "critical", ref_words[i], " ".join(words_out[j1:j2])
                                      or "(nothing)"))
    covered = {j for i in range(len(ref_words)) for j in range(*spans[i]) if ref_words[i] in negation_words}
    aligned: dict[int, list[int]] = {}  # output position → the reference positions aligned with it
    if out.negations:
        for i, (j1, j2) in enumerate(spans):
            for j in range(j1, j2):
                aligned.setdefault(j, []).append(i)
    previous = -2
    for j in out.negations:
        aligned_ref = aligned.get(j, [])
        run_continues, previous = j == previous + 1, j
        if run_continues:
            continue  # "no no no no": one added negation, not one per repetition
        if j not in covered and not any(ref_words[i] in negation_words for i in aligned_ref):
            a.findings.append(Finding("negation_added", "critical", " ".join(ref_words[i] for i in aligned_ref)
                                      or "(nothing)", words_out[j]))
    for i, side in ref.laterality:
        j1, j2 = _span(spans, i, i, len(out.words))
        heard = [side_of(w) for w in words_out[j1:j2]]
        if opposite[side] in heard and side not in heard:
            a.findings.append(Finding("laterality_flip", "critical", side, opposite[side]))
        elif side not in heard:
            a.findings.append(Finding("laterality_lost", "major", side, " ".join(heard) or "(nothing)"))
    for i, w in homophones:
        j1, j2 = _span(spans, i, i, len(out.words))
        if pairs[w] in words_out[j1:j2]:
            a.findings.append(Finding("near_homophone_swap", "critical", w, pairs[w]))
    _schedules(a, ref, out, spans)
    a.critical_ref += len(ref.schedules)
    a.critical_errors = sum(1 for f in a.findings if f.kind in (
        "negation_lost", "negation_added", "laterality_flip", "laterality_lost", "near_homophone_swap",
        "frequency_change", "frequency_lost"))


def _schedules(a: Analysis, ref: Extraction, out: Extraction, spans: list[tuple[int, int]]) -> None:
    """A dosing schedule heard as another (weekly as daily, twice a day as once) is critical;
    one that is gone is major. Compared by doses a day, so "bid" and "twice a day" agree."""
    used: set[int] = set()
    for s in ref.schedules:
        width = max(1, len(s.text.split()))
        j1, j2 = _span(spans, s.first, min(s.first + width - 1, len(spans) - 1), len(out.words))
        near = sorted((k for k, o in enumerate(out.schedules) if k not in used and j1 - 1 <= o.first < j2 + 1),
                      key=lambda k: abs(out.schedules[k].first - j1))[:1]  # the one standing where it stood
        same = next((k for k in near if math.isclose(out.schedules[k].per_day, s.per_day, rel_tol=1e-4)), None)
        if same is None and not near:  # said elsewhere (a reordered sentence) is not lost
            same = next((k for k, o in enumerate(out.schedules) if k not in used
                         and math.isclose(o.per_day, s.per_day, rel_tol=1e-4)), None)
        if same is not None:
            used.add(same)
        elif near:
            used.add(near[0])
            a.findings.append(Finding("frequency_change", "critical", s.text, out.schedules[near[0]].text,
                                      f"{_rate(s.per_day)} → {_rate(out.schedules[near[0]].per_day)}"))
        else:
            a.findings.append(Finding("frequency_lost", "major", s.text, "(nothing)", _rate(s.per_day)))


def _rate(per_day: float) -> str:
    if per_day >= 1:
        return f"{per_day:g} a day"
    return f"once every {round(1 / per_day, 1):g} days"


@text_cache(short=4096)
def analyse(reference: str, output: str, language: str, lexicon: Lexicon,
            extra_pairs: tuple[tuple[str, str], ...] = ()) -> Analysis:
    """Every medically critical difference between a reference and an output."""
    lang = "fr" if language.lower().startswith("fr") else "en"
    ref, out = extract(reference, lang, lexicon), extract(output, lang, lexicon)
    spans, word_errors = _alignment(ref, out)
    a = Analysis(word_errors=word_errors, ref_words=len(ref.words))
    _drugs(a, ref, out, spans, lexicon)
    _doses(a, ref, out, spans)
    _critical(a, ref, out, spans, lang, extra_pairs)
    return a
