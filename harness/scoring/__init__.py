"""Scorers: item + output → per-item values; metrics aggregate them."""

from harness.scoring.base import (
    OPERATIONAL_METRICS,
    SCORERS,
    CheckContext,
    MetricSpec,
    Scorer,
    ScorerSettings,
    register_scorer,
)

__all__ = ["OPERATIONAL_METRICS", "SCORERS", "CheckContext", "MetricSpec", "Scorer", "ScorerSettings",
           "register_scorer"]
