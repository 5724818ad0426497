"""Clinical extraction and scoring throughput (drug_names + doses + critical_terms on a
reference/output pair), on varied EN and FR sentences, and the lexicon's load time.
Targets (issues 5 and 15): >= 2,000 sentences/s; lexicon load under 1 s."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
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
    cold, warm = _load_times()
    print(f"Lexicon load in a new process: {cold:.2f} s built from its sources, {warm:.3f} s from the built "
          f"copy kept on disk (target < 1 s: {verdict(max(cold, warm) < 1.0, 'bench_clinical lexicon load')})")
    return {"sentences_per_s": rate, "lexicon_cold_s": cold, "lexicon_warm_s": warm}


LOAD = ("import time; t = time.perf_counter(); from harness.clinical.lexicon import load_lexicon; "
        "load_lexicon(); print(time.perf_counter() - t)")


def _load_times() -> tuple[float, float]:
    """Seconds to load the lexicon in a fresh interpreter with an empty cache, then with it."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        times = [float(subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(3)]
    return times[0], min(times[1:])


if __name__ == "__main__":
    main()
