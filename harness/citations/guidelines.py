"""A registry of guidelines and their status: current, updated or withdrawn, with dates and
successor. A cited guideline that was withdrawn or updated makes the citation outdated."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from rapidfuzz import fuzz

from harness.citations.catalogue import norm_title
from harness.errors import ConfigError, Problem
from harness.yamlio import line_of, load_yaml


class Guideline(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    issuer: str
    date: dt.date
    status: str = "current"          # current | updated | withdrawn
    status_date: dt.date | None = None
    successor: str | None = None
    url: str | None = None
    doi: str | None = None
    note: str | None = None


def registry_problems(path: Path) -> list[Problem]:
    """What is wrong with a registry file, each with its line: found by `harness validate`,
    where a bad date used to crash the run that built the scorer."""
    try:
        data, lines = load_yaml(path, "guideline registry")
    except ConfigError as exc:
        return exc.problems
    entries = data.get("guidelines") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [Problem(str(path), "guidelines", "no list of guidelines", 1,
                        expected="guidelines: [{id, title, issuer, date, status, ...}]")]
    problems = []
    for i, entry in enumerate(entries):
        try:
            Guideline.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors()[:3]:
                loc = ("guidelines", i, *err["loc"])
                problems.append(Problem(str(path), ".".join(map(str, loc)), err["msg"], line_of(lines, loc),
                                        found=repr(err.get("input"))[:80]))
    return problems


class Registry:
    def __init__(self, path: Path) -> None:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        self.entries = [Guideline.model_validate(g) for g in data.get("guidelines", [])]
        self.by_id = {g.id: g for g in self.entries}

    def match(self, title: str | None, url: str | None, doi: str | None) -> Guideline | None:
        for g in self.entries:
            if (url and g.url and url.rstrip("/").lower() == g.url.rstrip("/").lower()) or \
                    (doi and g.doi and doi.lower() == g.doi.lower()):
                return g
        if title:
            best = max(self.entries, key=lambda g: fuzz.token_sort_ratio(norm_title(title), norm_title(g.title)),
                       default=None)
            if best and fuzz.token_sort_ratio(norm_title(title), norm_title(best.title)) >= 85:
                return best
        return None

    def outdated_reason(self, g: Guideline) -> str | None:
        if g.status == "current":
            return None
        when = f" in {g.status_date:%Y-%m}" if g.status_date else ""
        successor = self.by_id.get(g.successor) if g.successor else None
        then = f"; see {successor.issuer} {successor.date:%Y}: {successor.title}" if successor else ""
        return f"{g.issuer} {g.date:%Y} guideline {g.status}{when}{then}" + (f" ({g.note})" if g.note else "")
