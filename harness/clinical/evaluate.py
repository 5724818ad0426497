"""Extraction precision and recall on the bundled annotated sentences (EN and FR).

    python -m harness.clinical.evaluate [--verbose]

Each line of data/annotated/{en,fr}.tsv is: sentence, drugs (canonical names, ';'),
doses ('value[-high] unit[/per…]', ';'), annotated by hand for this project."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.clinical.extract import extract
from harness.clinical.lexicon import DATA, load_lexicon

ANNOTATED = DATA / "annotated"
GENERALISATION = DATA / "generalisation"


def parse_dose(text: str) -> tuple[float, float | None, str, tuple[str, ...]]:
    amount, _, unit = text.strip().partition(" ")
    low, _, high = amount.partition("-")
    base, *per = unit.split("/")
    return float(low), float(high) if high else None, base, tuple(per)


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def add(self, gold: Counter, found: Counter, text: str) -> None:
        tp = sum((gold & found).values())
        self.tp += tp
        self.fp += sum((found - gold).values())
        self.fn += sum((gold - found).values())
        if found != gold:
            self.errors.append(f"{text}\n    missed {dict(gold - found)} extra {dict(found - gold)}")


#: the annotated sets: the bundled regression set, and the generalisation set of issue 15
#: (split into a development half, which tuning may look at, and a test half, never tuned on)
SETS = {"regression": ANNOTATED / "{lang}.tsv", "dev": GENERALISATION / "{lang}-dev.tsv",
        "test": GENERALISATION / "{lang}-test.tsv",
        # negations and sides (findings, no drugs to speak of), written after the fixes for the
        # injected-error measurement: never tuned on
        "critical": GENERALISATION / "{lang}-critical.tsv"}


def evaluate(languages: tuple[str, ...] = ("en", "fr"), which: str = "regression") -> dict[str, dict[str, Counts]]:
    """Drug and dose precision / recall per language on one annotated set. Drugs compare by
    substance identity (`Lexicon.substances`): a brand and its generic are the same drug."""
    lexicon = load_lexicon()
    results: dict[str, dict[str, Counts]] = {}
    for lang in languages:
        drugs, doses = Counts(), Counts()
        for line in Path(str(SETS[which]).format(lang=lang)).read_text(encoding="utf-8").splitlines():
            text, gold_drugs, gold_doses = [*line.split("\t"), "", ""][:3]
            e = extract(text, lang, lexicon)
            drugs.add(Counter(lexicon.substances(d) for d in gold_drugs.split(";") if d),
                      Counter(lexicon.substances(d.canonical) for d in e.drugs), text)
            doses.add(Counter(parse_dose(d) for d in gold_doses.split(";") if d),
                      Counter(d.key() for d in e.doses), text)
        results[lang] = {"drugs": drugs, "doses": doses}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list every disagreement")
    parser.add_argument("--set", choices=sorted(SETS), default="regression",
                        help="regression (the bundled set), dev or test (the generalisation halves)")
    parser.add_argument("--lang", choices=("en", "fr"), action="append", help="one language (default both)")
    args = parser.parse_args()
    for lang, kinds in evaluate(tuple(args.lang or ("en", "fr")), args.set).items():
        for kind, c in kinds.items():
            print(f"{lang} {kind:5s}: precision {c.precision:.3f}  recall {c.recall:.3f}  "
                  f"(tp {c.tp}, fp {c.fp}, fn {c.fn})")
            if args.verbose:
                for err in c.errors:
                    print("  ", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
