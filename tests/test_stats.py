"""Confidence intervals: known values, coverage, clusters."""

from __future__ import annotations

import numpy as np
import pytest

from harness.stats import estimate, paired_ratio_difference, ratio_ci, wilson


def test_wilson_known_values() -> None:
    # Reference values from Newcombe (1998), method 3
    low, high = wilson(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4) and high == pytest.approx(0.3662, abs=1e-4)
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)


def test_bootstrap_ratio_coverage() -> None:
    """The 95% bootstrap CI of a ratio covers the true value about 95% of the time."""
    rng = np.random.default_rng(0)
    covered = 0
    trials = 200
    for t in range(trials):
        den = rng.integers(5, 20, size=80).astype(float)
        num = rng.binomial(den.astype(int), 0.2).astype(float)
        low, high, _, _ = ratio_ci(num, den, seed=t, samples=500)
        covered += low <= 0.2 <= high
    assert 0.88 <= covered / trials <= 0.99


def test_clusters_widen_the_interval() -> None:
    rng = np.random.default_rng(1)
    cluster_effect = np.repeat(rng.normal(0, 1, 40), 10)
    values = (cluster_effect + rng.normal(0, 0.2, 400) > 0).astype(float)
    clusters = np.repeat(np.arange(40), 10)
    plain = estimate(values, "proportion")
    clustered = estimate(values, "proportion", clusters=clusters)
    assert clustered.clusters == 40 and plain.clusters == 400
    assert clustered.ci_high is not None and clustered.ci_low is not None
    assert plain.ci_high is not None and plain.ci_low is not None
    assert (clustered.ci_high - clustered.ci_low) > 2 * (plain.ci_high - plain.ci_low)


def test_zero_events_still_have_an_upper_bound_with_clusters() -> None:
    est = estimate(np.zeros(48), "proportion", clusters=np.repeat(np.arange(16), 3))
    assert est.value == 0 and est.ci_low == 0 and est.ci_high == pytest.approx(wilson(0, 16)[1])


@pytest.mark.parametrize("skewed", [False, True])
def test_delta_method_for_large_n_agrees_with_bootstrap(skewed: bool) -> None:
    rng = np.random.default_rng(2)
    den = rng.integers(5, 20, size=1000).astype(float) if not skewed else np.ones(1000)
    num = rng.binomial(den.astype(int), 0.1).astype(float) if not skewed else rng.lognormal(0, 1.2, 1000)
    low_d, high_d, _, method = ratio_ci(num, den)
    assert method == "delta"
    low_b, high_b, _, method_b = ratio_ci(num, den, delta_from=10**9)
    assert method_b == "bootstrap"
    assert low_d == pytest.approx(low_b, rel=0.05) and high_d == pytest.approx(high_b, rel=0.05)


def test_paired_difference_detects_a_shift() -> None:
    rng = np.random.default_rng(4)
    a = rng.binomial(1, 0.8, 300).astype(float)
    b = a.copy()
    b[rng.choice(300, 45, replace=False)] = 0.0
    ones = np.ones(300)
    diff, _, high = paired_ratio_difference(a, ones, b, ones)
    assert diff < 0 and high < 0


def test_quantile_ci_covers_the_true_percentile_and_stays_open_when_n_is_too_small() -> None:
    from harness.stats import quantile_ci

    rng = np.random.default_rng(7)
    true_p95 = -np.log(0.05)  # exponential(1)
    hits = sum(low <= true_p95 <= high for _, low, high in (quantile_ci(rng.exponential(size=300), 0.95)
                                                              for _ in range(400)))
    assert 0.93 <= hits / 400 <= 0.995  # order-statistic intervals are exact or conservative
    # p99 of 100 values: P(all below) = 0.99^100 = 0.37 > 2.5%, so no upper bound exists
    value, low, high = quantile_ci(rng.exponential(size=100), 0.99)
    assert low <= value and np.isnan(high)
    # the interval is made of observed values, in order
    x = rng.normal(size=1000)
    value, low, high = quantile_ci(x, 0.5)
    assert low in x and high in x and low < value < high


def test_blockwise_variance_and_sorted_quantile_equal_numpys() -> None:
    """The scorecard's variance (taken a block at a time) and the percentiles read off sorted
    values (no partitioned copy) give NumPy's figures, across block edges, small n and 0/1
    bytes."""
    from harness.stats import _BLOCK, quantile_ci, sample_variance

    rng = np.random.default_rng(11)
    for n in (1, 2, 3, 7, 100, _BLOCK - 1, _BLOCK, _BLOCK + 1, 3 * _BLOCK + 17):
        x = rng.lognormal(size=n)
        flags = (rng.random(n) < 0.3).astype(np.int8)
        if n > 1:
            assert sample_variance(x) == pytest.approx(np.var(x, ddof=1), rel=1e-12)
            assert sample_variance(flags) == pytest.approx(np.var(flags.astype(float), ddof=1), rel=1e-12, abs=1e-15)
        else:
            assert np.isnan(sample_variance(x))
        x.sort()
        for q in (0.01, 0.5, 0.95, 0.99, 0.999):
            assert quantile_ci(x, q, is_sorted=True)[0] == pytest.approx(float(np.quantile(x, q)), rel=1e-14)


def _full_range_ranks(n: int, q: float, alpha: float = 0.025) -> tuple[int, int]:
    """The order-statistic ranks from the binomial CDF over every k = 0..n (the reference the
    windowed CDF must equal)."""
    import math

    k = np.arange(n + 1)
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1)))))
    log_pmf = log_fact[n] - log_fact[k] - log_fact[n - k] + k * math.log(q) + (n - k) * math.log1p(-q)
    pmf = np.exp(log_pmf - log_pmf.max())
    cdf = np.cumsum(pmf) / pmf.sum()
    return int(np.searchsorted(cdf, alpha, side="right")), int(np.searchsorted(cdf, 1 - alpha, side="left")) + 1


def test_the_windowed_binomial_cdf_gives_the_full_range_ranks() -> None:
    """quantile_ci sums the binomial pmf only where its mass is (a million values: 12,000 terms
    instead of a million); the ranks it picks are those of the whole range, at every n from
    1 to 3,000 and at sampled larger n, for the reported percentiles and both tails."""
    from harness.stats import _binomial_cdf

    rng = np.random.default_rng(3)
    sizes = [*range(1, 3001), *rng.integers(3001, 400_000, size=40).tolist()]
    checked = 0
    for n in sizes:
        for q in (0.01, 0.5, 0.95, 0.99):
            lo, cdf = _binomial_cdf(n, q)
            windowed = (lo + int(np.searchsorted(cdf, 0.025, side="right")),
                        lo + int(np.searchsorted(cdf, 0.975, side="left")) + 1)
            assert windowed == _full_range_ranks(n, q), (n, q)
            checked += 1
    assert checked == 4 * len(sizes)
    lo, cdf = _binomial_cdf(1_000_000, 0.5)
    assert lo > 0 and len(cdf) < 20_000
