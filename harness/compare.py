"""Paired comparison of two runs (baseline A, candidate B): the basis of `harness compare`,
of suite gates `non_inferior_to: baseline`, and of CI jobs that must fail only on a real
regression.

For each task × adapter × metric, on the items both runs share (matched by item id and
repeat):
- the difference B − A with a 95% CI: paired bootstrap resampling clusters (or items), the
  delta method from 1,000 units on;
- a p-value: exact McNemar for 0/1 values without clusters; otherwise a paired sign-flip
  permutation test over clusters (4,000 permutations), normal approximation from 1,000 units;
- Holm's correction across every metric compared;
- a verdict: **regression** when the adjusted p < α AND the whole CI lies beyond the margin on
  the worse side (significant and material); **improvement** likewise on the better side.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.stats import (
    DELTA_METHOD_UNITS,
    Z95,
    delta_se,
    normal_p,
    paired_ratio_difference,
    ratio_influence,
    unit_sums,
)
from harness.store import read_manifest
from harness.values import PairValues, load_values, paired, shared_rows, spec_values

ALPHA = 0.05
PERMUTATIONS = 4000
OPERATIONAL_COMPARED = {"error_rate", "missing_rate"}
#: not properties of the system under test
NOT_COMPARED = {"latency_s", "cost", "tokens_out", "scoring_error_rate"}


@dataclass
class PairedValues:
    """Per-unit numerators and denominators of a metric in both runs, aligned."""

    num_a: np.ndarray
    den_a: np.ndarray
    num_b: np.ndarray
    den_b: np.ndarray
    clusters: np.ndarray | None = None


@dataclass
class MetricComparison:
    task: str
    adapter: str
    metric: str
    aggregation: str
    higher_is_better: bool
    n_paired: int
    baseline: float | None
    candidate: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str
    margin: float
    p_adjusted: float | None = None
    verdict: str = "no difference"
    flips: dict[str, list[str]] = field(default_factory=dict)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes."""
    worse = int(np.sum((a == 1) & (b == 0)))
    better = int(np.sum((a == 0) & (b == 1)))
    n = worse + better
    if n == 0:
        return 1.0
    from scipy.special import bdtr  # the binomial CDF, without importing scipy.stats

    return float(min(1.0, 2 * bdtr(min(worse, better), n, 0.5)))


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    total = den.sum()
    return float(num.sum() / total) if total else math.nan


def permutation_p(pv: PairedValues, seed: int = 0, permutations: int = PERMUTATIONS) -> tuple[float, str]:
    """Paired sign-flip permutation test of ratio(B) − ratio(A): under the null, A and B
    are exchangeable within each unit (cluster or item)."""
    na, da = unit_sums(pv.num_a, pv.den_a, pv.clusters)
    nb, db = unit_sums(pv.num_b, pv.den_b, pv.clusters)
    m = len(na)
    observed = _ratio(nb, db) - _ratio(na, da)
    if m >= DELTA_METHOD_UNITS:
        se = _delta_se(na, da, nb, db)
        if se == 0:
            return (1.0 if observed == 0 else 0.0), "paired z (delta method)"
        return normal_p(observed / se), "paired z (delta method)"
    rng = np.random.default_rng(seed)
    count = 0
    chunk = max(1, 2_000_000 // max(m, 1))
    done = 0
    while done < permutations:
        k = min(chunk, permutations - done)
        swap = rng.integers(0, 2, size=(k, m)).astype(bool)
        sa_num = np.where(swap, nb, na).sum(1)
        sa_den = np.where(swap, db, da).sum(1)
        sb_num = np.where(swap, na, nb).sum(1)
        sb_den = np.where(swap, da, db).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs = sb_num / sb_den - sa_num / sa_den
        count += int(np.sum(np.abs(diffs) >= abs(observed) - 1e-12))
        done += k
    return (count + 1) / (permutations + 1), "paired permutation"


def _delta_se(na: np.ndarray, da: np.ndarray, nb: np.ndarray, db: np.ndarray) -> float:
    """Delta-method standard error of ratio(B) − ratio(A) over paired units."""
    return delta_se(ratio_influence(nb, db) - ratio_influence(na, da))


def paired_difference_ci(pv: PairedValues, seed: int = 0) -> tuple[float, float]:
    na, da = unit_sums(pv.num_a, pv.den_a, pv.clusters)
    nb, db = unit_sums(pv.num_b, pv.den_b, pv.clusters)
    diff = _ratio(nb, db) - _ratio(na, da)
    if len(na) >= DELTA_METHOD_UNITS:
        se = _delta_se(na, da, nb, db)
        return diff - Z95 * se, diff + Z95 * se
    _, low, high = paired_ratio_difference(na, da, nb, db, seed=seed)
    return low, high


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(diff: float, low: float, high: float, p_adj: float, margin: float, higher_is_better: bool,
            alpha: float = ALPHA) -> str:
    """Regression: significant and the whole CI worse than the margin; improvement likewise."""
    if p_adj >= alpha:
        return "no significant difference"
    worse_low, worse_high = (-high, -low) if higher_is_better else (low, high)
    if worse_low > margin:
        return "regression"
    if worse_high < -margin:
        return "improvement"
    return "significant, within margin"


def compare_values(pv: PairedValues, aggregation: str, *, binary: bool, seed: int = 0) -> tuple[
        float, float, float, float, float, float, str]:
    """(baseline, candidate, difference, ci_low, ci_high, p, test) for one metric."""
    a, b = _ratio(pv.num_a, pv.den_a), _ratio(pv.num_b, pv.den_b)
    low, high = paired_difference_ci(pv, seed)
    if binary and pv.clusters is None:
        p, test = mcnemar_exact(pv.num_a, pv.num_b), "exact McNemar"
    else:
        p, test = permutation_p(pv, seed)
    return a, b, b - a, low, high, p, test


@dataclass
class Comparison:
    baseline: str
    candidate: str
    comparable: bool
    problems: list[str]
    warnings: list[str]
    metrics: list[MetricComparison]

    @property
    def regressions(self) -> list[MetricComparison]:
        return [m for m in self.metrics if m.verdict == "regression"]

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "candidate": self.candidate, "comparable": self.comparable,
                "problems": self.problems, "warnings": self.warnings,
                "regressions": len(self.regressions), "metrics": [asdict(m) for m in self.metrics]}


def _adapter_pairs(ma: dict[str, Any], mb: dict[str, Any], warnings: list[str]) -> list[tuple[str, str, str]]:
    """(task, adapter in A, adapter in B): same names; or, for a task with one adapter on
    each side under different names, those two (a renamed profile)."""
    pairs_a = {tuple(p) for p in ma["pairs"]}
    pairs_b = {tuple(p) for p in mb["pairs"]}
    out = [(t, a, a) for t, a in sorted(pairs_a & pairs_b)]
    for task in sorted({t for t, _ in pairs_a} & {t for t, _ in pairs_b}):
        if any(t == task for t, _, _ in out):
            continue
        only_a = [a for t, a in pairs_a if t == task]
        only_b = [b for t, b in pairs_b if t == task]
        if len(only_a) == 1 and len(only_b) == 1:
            warnings.append(f"{task}: comparing adapter '{only_a[0]}' (baseline) with '{only_b[0]}' (candidate)")
            out.append((task, only_a[0], only_b[0]))
    return out


def _check_comparable(ma: dict[str, Any], mb: dict[str, Any], task: str, problems: list[str]) -> None:
    ta, tb = ma["tasks"][task], mb["tasks"][task]
    ca, cb = dict(ta["config"]), dict(tb["config"])
    for config in (ca, cb):
        # where the data lies and how it is described may differ; its content is checked below
        config.pop("description", None)
        config["dataset"] = {k: v for k, v in config["dataset"].items() if k != "path"}
    if ca != cb:
        keys = sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))
        problems.append(f"{task}: task definitions differ ({', '.join(keys)})")
    if ta.get("scorers") != tb.get("scorers"):
        problems.append(f"{task}: scorer versions differ ({ta.get('scorers')} vs {tb.get('scorers')})")
    if ta.get("dataset_digest") and tb.get("dataset_digest") and ta["dataset_digest"] != tb["dataset_digest"]:
        problems.append(f"{task}: dataset files differ (digest {ta['dataset_digest'][:12]} vs "
                        f"{tb['dataset_digest'][:12]})")
    if ta.get("audio_digest") and tb.get("audio_digest") and ta["audio_digest"] != tb["audio_digest"]:
        problems.append(f"{task}: audio files differ")


def compare_runs(run_a: str | Path, run_b: str | Path, *, margin: float | None = None,
                 margins: dict[str, float] | None = None, unpaired: bool = False,
                 alpha: float = ALPHA, seed: int = 0) -> Comparison:
    """Compare candidate `run_b` with baseline `run_a`. Margins: `margins["task/metric"]`,
    else the candidate suite's `margins`, else `margin`, else 0."""
    run_a, run_b = Path(run_a), Path(run_b)
    ma, mb = read_manifest(run_a), read_manifest(run_b)
    problems: list[str] = []
    warnings: list[str] = []
    suite_margins = dict(mb["suite"]["config"].get("margins") or {})
    suite_margins.update(margins or {})
    pairs = _adapter_pairs(ma, mb, warnings)
    if not pairs:
        problems.append("no task × adapter in common")
    for task in sorted({t for t, _, _ in pairs}):
        _check_comparable(ma, mb, task, problems)
    if problems:
        return Comparison(str(run_a), str(run_b), False, problems, warnings, [])
    specs = {task: [s for s in mb["tasks"][task]["metrics"] if s["name"] not in NOT_COMPARED]
             for task in {t for t, _, _ in pairs}}
    names = sorted({n for task_specs in specs.values() for s in task_specs for n in spec_values(s)})
    va, vb = load_values(run_a, names), load_values(run_b, names)
    results: list[MetricComparison] = []
    for task, adapter_a, adapter_b in pairs:
        pa, pb = va.get((task, adapter_a)), vb.get((task, adapter_b))
        if pa is None or pb is None:
            continue
        shared = shared_rows(pa, pb)
        n_shared = len(shared[0])
        if not n_shared == len(pa) == len(pb):
            warnings.append(f"{task} × {adapter_b}: item sets differ; comparing the {n_shared} shared "
                            f"(baseline {len(pa)}, candidate {len(pb)})")
        if n_shared < 2 and not unpaired:
            problems.append(f"{task} × {adapter_b}: fewer than 2 shared items")
            continue
        for spec in specs[task]:
            res = _compare_metric(task, adapter_b, spec, pa, pb, shared,
                                  suite_margins.get(f"{task}/{spec['name']}", margin), unpaired, seed)
            if res is not None:
                results.append(res)
    if problems and not results:
        return Comparison(str(run_a), str(run_b), False, problems, warnings, [])
    adjusted = holm([r.p_value if r.p_value is not None else 1.0 for r in results])
    for r, p_adj in zip(results, adjusted, strict=True):
        r.p_adjusted = p_adj
        if r.difference is not None and r.ci_low is not None and r.ci_high is not None:
            r.verdict = verdict(r.difference, r.ci_low, r.ci_high, p_adj, r.margin, r.higher_is_better, alpha)
    return Comparison(str(run_a), str(run_b), True, problems, warnings, results)


def _unpaired_z(base: dict[str, Any], baseline: float, candidate: float, se: float, test: str) -> MetricComparison:
    """Two independent estimates whose difference has standard error `se`: a z test."""
    diff = candidate - baseline
    p = normal_p(diff / se) if se > 0 else (1.0 if diff == 0 else 0.0)
    return MetricComparison(**base, n_paired=0, baseline=baseline, candidate=candidate, difference=diff,
                            ci_low=diff - Z95 * se, ci_high=diff + Z95 * se, p_value=p, test=test)


def _compare_corpus(spec: dict[str, Any], pa: PairValues, pb: PairValues, shared: tuple[np.ndarray, np.ndarray],
                    base: dict[str, Any], unpaired: bool, seed: int) -> MetricComparison | None:
    """A corpus metric (BLEU, chrF): the paired bootstrap and approximate randomization of
    harness.corpus on the shared items; unpaired runs get two independent bootstraps."""
    from harness.corpus import corpus_estimate, paired_corpus_difference

    if unpaired:
        sa, sb = pa.recorded(spec)[0], pb.recorded(spec)[0]
        if len(sa) < 2 or len(sb) < 2:
            return None
        ea = corpus_estimate(sa, spec, seed=seed)
        eb = corpus_estimate(sb, spec, seed=seed)
        if None in (ea.value, eb.value, ea.ci_low, ea.ci_high, eb.ci_low, eb.ci_high):
            return None
        assert ea.value is not None and eb.value is not None
        se = math.sqrt(((ea.ci_high - ea.ci_low) / (2 * Z95)) ** 2  # type: ignore[operator]
                       + ((eb.ci_high - eb.ci_low) / (2 * Z95)) ** 2)  # type: ignore[operator]
        return _unpaired_z(base, ea.value, eb.value, se, "unpaired z (bootstrap SEs)")
    both = paired(pa, pb, spec, shared)
    if len(both) < 2:
        return None
    a, b, diff, low, high, p = paired_corpus_difference(both.a, both.b, spec, pb.cluster_ids(rows=both.rows_b), seed)
    return MetricComparison(**base, n_paired=len(both), baseline=a, candidate=b, difference=diff,
                            ci_low=None if math.isnan(low) else low, ci_high=None if math.isnan(high) else high,
                            p_value=None if math.isnan(p) else p, test="paired approximate randomization")


def _compare_metric(task: str, adapter: str, spec: dict[str, Any], pa: PairValues, pb: PairValues,
                    shared: tuple[np.ndarray, np.ndarray], margin: float | None, unpaired: bool,
                    seed: int) -> MetricComparison | None:
    binary = spec["aggregation"] == "proportion"
    base = dict(task=task, adapter=adapter, metric=spec["name"], aggregation=spec["aggregation"],
                higher_is_better=spec["higher_is_better"], margin=margin or 0.0)
    if spec["aggregation"] == "corpus":
        return _compare_corpus(spec, pa, pb, shared, base, unpaired, seed)
    if unpaired:
        a, b = pa.recorded(spec)[0], pb.recorded(spec)[0]
        if len(a) < 2 or len(b) < 2:
            return None
        se = math.sqrt(delta_se(ratio_influence(a[:, 0], a[:, 1])) ** 2
                       + delta_se(ratio_influence(b[:, 0], b[:, 1])) ** 2)
        return _unpaired_z(base, _ratio(a[:, 0], a[:, 1]), _ratio(b[:, 0], b[:, 1]), se, "unpaired z")
    both = paired(pa, pb, spec, shared)
    if len(both) < 2:
        return None
    arr_a, arr_b = both.a, both.b
    if not arr_a[:, 1].sum() or not arr_b[:, 1].sum():
        return None  # a ratio with nothing to divide by on the shared items (e.g. no citation): no figure
    pv = PairedValues(arr_a[:, 0], arr_a[:, 1], arr_b[:, 0], arr_b[:, 1], pb.cluster_ids(rows=both.rows_b))
    va, vb, diff, low, high, p, test = compare_values(pv, spec["aggregation"], binary=binary, seed=seed)
    result = MetricComparison(**base, n_paired=len(both), baseline=va, candidate=vb, difference=diff,
                              ci_low=low, ci_high=high, p_value=p, test=test)
    if binary:
        good = 1 if spec["higher_is_better"] else 0
        good_a, good_b = arr_a[:, 0] == good, arr_b[:, 0] == good
        result.flips = {"passed_to_failed": [pb.label(r) for r in both.rows_b[good_a & ~good_b]],
                        "failed_to_passed": [pb.label(r) for r in both.rows_b[good_b & ~good_a]]}
    return result
