"""Scorers: item + output → per-item values; metrics aggregate them."""

from harness.scoring.base import OPERATIONAL_METRICS, SCORERS, MetricSpec, Scorer, register_scorer

__all__ = ["OPERATIONAL_METRICS", "SCORERS", "MetricSpec", "Scorer", "register_scorer"]
