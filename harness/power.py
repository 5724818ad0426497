"""How many items a comparison needs, and what difference a run can detect.

Paired binary outcomes (accuracy of two versions on the same items): Connor's (1987)
sample size for McNemar's test, n = ((z_α/2 √ψ + z_β √(ψ − δ²)) / δ)², with ψ the
probability that the two versions disagree on an item. Without an estimate of ψ, the
versions are taken as independent given the rates, which overestimates ψ for similar
systems and so errs on the side of more items. Continuous paired outcomes:
n = ((z_α/2 + z_β) σ_d / δ)².
"""

from __future__ import annotations

import math
from statistics import NormalDist

# the standard library's normal quantile: importing scipy.stats for two quantiles cost every
# run about a second (the power notes are on every scorecard)
_NORMAL = NormalDist()


def _z(alpha: float, power: float) -> tuple[float, float]:
    return _NORMAL.inv_cdf(1 - alpha / 2), _NORMAL.inv_cdf(power)


def items_for_proportion_drop(baseline: float, drop: float, *, alpha: float = 0.05, power: float = 0.8,
                              discordance: float | None = None) -> int:
    """Items needed to detect a drop of `drop` from a rate of `baseline` (paired)."""
    if not 0 < drop < 1 or not 0 <= baseline <= 1 or baseline - drop < 0:
        raise ValueError("need 0 < drop <= baseline <= 1")
    p1, p2 = baseline, baseline - drop
    psi = discordance if discordance is not None else p1 * (1 - p2) + p2 * (1 - p1)
    if psi < drop:
        raise ValueError(f"discordance {psi:g} cannot be below the drop {drop:g}")
    za, zb = _z(alpha, power)
    return math.ceil(((za * math.sqrt(psi) + zb * math.sqrt(max(psi - drop**2, 0.0))) / drop) ** 2)


def items_for_mean_drop(sd_difference: float, drop: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    za, zb = _z(alpha, power)
    return math.ceil(((za + zb) * sd_difference / drop) ** 2)


def minimum_detectable_difference(se_difference: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    za, zb = _z(alpha, power)
    return (za + zb) * se_difference
