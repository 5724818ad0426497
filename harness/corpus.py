"""Corpus-level metrics: figures that are not a mean or a ratio of per-item values.

BLEU and chrF are computed from statistics summed over the whole corpus (n-gram matches
and counts, lengths), then reduced by a formula; averaging per-sentence scores gives a
different, non-standard number. Each item records its statistics as ordinary values
(`bleu#0` … `bleu#9`), so the figure is recomputed from the run record like every other;
the reduction is named in the metric's specification (`reducer`, `reducer_args`) and
looked up here. CIs come from a bootstrap over items (or clusters) of the summed
statistics, as `sacrebleu --confidence` does; paired comparisons resample the same items
on both sides and test with paired approximate randomization (`sacrebleu --paired-ar`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from harness.stats import BOOTSTRAP_SAMPLES, Estimate

PERMUTATIONS = 1000
Reducer = Callable[[np.ndarray], float]


def new_sacrebleu_metric(name: str, args: tuple[tuple[str, Any], ...]) -> Any:
    """A new sacrebleu metric object (BLEU, CHRF, TER) built with these arguments."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    cls = {"BLEU": BLEU, "CHRF": CHRF, "TER": TER}[name]
    return cls(**dict(args))


#: one shared object per configuration, for the per-item statistics and the reductions
sacrebleu_metric = lru_cache(maxsize=32)(new_sacrebleu_metric)


def _sacrebleu_reducer(name: str) -> Callable[[dict[str, Any]], Reducer]:
    def build(args: dict[str, Any]) -> Reducer:
        metric = sacrebleu_metric(name, tuple(sorted(args.items())))
        # sacrebleu's own reduction of summed statistics: the number its CLI prints
        return lambda stats: float(metric._compute_score_from_stats(stats.tolist()).score)
    return build


REDUCERS: dict[str, Callable[[dict[str, Any]], Reducer]] = {
    "sacrebleu.BLEU": _sacrebleu_reducer("BLEU"),
    "sacrebleu.CHRF": _sacrebleu_reducer("CHRF"),
    "sacrebleu.TER": _sacrebleu_reducer("TER"),
}


def reducer_for(spec: dict[str, Any]) -> Reducer:
    """The reduction of summed statistics named by a metric specification."""
    name = spec.get("reducer") or ""
    if name not in REDUCERS:
        raise KeyError(f"metric '{spec['name']}': unknown corpus reducer '{name}' (known: {', '.join(REDUCERS)})")
    return REDUCERS[name](dict(spec.get("reducer_args") or {}))


def _unit_stats(stats: np.ndarray, clusters: np.ndarray | None) -> np.ndarray:
    """Statistics summed per resampling unit (cluster, or item)."""
    if clusters is None:
        return stats
    _, inverse = np.unique(clusters, return_inverse=True)
    out = np.zeros((inverse.max() + 1, stats.shape[1]))
    np.add.at(out, inverse, stats)
    return out


def _resampled_sums(units: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Summed statistics of `samples` bootstrap resamples of the units (samples × k),
    in chunks so that 100,000 items never need a 100,000 × 1,000 index matrix."""
    m = len(units)
    out = np.empty((samples, units.shape[1]))
    chunk = max(1, 2_000_000 // max(m, 1))
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        counts = rng.multinomial(m, np.full(m, 1 / m), size=size)
        out[start:start + size] = counts @ units
    return out


def corpus_estimate(stats: np.ndarray, spec: dict[str, Any], clusters: np.ndarray | None = None,
                    seed: int = 0, samples: int = BOOTSTRAP_SAMPLES) -> Estimate:
    """The corpus figure of per-item statistics (n × k) and its bootstrap 95% CI."""
    n = len(stats)
    if n == 0:
        return Estimate(None, None, None, 0, 0, "none")
    reduce = reducer_for(spec)
    units = _unit_stats(stats, clusters)
    value = reduce(stats.sum(axis=0))
    if len(units) < 2:
        return Estimate(value, None, None, n, len(units), "bootstrap (corpus statistics)")
    rng = np.random.default_rng(seed)
    figures = np.array([reduce(row) for row in _resampled_sums(units, samples, rng)])
    figures = figures[np.isfinite(figures)]
    low, high = (float(x) for x in np.percentile(figures, [2.5, 97.5]))
    return Estimate(value, low, high, n, len(units), "bootstrap (corpus statistics)")


def paired_corpus_difference(stats_a: np.ndarray, stats_b: np.ndarray, spec: dict[str, Any],
                             clusters: np.ndarray | None = None, seed: int = 0,
                             samples: int = BOOTSTRAP_SAMPLES, permutations: int = PERMUTATIONS
                             ) -> tuple[float, float, float, float, float, float]:
    """(a, b, b − a, ci_low, ci_high, p) for a corpus metric on paired items: a bootstrap of
    the same resampled units on both sides, and a paired approximate-randomization p-value
    (each unit's statistics swapped between systems at random)."""
    reduce = reducer_for(spec)
    ua, ub = _unit_stats(stats_a, clusters), _unit_stats(stats_b, clusters)
    a, b = reduce(ua.sum(axis=0)), reduce(ub.sum(axis=0))
    diff = b - a
    m = len(ua)
    if m < 2:
        return a, b, diff, math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    both = np.hstack([ua, ub])
    sums = _resampled_sums(both, samples, rng)
    k = ua.shape[1]
    diffs = np.array([reduce(s[k:]) - reduce(s[:k]) for s in sums])
    diffs = diffs[np.isfinite(diffs)]
    low, high = (float(x) for x in np.percentile(diffs, [2.5, 97.5]))
    extreme = 0
    for _ in range(permutations):
        swap = rng.integers(0, 2, size=m).astype(bool)[:, None]
        pa, pb = np.where(swap, ub, ua).sum(axis=0), np.where(swap, ua, ub).sum(axis=0)
        extreme += abs(reduce(pb) - reduce(pa)) >= abs(diff) - 1e-12
    return a, b, diff, low, high, (extreme + 1) / (permutations + 1)
