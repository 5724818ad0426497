"""Clinical extraction and scoring throughput (drug_names + doses + critical_terms on a
reference/output pair), on varied EN and FR sentences. Target (issue 5): >= 2,000 sentences/s."""

from __future__ import annotations

import random
import time

from targets import verdict

from harness.clinical.analysis import analyse
from harness.clinical.evaluate import ANNOTATED
from harness.clinical.lexicon import load_lexicon

N = 4000


def main(n: int = N) -> dict[str, float]:
    lexicon = load_lexicon()
    rng = random.Random(0)
    pairs = []
    for lang in ("en", "fr"):
        for line in (ANNOTATED / f"{lang}.tsv").read_text(encoding="utf-8").splitlines():
            text = line.split("\t")[0]
            pairs.append((text, lang))
    work = []
    for i in range(n):
        text, lang = pairs[i % len(pairs)]
        words = text.split()
        # a distinct output per pair so no cache helps: drop, swap or keep words at random
        out = " ".join(w for w in words if rng.random() > 0.1) + f" {i}"
        work.append((f"{text} ({i})", out, lang))
    start = time.perf_counter()
    for ref, out, lang in work:
        analyse(ref, out, lang, lexicon)
    elapsed = time.perf_counter() - start
    rate = n / elapsed
    print(f"Clinical analysis (drugs, doses, critical terms, severity) of {n:,} distinct EN/FR pairs: "
          f"{rate:,.0f} sentences/s (target >= 2,000: {verdict(rate >= 2000, 'bench_clinical')})")
    return {"sentences_per_s": rate}


if __name__ == "__main__":
    main()
