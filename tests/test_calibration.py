"""Issue 7 calibration: the regression call is right as often as it claims.

Simulated paired binary outcomes at n = 500: items differ in difficulty (p_i ~ Beta(8, 2),
mean 0.8). Two versions of a model agree on most items: version B repeats A's outcome on an
item with probability `agreement`, and otherwise answers it afresh given p_i. A drop is
injected by turning a fixed share of B's correct answers into errors.
"""

from __future__ import annotations

import math

import numpy as np

from harness.compare import PairedValues, compare_values, verdict

N, SIMS = 500, 200


def _call(a: np.ndarray, b: np.ndarray, margin: float, seed: int) -> str:
    ones = np.ones(len(a))
    pv = PairedValues(a, ones, b, ones)
    _, _, diff, low, high, p, _ = compare_values(pv, "proportion", binary=True, seed=seed)
    return verdict(diff, low, high, p, margin, higher_is_better=True)


def _simulate(drop: float, margin: float, seed: int, agreement: float = 0.8) -> list[str]:
    rng = np.random.default_rng(seed)
    calls = []
    for s in range(SIMS):
        p = rng.beta(8, 2, N)
        a = rng.binomial(1, p).astype(float)
        fresh = rng.binomial(1, p).astype(float)
        b = np.where(rng.random(N) < agreement, a, fresh)
        flip = rng.choice(np.flatnonzero(b == 1), size=round(drop * N), replace=False)
        b[flip] = 0.0
        calls.append(_call(a, b, margin, s))
    return calls


def test_aa_false_regression_rate_at_most_5_percent() -> None:
    tolerance = 1.645 * math.sqrt(0.05 * 0.95 / SIMS)  # one-sided 95% binomial tolerance
    for agreement in (0.0, 0.8):  # independent versions, and similar versions
        calls = _simulate(drop=0.0, margin=0.0, seed=1, agreement=agreement)
        rate = calls.count("regression") / SIMS
        print(f"A/A (agreement {agreement}): {calls.count('regression')} false regressions in {SIMS} ({rate:.3f})")
        assert rate <= 0.05 + tolerance


def test_ten_point_drop_is_detected_at_least_90_percent() -> None:
    calls = _simulate(drop=0.10, margin=0.02, seed=2)
    rate = calls.count("regression") / SIMS
    print(f"10-point drop, margin 0.02: detected in {calls.count('regression')} of {SIMS} ({rate:.3f})")
    assert rate >= 0.90


def test_drop_smaller_than_margin_is_never_a_regression() -> None:
    calls = _simulate(drop=0.02, margin=0.05, seed=3)
    print(f"2-point drop, margin 0.05: {calls.count('regression')} regressions, "
          f"{calls.count('significant, within margin')} significant within margin")
    assert calls.count("regression") == 0


def test_aa_continuous_ratio_metric_with_permutation_test() -> None:
    rng = np.random.default_rng(4)
    false_calls = 0
    sims = 100
    for s in range(sims):
        words = rng.integers(5, 25, 300).astype(float)
        rate = rng.beta(2, 10, 300)
        err_a = rng.binomial(words.astype(int), rate).astype(float)
        err_b = rng.binomial(words.astype(int), rate).astype(float)
        pv = PairedValues(err_a, words, err_b, words)
        _, _, diff, low, high, p, test = compare_values(pv, "ratio", binary=False, seed=s)
        assert test == "paired permutation"
        false_calls += verdict(diff, low, high, p, 0.0, higher_is_better=False) == "regression"
    assert false_calls / sims <= 0.05 + 1.645 * math.sqrt(0.05 * 0.95 / sims)
