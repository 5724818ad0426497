"""The metrics layer: from a run record to figures. One row per task × adapter × metric with
n and a 95% CI, objectives, gates (thresholds and paired non-inferiority through
`harness.compare`), power notes, stability across repeats, and each scorer's report
sections. Computed from the run record alone; `harness.report` only renders the result."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import SuiteConfig, criterion_holds
from harness.errors import RecordError
from harness.report.sections import Section, Table
from harness.stats import SMALL_N, estimate, paired_ratio_difference, quantile_ci
from harness.store import RESPONSES, SCORES, read_manifest
from harness.values import Paired, PairValues, load_values, paired, recorded, spec_values, value_names

OPERATIONAL = {"error_rate", "scoring_error_rate", "missing_rate", "latency_s", "cost", "tokens_out", "energy_wh",
               "gwp_g", "ttft_s", "tokens_per_s"}


def _metric_arrays(pv: PairValues, spec: dict[str, Any], clusters: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A metric's values (and denominators, for a ratio of two values) on the rows that
    recorded them: the stored columns themselves when every row did, else one copy of each
    (not PairValues.recorded's (value, denominator) stack: 16 bytes a row, twice). A 0/1 value
    stays in its byte a row (widened to float64 it took 8 MB more at a million rows)."""
    names = spec_values(spec)
    held = [pv.stored(name) for name in names]
    values, den = held[0], held[1] if len(held) > 1 else None
    if values is None or (len(held) > 1 and den is None):  # no row recorded it (a cost, with no price)
        return np.empty(0), np.empty(0) if len(held) > 1 else None, None
    kept = recorded(values) if den is None else recorded(values) & recorded(den)
    if not kept.all():  # a mask, not the rows' numbers (8 bytes a row)
        values, den = values[kept], den[kept] if den is not None else None
        clusters = clusters[kept] if clusters is not None else None
    return values, den, clusters


def compute_rows(manifest: dict[str, Any], pairs: dict[tuple[str, str], PairValues]) -> list[dict[str, Any]]:
    rows = []
    repeats = int(manifest.get("repeats", 1))
    seed = int(manifest.get("seed", 0))
    for task, adapter in manifest["pairs"]:
        pv = pairs.get((task, adapter))
        if pv is None:
            pv = PairValues.empty()
        clusters = pv.cluster_ids(repeats > 1)
        for spec in manifest["tasks"][task]["metrics"]:
            if spec["aggregation"] == "corpus":
                from harness.corpus import corpus_estimate

                stats, positions = pv.recorded(spec)
                est = corpus_estimate(stats, spec, clusters[positions] if clusters is not None else None, seed)
            else:
                values, den, cl = _metric_arrays(pv, spec, clusters)
                if spec["name"] in OPERATIONAL and len(values) == 0:
                    continue
                est = estimate(values, spec["aggregation"], den, cl, seed=seed)
            rows.append({
                "task": task, "adapter": adapter, "metric": spec["name"], "value": est.value,
                "ci_low": est.ci_low, "ci_high": est.ci_high, "n": est.n, "clusters": est.clusters,
                "ci_method": est.method, "higher_is_better": spec["higher_is_better"],
                "aggregation": spec["aggregation"], "operational": spec["name"] in OPERATIONAL,
                "small_n": est.n < SMALL_N, "method": spec.get("method") or "",
            })
    return rows


def _row(rows: list[dict[str, Any]], task: str, metric: str, adapter: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["task"] == task and r["metric"] == metric and r["adapter"] == adapter), None)


def _adapters_for(manifest: dict[str, Any], task: str, only: str | None) -> list[str]:
    return [a for t, a in manifest["pairs"] if t == task and (only is None or a == only)]


def _rule_rows(rules: list[Any], manifest: dict[str, Any], rows: list[dict[str, Any]]
               ) -> Iterator[tuple[Any, str, str, str, dict[str, Any] | None]]:
    """(rule, task, metric, adapter, scorecard row) for every adapter a rule applies to."""
    for rule in rules:
        task, metric = rule.metric.split("/", 1)
        for adapter in _adapters_for(manifest, task, rule.adapter):
            yield rule, task, metric, adapter, _row(rows, task, metric, adapter)


def evaluate_objectives(suite: SuiteConfig, manifest: dict[str, Any],
                        rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for obj, _, _, adapter, row in _rule_rows(suite.objectives, manifest, rows):
        value = row["value"] if row else None
        entry: dict[str, Any] = {"metric": obj.metric, "adapter": adapter, "value": value,
                                 "success": obj.success, "stop": obj.stop}
        if value is None:
            entry["status"] = "no data"
        elif obj.stop and criterion_holds(obj.stop, value):
            entry["status"] = "stop"
        elif obj.success and criterion_holds(obj.success, value):
            entry["status"] = "met"
        else:
            entry["status"] = "not met"
        # Conclusive when the whole CI lies on the same side of the success bound; a met or
        # not-met whose CI straddles it is "inconclusive" (more items needed), a stop stays a stop.
        if row and obj.success and row["ci_low"] is not None:
            ends = [criterion_holds(obj.success, row["ci_low"]), criterion_holds(obj.success, row["ci_high"])]
            entry["conclusive"] = ends[0] == ends[1]
            if not entry["conclusive"] and entry["status"] in ("met", "not met"):
                entry["point_status"] = entry["status"]
                entry["status"] = "inconclusive"
        out.append(entry)
    return out


def evaluate_gates(suite: SuiteConfig, manifest: dict[str, Any], rows: list[dict[str, Any]],
                   run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for gate, task, metric, adapter, row in _rule_rows(suite.gates, manifest, rows):
        value = row["value"] if row else None
        entry: dict[str, Any] = {"metric": gate.metric, "adapter": adapter, "value": value}
        if value is None:
            entry.update(passed=False, reason="no data")
        elif gate.max is not None and value > gate.max:
            entry.update(passed=False, reason=f"{value:.4g} > max {gate.max:g}")
        elif gate.min is not None and value < gate.min:
            entry.update(passed=False, reason=f"{value:.4g} < min {gate.min:g}")
        elif gate.non_inferior_to:
            entry.update(_non_inferiority(manifest, run_dir, task, metric, adapter, gate.margin))
        else:
            bound = f"max {gate.max:g}" if gate.max is not None else f"min {gate.min:g}"
            entry.update(passed=True, reason=f"{value:.4g} within {bound}")
        out.append(entry)
    return out


def _non_inferiority(manifest: dict[str, Any], run_dir: Path, task: str, metric: str, adapter: str,
                     margin: float) -> dict[str, Any]:
    """The machinery of `harness compare`, on this metric: non-inferior when the paired 95% CI
    of (candidate − baseline) excludes a loss larger than the margin."""
    from harness.compare import compare_runs

    baseline = Path(manifest["suite"]["config"]["baseline"])
    if not baseline.is_absolute():
        baseline = Path(manifest["suite"]["path"]).parent / baseline
    result = compare_runs(baseline, run_dir, margins={f"{task}/{metric}": margin})
    if not result.comparable:
        return {"passed": False, "reason": "not comparable with the baseline: " + "; ".join(result.problems)}
    m = next((c for c in result.metrics if c.task == task and c.metric == metric and c.adapter == adapter), None)
    if m is None or m.ci_low is None or m.ci_high is None or m.difference is None:
        return {"passed": False, "reason": "no items shared with the baseline"}
    worse_bound = -m.ci_low if m.higher_is_better else m.ci_high
    passed = worse_bound <= margin
    return {"passed": passed, "difference": m.difference, "ci_low": m.ci_low, "ci_high": m.ci_high,
            "n_paired": m.n_paired, "p_value": m.p_value,
            "reason": f"difference {m.difference:+.4g} [{m.ci_low:+.4g}, {m.ci_high:+.4g}] vs margin {margin:g} "
                      f"on {m.n_paired} paired items ({'non-inferior' if passed else 'inferiority not excluded'})"}


def power_notes(suite: SuiteConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each metric with a margin (suite `margins`, or a non-inferiority gate): the smallest
    difference a paired comparison at this run's n would detect (α = 0.05, power 0.8),
    estimated as if the two runs were independent (conservative), and whether the margin is
    below it (too few items to conclude at that margin)."""
    from harness.power import minimum_detectable_difference

    margins = dict(suite.margins)
    for gate in suite.gates:
        if gate.non_inferior_to:
            margins.setdefault(gate.metric, gate.margin)
    out = []
    for key, margin in margins.items():
        task, metric = key.split("/", 1)
        for r in rows:
            if r["task"] != task or r["metric"] != metric or r["value"] is None or r["ci_low"] is None:
                continue
            se = (r["ci_high"] - r["ci_low"]) / (2 * 1.959963984540054)
            if r["aggregation"] == "proportion" and se == 0:
                se = math.sqrt(0.25 / max(r["clusters"], 1))  # no variance seen: worst case p = 0.5
            mdd = minimum_detectable_difference(math.sqrt(2) * se)
            out.append({"metric": key, "adapter": r["adapter"], "margin": margin, "n": r["n"], "mdd": mdd,
                        "underpowered": mdd > margin})
    return out


def stability(manifest: dict[str, Any], pairs: dict[tuple[str, str], PairValues]) -> list[dict[str, Any]]:
    """With repeats > 1: how often the repeats of an item agree, and how much the metric moves
    from one repeat to the next (standard deviation of the per-repeat figure)."""
    repeats = int(manifest.get("repeats", 1))
    if repeats < 2:
        return []
    out = []
    for task, adapter in manifest["pairs"]:
        pv = pairs.get((task, adapter))
        if pv is None:
            continue
        for spec in manifest["tasks"][task]["metrics"]:
            if spec["name"] in OPERATIONAL or spec["aggregation"] == "corpus" or (
                    spec["aggregation"] == "ratio" and not spec.get("denominator")):
                continue  # a corpus figure has no per-item value to agree on
            values, rows = pv.series(spec["value"])
            if len(values) == 0:
                continue
            by_item: dict[str, list[float]] = defaultdict(list)
            per_repeat_num: dict[int, float] = defaultdict(float)
            per_repeat_den: dict[int, float] = defaultdict(float)
            dens: dict[int, float] = {}
            if spec["aggregation"] == "ratio":
                den_values, den_rows = pv.series(spec["denominator"])
                dens = dict(zip(den_rows.tolist(), den_values.tolist(), strict=True))
            for v, r in zip(values, rows, strict=True):
                item, rep = pv.keys[r]
                by_item[item].append(float(v))
                per_repeat_num[rep] += float(v)
                per_repeat_den[rep] += float(dens.get(r, 1.0)) if dens else 1.0
            complete = [vs for vs in by_item.values() if len(vs) == repeats]
            agree = sum(1 for vs in complete if max(vs) == min(vs))
            figures = [per_repeat_num[k] / per_repeat_den[k] for k in sorted(per_repeat_num) if per_repeat_den[k]]
            out.append({"task": task, "adapter": adapter, "metric": spec["name"], "repeats": repeats,
                        "items": len(complete), "agreement": agree / len(complete) if complete else None,
                        "flip_rate": 1 - agree / len(complete) if complete else None,
                        "run_to_run_sd": float(np.std(figures, ddof=1)) if len(figures) > 1 else None})
    return out


def summarizing_scorers(manifest: dict[str, Any]) -> frozenset[str]:
    """The run's scorers that are installed and contribute report sections (`summarize`)."""
    from harness.scoring.base import SCORERS, Scorer

    def overrides(cls: type[Scorer]) -> bool:
        return any("summarize" in vars(k) for k in cls.__mro__ if k is not Scorer and issubclass(k, Scorer))

    return frozenset(name for task in manifest["tasks"].values() for name in task.get("scorers", {})
                     if name in SCORERS and overrides(SCORERS.get(name)))


def scorer_sections(manifest: dict[str, Any], values: dict[tuple[str, str], PairValues]) -> list[dict[str, Any]]:
    """Each scorer's report sections (its `summarize` hook) for every task × adapter, from the
    details it recorded, given in item order: the record's line order depends on completion
    order (concurrency, resume, merged shards), and ties in the tables must not."""
    from harness.scoring.base import SCORERS

    out: list[dict[str, Any]] = []
    for task, adapter in manifest["pairs"]:
        pv = values.get((task, adapter))
        for scorer in manifest["tasks"][task].get("scorers", {}):
            entries = pv.details.get(scorer) if pv is not None else None
            if not entries:
                continue
            entries.sort(key=lambda e: (e[0], e[1]))
            details = [(item if not repeat else f"{item}#{repeat}", d) for item, repeat, d in entries]
            out.extend(section.to_dict() for section in SCORERS.get(scorer).summarize(task, adapter, details))
    return out


def describe_normalizer(spec: dict[str, Any]) -> str:
    """How reference and output were normalized, in words, for the scorecard: WER figures
    are only comparable under the same normalization."""
    preset = spec.get("preset", "clinical")
    parts = [f"preset {preset}" + (" (OpenAI Whisper's normalizer)" if preset == "whisper" else "")]
    if preset == "clinical":
        off = [k for k in ("lowercase", "punctuation", "numbers", "units") if spec.get(k) is False]
        if off:
            parts.append("without " + ", ".join(off))
    for key in ("contractions", "spelling"):
        if spec.get(key):
            parts.append(f"{key} {spec[key]}")
    if spec.get("fillers") is not None:
        parts.append("fillers removed: " + (", ".join(spec["fillers"]) or "none"))
    if spec.get("equivalences"):
        parts.append("equivalences: " + ", ".join(f"{a} = {b}" for a, b in spec["equivalences"]))
    return "; ".join(parts)


def paired_difference(spec: dict[str, Any], p: Paired, seed: int) -> tuple[float, float, float, float, float]:
    """(figure of a, figure of b, b − a, ci_low, ci_high) of one metric on the items two
    systems both scored (`values.paired`): paired bootstrap, of summed statistics for a corpus
    metric."""
    if spec["aggregation"] == "corpus":
        from harness.corpus import paired_corpus_difference

        value_a, value_b, diff, low, high, _ = paired_corpus_difference(p.a, p.b, spec, seed=seed, permutations=0)
        return value_a, value_b, diff, low, high
    num_a, den_a, num_b, den_b = p.a[:, 0], p.a[:, 1], p.b[:, 0], p.b[:, 1]
    diff, low, high = paired_ratio_difference(num_a, den_a, num_b, den_b, seed=seed)
    if math.isnan(diff):  # nothing to divide by on these items
        return math.nan, math.nan, diff, low, high
    return float(num_a.sum() / den_a.sum()), float(num_b.sum() / den_b.sum()), diff, low, high


def baseline_sections(manifest: dict[str, Any], pairs: dict[tuple[str, str], PairValues]) -> list[dict[str, Any]]:
    """HAS 3.3: every system against current practice (the adapter declared
    `current_practice: true`) on the items both answered: the paired difference of each
    quality metric with its bootstrap 95% CI, and whether it is clearly better or worse."""
    baselines = [name for name, a in manifest["adapters"].items()
                 if (a.get("declarations") or {}).get("current_practice")]
    seed = int(manifest.get("seed", 0))
    out = []
    for task, spec_list in ((t, info["metrics"]) for t, info in manifest["tasks"].items()):
        adapters = [a for t, a in manifest["pairs"] if t == task]
        base = next((a for a in adapters if a in baselines), None)
        if base is None or (task, base) not in pairs:
            continue
        for adapter in adapters:
            if adapter == base or (task, adapter) not in pairs:
                continue
            rows: list[list[Any]] = []
            data: dict[str, Any] = {"baseline": base, "metrics": {}}
            for spec in spec_list:
                if spec["name"] in OPERATIONAL:
                    continue
                both = paired(pairs[(task, base)], pairs[(task, adapter)], spec)
                if not len(both):
                    continue
                base_value, value, diff, low, high = paired_difference(spec, both, seed)
                if math.isnan(diff):
                    continue
                better = spec["higher_is_better"]
                verdict = ("no clear difference" if math.isnan(low) or low <= 0 <= high
                           else "better" if (low > 0) == better else "worse")
                rows.append([spec["name"], f"{base_value:.4g}", f"{value:.4g}", f"{diff:+.4g}",
                             f"[{low:+.4g}, {high:+.4g}]", len(both), verdict])
                data["metrics"][spec["name"]] = {"baseline": base_value, "value": value, "difference": diff,
                                                 "ci_low": low, "ci_high": high, "n": len(both),
                                                 "verdict": verdict}
            if rows:
                out.append(Section(
                    f"Against current practice ({base})", task, adapter, "harness",
                    group="Against current practice (HAS 3.3)",
                    paragraphs=[f"{adapter} minus {base}, on the items both answered (paired bootstrap)."],
                    tables=[Table(["metric", base, adapter, "difference", "95% CI", "n", ""], rows,
                                  [r[-1] == "worse" for r in rows])], data=data).to_dict())
    return out


QUANTILES = (50, 95, 99)


def _percentiles(values: np.ndarray, label: str, rows: list[list[Any]], data: dict[str, Any], key: str = "") -> None:
    """p50/p95/p99 rows with order-statistic CIs, and their figures under data[f"{key}p{q}"].
    Sorts `values` in place (a copy of a million latencies was this section's peak)."""
    values.sort()  # once for the three
    for q in QUANTILES if len(values) else ():
        value, low, high = quantile_ci(values, q / 100, is_sorted=True)
        ci = "[" + ", ".join("—" if math.isnan(x) else f"{x:.3f}" for x in (low, high)) + "]"
        rows.append([f"{label}p{q}", f"{value:.3f}", ci, len(values)])
        data[f"{key}p{q}"] = {"value": value, "ci_low": None if math.isnan(low) else low,
                              "ci_high": None if math.isnan(high) else high}


def latency_sections(manifest: dict[str, Any], pairs: dict[tuple[str, str], PairValues]) -> list[dict[str, Any]]:
    """HAS 2.7 (Estimer): latency percentiles with distribution-free CIs (order statistics; an
    end shown "—" when n is too small to bound it), cost per 1,000 items, per task × adapter;
    recomputed from the record like every figure."""
    out = []
    for task, adapter in manifest["pairs"]:
        pv = pairs.get((task, adapter))
        latency = pv.values_of("latency_s") if pv is not None else np.empty(0)
        if len(latency) == 0:
            continue
        rows: list[list[Any]] = []
        data: dict[str, Any] = {"n": len(latency)}
        _percentiles(latency, "", rows, data)
        _percentiles(pv.values_of("ttft_s") if pv is not None else np.empty(0), "time to first token ", rows, data,
                     key="ttft_")
        cost = pv.values_of("cost") if pv is not None else np.empty(0)
        paragraphs = []
        speed = pv.values_of("tokens_per_s") if pv is not None else np.empty(0)
        if len(speed):
            data["tokens_per_s"] = float(speed.mean())
            paragraphs.append(f"Throughput: {speed.mean():.4g} output tokens per second per response "
                              f"(mean of {len(speed)}).")
        if len(cost):
            per_thousand = float(cost.mean()) * 1000
            data["cost_per_1000_items"] = per_thousand
            paragraphs.append(f"Declared cost: {per_thousand:.4g} per 1,000 items ({len(cost)} items priced).")
        if len(latency) < SMALL_N:
            paragraphs.append(f"Only {len(latency)} responses: the upper percentiles rest on a handful of values.")
        out.append(Section("Latency and cost", task, adapter, "harness", group="Estimer (HAS 2.7)",
                           paragraphs=paragraphs,
                           tables=[Table(["percentile", "seconds", "95% CI", "n"], rows)], data=data).to_dict())
    return out


def energy_sections(manifest: dict[str, Any], pairs: dict[tuple[str, str], PairValues]) -> list[dict[str, Any]]:
    """HAS 2.7: energy and emissions per task × adapter, total and per item (bootstrap CI),
    with the method and its version beside the figures (EcoLogits' estimates moved by a
    factor of ~57 between versions for one model class)."""
    seed = int(manifest.get("seed", 0))
    out = []
    measured: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for m in manifest.get("energy_measured") or []:
        measured[(m["task"], m["adapter"])].append(m)
    for task, adapter in manifest["pairs"]:
        pv = pairs.get((task, adapter))
        method = manifest["adapters"].get(adapter, {}).get("energy_method")
        if pv is None or method is None:
            continue
        if (task, adapter) in measured or method.startswith("measured"):
            out.append(_measured_section(task, adapter, method, measured.get((task, adapter), [])))
            continue
        energy, gwp = pv.values_of("energy_wh"), pv.values_of("gwp_g")
        if len(energy) == 0:
            out.append(Section("Energy and emissions", task, adapter, "harness", group="Estimer (HAS 2.7)",
                               paragraphs=[f"Method: {method}. No response could be estimated (no output token "
                                           "count, or a model this method does not know)."],
                               data={"method": method, "n": 0}).to_dict())
            continue
        per_item = estimate(energy, "mean", seed=seed)
        per_item_g = estimate(gwp, "mean", seed=seed)
        data = {"method": method, "n": len(energy), "total_wh": float(energy.sum()), "total_g_co2": float(gwp.sum()),
                "wh_per_item": per_item.value, "wh_ci": [per_item.ci_low, per_item.ci_high],
                "wh_per_1000_items": 1000 * float(energy.mean()), "g_co2_per_1000_items": 1000 * float(gwp.mean())}

        def ci(e: Any) -> str:
            return "—" if e.ci_low is None else f"[{e.ci_low:.3g}, {e.ci_high:.3g}]"

        rows = [["energy, Wh", f"{energy.sum():.4g}", f"{per_item.value:.3g}", ci(per_item),
                 f"{1000 * energy.mean():.4g}", len(energy)],
                ["emissions, gCO2eq", f"{gwp.sum():.4g}", f"{per_item_g.value:.3g}", ci(per_item_g),
                 f"{1000 * gwp.mean():.4g}", len(gwp)]]
        out.append(Section("Energy and emissions", task, adapter, "harness", group="Estimer (HAS 2.7)",
                           paragraphs=[f"Method: {method}. Figures from different methods or versions are not "
                                       "comparable."],
                           tables=[Table(["", "this run", "per item", "95% CI", "per 1,000 items", "n"], rows)],
                           data=data).to_dict())
    return out


def _measured_section(task: str, adapter: str, method: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Energy measured by CodeCarbon (one measurement per run or resumed part): totals and
    per item, without a CI, since there is one measurement and no per-item value."""
    items = sum(p["items"] for p in parts)
    wh, g = sum(p["wh"] for p in parts), sum(p["g_co2"] for p in parts)
    data = {"method": method, "n": items, "total_wh": wh, "total_g_co2": g, "measurements": len(parts),
            "share_of_run": [p["share"] for p in parts]}
    if not items:
        return Section("Energy and emissions", task, adapter, "harness", group="Estimer (HAS 2.7)",
                       paragraphs=[f"Method: {method}. Nothing was computed in this run (every answer came from "
                                   "the cache or an earlier part): no measurement."], data=data).to_dict()
    data.update(wh_per_item=wh / items, wh_per_1000_items=1000 * wh / items, g_co2_per_1000_items=1000 * g / items)
    rows = [["energy, Wh", f"{wh:.4g}", f"{wh / items:.3g}", "— (one measurement)", f"{1000 * wh / items:.4g}", items],
            ["emissions, gCO2eq", f"{g:.4g}", f"{g / items:.3g}", "— (one measurement)", f"{1000 * g / items:.4g}",
             items]]
    return Section("Energy and emissions", task, adapter, "harness", group="Estimer (HAS 2.7)",
                   paragraphs=[f"Method: {method}. Figures from different methods or versions are not comparable."],
                   tables=[Table(["", "this run", "per item", "95% CI", "per 1,000 items", "n"], rows)],
                   data=data).to_dict()


def confidentiality_sections(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """HAS 2.4 on every report: data sent above a declared clearance (with who decided and
    why), and what the pre-flight guard blocked or pseudonymised."""
    out = []
    for o in manifest.get("clearance_overrides") or []:
        out.append(Section(
            "Clearance override", o["task"], o["adapter"], "harness", group="Confidentiality (HAS 2.4)",
            paragraphs=[f"'{o['data_class']}' data was sent to a system that declares clearance for "
                        f"'{o['declared_clearance']}' only, under an override up to '{o['up_to']}' approved by "
                        f"{o['approved_by']}: {o['justification']}"],
            data=o).to_dict())
    for adapter, g in (manifest.get("pii_guard") or {}).items():
        found = ", ".join(f"{k} {v}" for k, v in g["by_type"].items()) or "none"
        out.append(Section(
            "Pre-flight PII guard", "(all tasks)", adapter, "harness", group="Confidentiality (HAS 2.4)",
            paragraphs=[f"Policy {g['policy']}: {g['checked']} requests checked, {g['blocked']} blocked (never "
                        f"sent), {g['pseudonymised']} pseudonymised; identifiers found: {found}."],
            data=g).to_dict())
    return out


def significant_best(manifest: dict[str, Any], pairs: dict[tuple[str, str], PairValues],
                     rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each task × quality metric with several systems: the best system (by the
    scorecard's figures), named only when its paired difference with every other system (on
    the items both answered, bootstrap 95% CI) excludes zero; otherwise none is marked.
    Reports mark it, and nothing else."""
    seed = int(manifest.get("seed", 0))
    figures: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if not r["operational"] and r["value"] is not None and (r["task"], r["adapter"]) in pairs:
            figures[(r["task"], r["metric"])][r["adapter"]] = r["value"]
    out = []
    for task, info in manifest["tasks"].items():
        for spec in info["metrics"]:
            by_adapter = figures.get((task, spec["name"]), {})
            if len(by_adapter) < 2:
                continue
            best = (max if spec["higher_is_better"] else min)(by_adapter, key=by_adapter.__getitem__)
            clear = True
            for other in by_adapter:
                if other == best:
                    continue
                both = paired(pairs[(task, other)], pairs[(task, best)], spec)
                low, high = (paired_difference(spec, both, seed)[3:] if len(both) >= 2 else (math.nan, math.nan))
                if math.isnan(low) or low <= 0 <= high:
                    clear = False
                    break
            out.append({"task": task, "metric": spec["name"], "best": best if clear else None,
                        "value": by_adapter[best]})
    return out


def build_scorecard(run_dir: str | Path) -> dict[str, Any]:
    """Recompute the whole scorecard from `run_dir`'s manifest and scores."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    answers = run_dir / RESPONSES
    if manifest.get("status") == "complete" and not (run_dir / SCORES).exists() and answers.exists() \
            and answers.stat().st_size:
        # else a scorecard without a figure, and exit 0: a run folder copied without its scores (an
        # interrupted run may have answers not scored yet)
        raise RecordError(f"{run_dir}: {RESPONSES} holds answers but {SCORES} is missing (a damaged or partly "
                          "copied run record: copy the whole folder)")
    suite = SuiteConfig.model_validate(manifest["suite"]["config"])
    values = load_values(run_dir, value_names(manifest), summarizing_scorers(manifest))
    rows = compute_rows(manifest, values)
    gates = evaluate_gates(suite, manifest, rows, run_dir)
    return {
        "run_id": manifest["run_id"], "suite": manifest["suite"]["name"],
        "description": manifest["suite"]["description"], "status": manifest["status"],
        "started_at": manifest["started_at"], "ended_at": manifest["ended_at"],
        "harness_version": manifest["harness_version"], "git_revision": manifest.get("git_revision"),
        "tasks": {name: {"kind": t["config"]["kind"], "language": t["config"]["language"],
                         "data_class": t["config"]["data_class"], "items": t["items"],
                         "normalization": describe_normalizer(t["config"].get("normalizer") or {})}
                  for name, t in manifest["tasks"].items()},
        "adapters": {name: {"kind": a["kind"], "declarations": a["declarations"],
                            "provider_models": manifest.get("provider_models", {}).get(name, [])}
                     for name, a in manifest["adapters"].items()},
        "rows": rows,
        # how each figure is computed, with versions: sacrebleu's signature, ROUGE-L's tokens
        "methods": [{"task": t, "metric": spec["name"], "method": spec["method"]}
                    for t, info in manifest["tasks"].items() for spec in info["metrics"] if spec.get("method")],
        "responses": [{"task": t, "adapter": a, "responses": len(values[(t, a)]) if (t, a) in values else 0,
                       "from_cache": values[(t, a)].cached if (t, a) in values else 0}
                      for t, a in manifest["pairs"]],
        "objectives": evaluate_objectives(suite, manifest, rows),
        "gates": gates,
        "gates_failed": sum(1 for g in gates if not g["passed"]),
        "power": power_notes(suite, rows),
        "best": significant_best(manifest, values, rows),
        "stability": stability(manifest, values),
        "sections": confidentiality_sections(manifest) + scorer_sections(manifest, values)
        + baseline_sections(manifest, values) + latency_sections(manifest, values)
        + energy_sections(manifest, values),
    }
