"""WER scoring throughput: the harness scorer (normalizer + alignment + per-item record)
against jiwer on the same 20,000 synthetic 20-word pairs, in the same run.

Target (issue 3): at least 20,000 pairs/s.
"""

from __future__ import annotations

import io
import random
import time

import jiwer
import orjson
from targets import verdict

from harness.config import TaskConfig
from harness.scoring.asr import WER
from harness.types import Item

_TEXT = ("the patient denies chest pain give five milligrams of ceftriaxone intravenously once daily "
         "left knee right ankle no known drug allergies hydralazine ten units insulin at night")
WORDS = tuple(_TEXT.split())


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        ref = rng.choices(WORDS, k=20)
        hyp = [w if rng.random() > 0.1 else rng.choice(WORDS) for w in ref]
        if rng.random() < 0.3:
            del hyp[rng.randrange(len(hyp))]
        pairs.append((" ".join(ref).capitalize() + ".", " ".join(hyp)))
    return pairs


def main(n: int = 20_000) -> dict[str, float]:
    pairs = make_pairs(n)
    task = TaskConfig.model_validate({"name": "b", "kind": "transcription", "data_class": "public",
                                      "dataset": {"path": "x"}})
    scorer = WER(task)
    sink = io.BytesIO()
    start = time.perf_counter()
    for i, (ref, hyp) in enumerate(pairs):
        score = scorer.score_text(Item(str(i), {}, reference=ref), hyp)
        sink.write(orjson.dumps({"item_id": str(i), "values": score.values, "details": score.details},
                                option=orjson.OPT_APPEND_NEWLINE))
    harness_s = time.perf_counter() - start

    start = time.perf_counter()
    jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])
    jiwer_corpus_s = time.perf_counter() - start
    start = time.perf_counter()
    for ref, hyp in pairs:
        jiwer.process_words(ref, hyp)
    jiwer_pair_s = time.perf_counter() - start

    rate = n / harness_s
    print(f"WER scoring, {n:,} pairs of 20 words")
    print(f"  harness scorer (EN normalizer + alignment + JSON record): {rate:,.0f} pairs/s "
          f"(target >= 20,000: {verdict(rate >= 20_000, 'bench_wer')})")
    print(f"  jiwer.wer corpus call (its own default transform):        {n / jiwer_corpus_s:,.0f} pairs/s")
    print(f"  jiwer.process_words per pair:                              {n / jiwer_pair_s:,.0f} pairs/s")
    print(f"  ratio harness / jiwer per-pair throughput: {jiwer_pair_s / harness_s:.2f}x")
    return {"pairs_per_s": rate, "jiwer_pairs_per_s": n / jiwer_pair_s}


if __name__ == "__main__":
    main()
