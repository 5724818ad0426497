"""Injected errors and benign rewrites on annotated sentences: does the analysis catch the
errors that harm patients, and stay quiet on differences that do not matter?

    python -m harness.clinical.injection [--set dev|test|regression] [--verbose]

Each sentence of a set is rewritten, where it has what a rewrite needs, into:
- errors: a drug replaced by another (a look-alike where one is known), a unit tenfold to a
  thousandfold off (mg ↔ µg, g → mg), a decimal slip (0.5 → 5), a negation dropped, a side
  flipped, a dosing schedule changed (weekly ↔ daily);
- benign rewrites: punctuation and case dropped, a schedule said another way ("twice a day" ↔
  "bid", "matin et soir"), a unit spelled out, a brand for its generic, 1 g as 1000 mg.
An error counts as detected when the analysis reports a finding of its kind; a benign
rewrite is a false alarm when the analysis reports any critical or major finding.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.clinical.analysis import analyse
from harness.clinical.evaluate import SETS
from harness.clinical.extract import Extraction, extract
from harness.clinical.lexicon import Lexicon, load_lexicon

Rewrite = Callable[[Extraction, list[str], Lexicon, str, random.Random], list[str] | None]

OTHER_DRUGS = {"en": ["hydralazine", "clonidine", "metformin", "tramadol", "prednisone", "carbamazepine"],
               "fr": ["hydralazine", "clonidine", "metformine", "tramadol", "prednisone", "carbamazépine"]}
MAGNITUDE = {"mg": "µg", "µg": "mg", "g": "mg", "mcg": "mg", "milligrams": "micrograms", "milligrammes": "microgrammes",
             "micrograms": "milligrams", "microgrammes": "milligrammes", "grams": "milligrams", "gramme": "milligramme",
             "grammes": "milligrammes", "gram": "milligram"}
SPELLED = {"mg": {"en": "milligrams", "fr": "milligrammes"}, "µg": {"en": "micrograms", "fr": "microgrammes"},
           "g": {"en": "grams", "fr": "grammes"}, "ml": {"en": "millilitres", "fr": "millilitres"}}
SAME_SCHEDULE = {"en": {2.0: ["bid"], 3.0: ["tid"], 1.0: ["once", "daily"], 4.0: ["qid"]},
                 "fr": {2.0: ["matin", "et", "soir"], 3.0: ["matin", "midi", "et", "soir"],
                        1.0: ["une", "fois", "par", "jour"]}}
OTHER_SCHEDULE = {"en": (["once", "daily"], ["once", "weekly"]),
                  "fr": (["une", "fois", "par", "jour"], ["une", "fois", "par", "semaine"])}


def _splice(words: list[str], first: int, last: int, new: list[str]) -> list[str]:
    """`words` with words[first..last] replaced by `new`."""
    return [*words[:first], *new, *words[last + 1:]]


def _substitute(e: Extraction, words: list[str], lexicon: Lexicon, lang: str, rng: random.Random) -> list[str] | None:
    if not e.drugs:
        return None
    d = rng.choice(e.drugs)
    partners = [other for pair in lexicon.confusables if d.canonical in pair and len(pair) == 2
                for other in pair - {d.canonical}
                if lexicon.substances(other) != lexicon.substances(d.canonical)]  # OxyContin is oxycodone
    others = [o for o in OTHER_DRUGS[lang] if lexicon.variants.get(o) != d.canonical]
    replacement = rng.choice(partners) if partners else rng.choice(others)
    return _splice(words, d.first, d.last, replacement.split())


def _unit_magnitude(e: Extraction, words: list[str], lexicon: Lexicon, lang: str,
                    rng: random.Random) -> list[str] | None:
    for d in e.doses:
        for k in range(d.first, d.last + 1):
            if words[k] in MAGNITUDE:
                return _splice(words, k, k, [MAGNITUDE[words[k]]])
    return None


def _decimal_slip(e: Extraction, words: list[str], lexicon: Lexicon, lang: str,
                  rng: random.Random) -> list[str] | None:
    for d in e.doses:
        # a plain "number unit" dose: "one and a half grams", "deux milligrammes et demi" are left alone
        if d.high is None and d.last == d.first + 1 and words[d.first][0].isdigit():
            slipped = f"{d.value * 10:f}".rstrip("0").rstrip(".")
            return _splice(words, d.first, d.first, [slipped])
    return None


def _negation(e: Extraction, words: list[str], lexicon: Lexicon, lang: str, rng: random.Random) -> list[str] | None:
    if not e.negations:
        return None
    k = e.negations[0]
    return _splice(words, k, k, [])


def _laterality(e: Extraction, words: list[str], lexicon: Lexicon, lang: str, rng: random.Random) -> list[str] | None:
    if not e.laterality:
        return None
    k, side = e.laterality[0]
    flipped = {"left": "right", "right": "left", "gauche": "droite", "droite": "gauche", "droit": "gauche"}[side]
    return _splice(words, k, k, [flipped])


def _schedule(e: Extraction, words: list[str], lexicon: Lexicon, lang: str, rng: random.Random) -> list[str] | None:
    if not e.schedules:
        return None
    s = e.schedules[0]
    daily, weekly = OTHER_SCHEDULE[lang]
    return _splice(words, s.first, s.first + len(s.text.split()) - 1, weekly if s.per_day >= 1 else daily)


ERRORS: dict[str, tuple[Rewrite, str]] = {
    "substitution": (_substitute, "drug_substitution"),
    "unit magnitude": (_unit_magnitude, "dose_unit_magnitude"),
    "decimal slip": (_decimal_slip, "dose_decimal_slip"),
    "negation": (_negation, "negation_lost"),
    "laterality": (_laterality, "laterality_flip"),
    "frequency": (_schedule, "frequency_change"),
}


def _plain(e: Extraction, words: list[str], lexicon: Lexicon, lang: str, rng: random.Random) -> list[str] | None:
    return words  # punctuation and case gone


def _same_schedule(e: Extraction, words: list[str], lexicon: Lexicon, lang: str,
                   rng: random.Random) -> list[str] | None:
    for s in e.schedules:
        other = SAME_SCHEDULE[lang].get(s.per_day)
        if other and other != s.text.split():
            return _splice(words, s.first, s.first + len(s.text.split()) - 1, other)
    return None


def _spelled_unit(e: Extraction, words: list[str], lexicon: Lexicon, lang: str,
                  rng: random.Random) -> list[str] | None:
    for d in e.doses:
        for k in range(d.first, d.last + 1):
            if words[k] in SPELLED:
                return _splice(words, k, k, [SPELLED[words[k]][lang]])
    return None


def _brand_for_generic(e: Extraction, words: list[str], lexicon: Lexicon, lang: str,
                       rng: random.Random) -> list[str] | None:
    for d in e.drugs:
        names = sorted(v for v, c in lexicon.variants.items() if c == d.canonical and v != d.surface
                       and v.isascii() and v.isalpha() and v not in lexicon.stopwords and len(v) > 4)
        if names:
            return _splice(words, d.first, d.last, [rng.choice(names)])
    return None


def _grams_as_milligrams(e: Extraction, words: list[str], lexicon: Lexicon, lang: str,
                         rng: random.Random) -> list[str] | None:
    for d in e.doses:
        if d.unit == "g" and d.high is None and d.last == d.first + 1:
            return _splice(words, d.first, d.last, [f"{d.value * 1000:g}", "mg"])
    return None


BENIGN: dict[str, Rewrite] = {"punctuation and case": _plain, "schedule said another way": _same_schedule,
                              "unit spelled out": _spelled_unit, "brand for generic": _brand_for_generic,
                              "1 g as 1000 mg": _grams_as_milligrams}


@dataclass
class Result:
    injected: Counter[str] = field(default_factory=Counter)
    detected: Counter[str] = field(default_factory=Counter)
    benign: Counter[str] = field(default_factory=Counter)
    false_alarms: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)

    @property
    def detection(self) -> float:
        return sum(self.detected.values()) / max(1, sum(self.injected.values()))

    @property
    def false_alarm_rate(self) -> float:
        return sum(self.false_alarms.values()) / max(1, sum(self.benign.values()))


def measure(lang: str, which: str = "test", seed: int = 0) -> Result:
    """Detection of injected errors and false alarms on benign rewrites, on one set."""
    lexicon = load_lexicon()
    rng = random.Random(seed)
    result = Result()
    for line in Path(str(SETS[which]).format(lang=lang)).read_text(encoding="utf-8").splitlines():
        sentence = line.split("\t")[0]
        e = extract(sentence, lang, lexicon)
        words = list(e.words)
        for name, (rewrite, kind) in ERRORS.items():
            changed = rewrite(e, words, lexicon, lang, rng)
            if changed is None:
                continue
            result.injected[name] += 1
            findings = analyse(sentence, " ".join(changed), lang, lexicon).findings
            if any(f.kind == kind for f in findings):
                result.detected[name] += 1
            else:
                result.misses.append(f"{name}: {sentence!r} → {' '.join(changed)!r}: {[f.kind for f in findings]}")
        for name, rewrite in BENIGN.items():
            changed = rewrite(e, words, lexicon, lang, rng)
            if changed is None:
                continue
            result.benign[name] += 1
            findings = [f for f in analyse(sentence, " ".join(changed), lang, lexicon).findings
                        if f.severity in ("critical", "major")]
            if findings:
                result.false_alarms[name] += 1
                result.misses.append(f"benign {name}: {sentence!r} → {' '.join(changed)!r}: "
                                     f"{[(f.kind, f.reference, f.output) for f in findings]}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="test")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    for lang in ("en", "fr"):
        r = measure(lang, args.set)
        print(f"{lang}: injected errors detected {r.detection:.3f} ({sum(r.detected.values())}/"
              f"{sum(r.injected.values())}); false alarms on benign rewrites {r.false_alarm_rate:.3f} "
              f"({sum(r.false_alarms.values())}/{sum(r.benign.values())})")
        for name in ERRORS:
            print(f"    {name:15s} {r.detected[name]}/{r.injected[name]}")
        for name in BENIGN:
            print(f"    benign {name:27s} {r.false_alarms[name]} false alarms / {r.benign[name]}")
        if args.verbose:
            for miss in r.misses:
                print("  ", miss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
