"""One verdict per citation: verified, mismatched, not_found (fabricated), unverifiable;
and, separately, whether it is outdated. Each verdict carries its reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

from harness.citations.catalogue import Catalogue, norm_title
from harness.citations.extract import Citation
from harness.citations.guidelines import Registry
from harness.citations.online import ONLINE, HTTPCache, OnlineResolver

TITLE_TOLERANCE = 85.0
JOURNAL_TOLERANCE = 70.0


@dataclass
class Verdict:
    status: str                 # verified | mismatched | not_found | unverifiable
    reason: str
    outdated: bool = False
    outdated_reason: str | None = None
    matched_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_JOURNAL_STOP = {"the", "of", "and", "de", "la", "le", "des", "du", "et", "for", "in"}


def journals_match(a: str, b: str) -> bool:
    """Same journal, allowing ISO-style abbreviations ('N Engl J Med' = 'The New England
    Journal of Medicine')."""
    if fuzz.partial_token_sort_ratio(norm_title(a), norm_title(b)) >= JOURNAL_TOLERANCE:
        return True
    ta = [w for w in norm_title(a).split() if w not in _JOURNAL_STOP]
    tb = [w for w in norm_title(b).split() if w not in _JOURNAL_STOP]
    short, long = (ta, tb) if len(" ".join(ta)) <= len(" ".join(tb)) else (tb, ta)
    return len(short) == len(long) and all(y.startswith(x) for x, y in zip(short, long, strict=True))


def _mismatch(c: Citation, record: dict[str, Any]) -> str | None:
    """Which claimed field disagrees with the record, or None."""
    if c.title and record.get("title"):
        score = fuzz.token_sort_ratio(norm_title(c.title), norm_title(record["title"]))
        if score < TITLE_TOLERANCE:
            return f"title differs ({score:.0f}%): the identifier belongs to \"{record['title']}\""
    if c.year and record.get("year") and abs(int(c.year) - int(record["year"])) > 1:
        return f"year differs: cited {c.year}, record {record['year']}"
    if c.journal and record.get("journal") and not journals_match(c.journal, record["journal"]):
        return f"journal differs: cited {c.journal}, record {record['journal']}"
    return None


class Verifier:
    def __init__(self, *, catalogue: Catalogue | None = None, closed_world: bool = False,
                 registry: Registry | None = None, online: list[OnlineResolver] | None = None,
                 max_age_years: float | None = None, as_of: dt.date | None = None) -> None:
        self.catalogue = catalogue
        self.closed_world = closed_world
        self.registry = registry
        self.online = online or []
        self.max_age_years = max_age_years
        self.as_of = as_of or dt.date.today()

    def verify(self, c: Citation) -> Verdict:
        verdict = self._exists(c)
        self._currency(c, verdict)
        return verdict

    def _exists(self, c: Citation) -> Verdict:
        looked_up = False
        authoritative_miss = []
        for kind in ("doi", "pmid", "pmcid", "url"):
            value = getattr(c, kind)
            if not value:
                continue
            if self.catalogue is not None:
                looked_up = True
                record = self.catalogue.by_identifier(kind, value)
                if record is not None:
                    return self._judge(c, record, f"catalogue by {kind}")
                if self.closed_world and kind != "url":  # a catalogue of works does not list web pages
                    authoritative_miss.append(f"{kind} {value} not in the catalogue")
            if self.registry is not None and kind in ("url", "doi"):
                g = self.registry.match(None, value if kind == "url" else None, value if kind == "doi" else None)
                if g is not None:
                    return self._judge(c, {"title": g.title, "year": g.date.year}, "guideline registry")
            for resolver in self.online:
                if kind not in resolver.kinds:
                    continue
                looked_up = True
                status, record = resolver.lookup(kind, value)
                if status == "found" and record is not None:
                    return self._judge(c, record, f"{resolver.name} by {kind}")
                if status == "not_found":
                    authoritative_miss.append(f"{kind} {value} unknown to {resolver.name}")
        if c.title:
            if self.registry is not None and (g := self.registry.match(c.title, None, None)):
                return self._judge(c, {"title": g.title, "year": g.date.year}, "guideline registry by title")
            if self.catalogue is not None:
                looked_up = True
                record, score = self.catalogue.by_title(c.title)
                if record is not None:
                    return self._judge(c, record, f"catalogue by title ({score:.0f}%)")
                if self.closed_world:
                    authoritative_miss.append("title not in the catalogue")
        if authoritative_miss:
            return Verdict("not_found", "; ".join(authoritative_miss))
        if c.kind == "url" and not c.title:
            return Verdict("unverifiable", "a web page absent from the catalogue and the registry; "
                                           "web pages are not checked online")
        if not looked_up:
            return Verdict("unverifiable", f"no enabled resolver can look up a {c.kind} citation")
        return Verdict("unverifiable", "not found by resolvers that do not cover every work")

    def _judge(self, c: Citation, record: dict[str, Any], how: str) -> Verdict:
        problem = _mismatch(c, record)
        if problem:
            return Verdict("mismatched", problem, matched_by=how)
        return Verdict("verified", "identifier and metadata match" if c.title else "identifier exists",
                       matched_by=how)

    def _currency(self, c: Citation, v: Verdict) -> None:
        if self.registry is not None:
            g = self.registry.match(c.title, c.url, c.doi)
            if g is not None and (reason := self.registry.outdated_reason(g)):
                v.outdated, v.outdated_reason = True, reason
                return
        if self.max_age_years and c.year and (self.as_of.year - c.year) > self.max_age_years:
            v.outdated, v.outdated_reason = True, f"published {c.year}, older than {self.max_age_years:g} years"


def build_verifier(spec: Any, cache_dir: Path) -> Verifier:
    """A Verifier from a task's `citations:` block (paths already resolved)."""
    catalogue = Catalogue([Path(p) for p in spec.catalogue], cache_dir / "catalogues") if spec.catalogue else None
    registry = Registry(Path(spec.registry)) if spec.registry else None
    online: list[OnlineResolver] = []
    if spec.online:
        cache = HTTPCache(cache_dir / "citations-http.sqlite")
        for name in spec.online.resolvers:
            online.append(ONLINE[name](spec.online.base_urls.get(name), spec.online.contact, cache,
                                       spec.online.requests_per_second))
    return Verifier(catalogue=catalogue, closed_world=spec.closed_world, registry=registry, online=online,
                    max_age_years=spec.max_age_years, as_of=spec.as_of)
