"""Confidence intervals: Wilson for proportions, (cluster) bootstrap for means and ratios.

Items that share a cluster (a consultation, a patient, the repeats of one item)
are resampled together: treating them as independent would give intervals that
are too narrow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import overload

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_SAMPLES = 2000
#: from this many resampling units on, a mean's or ratio's CI uses the delta method:
#: bootstrap and delta agree closely there (tests/test_stats.py), and the bootstrap
#: would cost 40 ms per metric at 2,000 units and seconds at 100,000
DELTA_METHOD_UNITS = 1000
#: below this n a figure is flagged as too small to conclude
SMALL_N = 30


@dataclass(frozen=True)
class Estimate:
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    clusters: int
    method: str


def wilson(successes: float, n: int) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    # exact ends when nothing (or everything) was seen, not 5.6e-17 from rounding
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


@overload
def unit_sums(num: np.ndarray, den: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def unit_sums(num: np.ndarray, den: None, clusters: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]: ...
def unit_sums(num: np.ndarray, den: np.ndarray | None, clusters: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """Each resampling unit's sums of `num` and `den` (None: every row weighs 1, which stays None
    without clusters, so that a million-row mean allocates no column of ones)."""
    if clusters is None:
        return num, den
    _, inverse = np.unique(clusters, return_inverse=True)
    sizes = np.bincount(inverse).astype(np.float64) if den is None else np.bincount(inverse, weights=den)
    return np.bincount(inverse, weights=num), sizes


def ratio_influence(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Per-unit influence of sum(num)/sum(den) (delta method): its variance over m gives the
    ratio's variance; for paired runs, the difference of the two influences gives the
    difference's."""
    r = float(num.sum() / den.sum())
    return (num - r * den) / den.mean()


def normal_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic (math.erfc: scipy.stats would cost every
    `harness compare` half a second and 50 MB to import)."""
    return math.erfc(abs(z) / math.sqrt(2))


#: rows a variance takes at a time: np.var's deviations from the mean are a float64 copy of the
#: whole column (8 MB at a million rows, the scorecard's peak); these blocks stay in cache
_BLOCK = 1 << 16


def sample_variance(values: np.ndarray) -> float:
    """Variance with n - 1 degrees of freedom, as np.var(ddof=1), taken a block at a time
    (two passes: the mean, then the squared deviations from it)."""
    m = len(values)
    if m < 2:
        return math.nan
    mean = float(values.sum(dtype=np.float64)) / m
    squares = 0.0
    for start in range(0, m, _BLOCK):
        deviation = values[start:start + _BLOCK] - mean
        squares += float(np.dot(deviation, deviation))
    return squares / (m - 1)


def delta_se(influence: np.ndarray) -> float:
    m = len(influence)
    return float(math.sqrt(sample_variance(influence) / m)) if m > 1 else math.nan


def ratio_ci(num: np.ndarray, den: np.ndarray | None, clusters: np.ndarray | None = None,
             seed: int = 0, samples: int = BOOTSTRAP_SAMPLES,
             delta_from: int = DELTA_METHOD_UNITS) -> tuple[float, float, int, str]:
    """95% CI of sum(num)/sum(den) (den None: the mean of num), resampling clusters (or items).
    Returns (low, high, units, method)."""
    u_num, u_den = unit_sums(num, den, clusters)
    m = len(u_num)
    total = float(u_den.sum()) if u_den is not None else float(m)
    if m < 2 or total == 0:
        return (math.nan, math.nan, m, "none")
    if m >= delta_from:
        r = float(u_num.sum()) / total
        # a mean's influence is num - r, whose variance is num's: no temporary column
        se = delta_se(ratio_influence(u_num, u_den) if u_den is not None else u_num)
        return (r - Z95 * se, r + Z95 * se, m, "delta")
    if u_den is None:
        u_den = np.ones(m)
    rng = np.random.default_rng(seed)
    stats = np.empty(samples)
    chunk = max(1, 4_000_000 // m)
    for start in range(0, samples, chunk):
        idx = rng.integers(0, m, size=(min(chunk, samples - start), m))
        d = u_den[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[start:start + len(idx)] = u_num[idx].sum(axis=1) / d
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return (math.nan, math.nan, m, "none")
    low, high = np.percentile(stats, [2.5, 97.5])
    return (float(low), float(high), m, "cluster-bootstrap" if clusters is not None else "bootstrap")


def _proportion_ci(values: np.ndarray, clusters: np.ndarray | None, n_clusters: int) -> tuple[float, float, str]:
    """Wilson interval; with clusters, on Kish's effective sample size n / design effect.

    A cluster bootstrap degenerates to [0, 0] when no event was seen; Wilson on the
    effective n still says how large the rate could be."""
    n = len(values)
    successes = float(values.sum(dtype=np.float64))
    if clusters is None:
        low, high = wilson(successes, n)
        return low, high, "wilson"
    p = successes / n
    if p in (0.0, 1.0):
        n_eff = float(n_clusters)  # no within-cluster variance to estimate: be conservative
    else:
        u_num, u_den = unit_sums(values, None, clusters)
        assert u_den is not None  # clusters given: each one's size
        resid = u_num - p * u_den
        m = len(u_num)
        var_cluster = m / max(m - 1, 1) * float((resid**2).sum()) / n**2
        n_eff = min(float(n), p * (1 - p) / var_cluster) if var_cluster > 0 else float(n)
    low, high = wilson(p * n_eff, max(1, round(n_eff)))
    return low, high, "wilson-clustered"


def estimate(values: np.ndarray, aggregation: str, denominators: np.ndarray | None = None,
             clusters: np.ndarray | None = None, seed: int = 0) -> Estimate:
    """Point estimate and 95% CI of a metric from its per-item values."""
    n = len(values)
    if n == 0:
        return Estimate(None, None, None, 0, 0, "none")
    if aggregation != "proportion" or values.dtype.kind != "i":  # a 0/1 proportion may stay in its bytes
        values = np.asarray(values, dtype=float)  # no copy of a float column (a million rows: 8 MB each)
    den = np.asarray(denominators, dtype=float) if aggregation == "ratio" and denominators is not None else None
    total = float(den.sum()) if den is not None else float(n)
    value = float(values.sum(dtype=np.float64)) / total if total else None
    n_clusters = len(np.unique(clusters)) if clusters is not None else n
    if aggregation == "proportion":
        low, high, method = _proportion_ci(values, clusters, n_clusters)
    else:
        low, high, _, method = ratio_ci(values, den, clusters, seed)
    finite = not (math.isnan(low) or math.isnan(high))
    return Estimate(value, low if finite else None, high if finite else None, n, n_clusters, method)


def paired_ratio_difference(num_a: np.ndarray, den_a: np.ndarray, num_b: np.ndarray, den_b: np.ndarray,
                            clusters: np.ndarray | None = None, seed: int = 0,
                            samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float, float]:
    """Difference B − A of two ratios measured on the same items, with a paired
    bootstrap 95% CI (the same resampled items on both sides). Returns (diff, low, high)."""
    na, da = unit_sums(num_a, den_a, clusters)
    nb, db = unit_sums(num_b, den_b, clusters)
    if not da.sum() or not db.sum():  # nothing to divide by (e.g. no citation at all): no figure
        return math.nan, math.nan, math.nan
    diff = nb.sum() / db.sum() - na.sum() / da.sum()
    m = len(na)
    rng = np.random.default_rng(seed)
    stats = np.empty(samples)
    chunk = max(1, 4_000_000 // max(m, 1))
    for start in range(0, samples, chunk):
        idx = rng.integers(0, m, size=(min(chunk, samples - start), m))
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[start:start + len(idx)] = nb[idx].sum(1) / db[idx].sum(1) - na[idx].sum(1) / da[idx].sum(1)
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return float(diff), math.nan, math.nan
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(diff), float(low), float(high)


def _binomial_cdf(n: int, p: float) -> tuple[int, np.ndarray]:
    """(lo, P(X ≤ k) for k = lo..hi), X ~ Binomial(n, p), computed in log space on the window
    of k where the mass is: by Bernstein's inequality, less than e^-72 of it lies beyond
    12σ + 50 of np. A million values need 12,000 terms instead of a million (and 50 MB)."""
    half = 12 * math.sqrt(n * p * (1 - p)) + 50
    lo, hi = max(0, math.floor(n * p - half)), min(n, math.ceil(n * p + half))
    k = np.arange(lo, hi + 1)
    # log k! and log (n-k)! over the window, from lgamma at one end and running sums of logs
    log_fact_k = math.lgamma(lo + 1) + np.concatenate(([0.0], np.cumsum(np.log(k[1:]))))
    rest = np.arange(n - hi, n - lo + 1)  # n - k, ascending
    log_fact_rest = (math.lgamma(n - hi + 1) + np.concatenate(([0.0], np.cumsum(np.log(rest[1:])))))[::-1]
    log_pmf = math.lgamma(n + 1) - log_fact_k - log_fact_rest + k * math.log(p) + (n - k) * math.log1p(-p)
    pmf = np.exp(log_pmf - log_pmf.max())
    return lo, np.cumsum(pmf) / pmf.sum()


def _sorted_quantile(x: np.ndarray, q: float) -> float:
    """np.quantile(x, q) (linear interpolation) of sorted values, read off them: np.quantile
    partitions a copy of the whole array."""
    h = (len(x) - 1) * q
    below = math.floor(h)
    if below + 1 >= len(x):
        return float(x[-1])
    return float(x[below] + (h - below) * (x[below + 1] - x[below]))


def quantile_ci(values: np.ndarray, q: float, confidence: float = 0.95,
                is_sorted: bool = False) -> tuple[float, float, float]:
    """The q-quantile (0 < q < 1) and its distribution-free CI from order statistics: the
    ranks j < k with P(X(j) ≤ ξ_q ≤ X(k)) ≥ confidence, X ~ Binomial(n, q) (Hahn & Meeker).
    Exact at any n and one sort (none when `is_sorted`), where a bootstrap of p99 needs
    thousands of resamples and still misbehaves at small n. An end is NaN when n is too small
    to bound it."""
    x = np.asarray(values, dtype=float) if is_sorted else np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    value = _sorted_quantile(x, q)
    alpha = (1 - confidence) / 2
    lo, cdf = _binomial_cdf(n, q)
    # lower end: the largest order statistic j (1-based) with P(X ≤ j-1) ≤ alpha
    j = lo + int(np.searchsorted(cdf, alpha, side="right"))
    # upper end: the smallest k with P(X ≤ k-1) ≥ 1 - alpha
    k = lo + int(np.searchsorted(cdf, 1 - alpha, side="left")) + 1
    low = float(x[j - 1]) if j >= 1 else math.nan
    high = float(x[k - 1]) if k <= n else math.nan
    return value, low, high
