"""Citation extraction: DOI, PMID, PMCID, URLs, and free-text references in Vancouver and
APA-like styles, English and French. One reference line that carries a DOI or PMID gives
one citation with both its identifier and its metadata."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.IGNORECASE)
PMID = re.compile(r"\bPMID\s*:?\s*(\d{1,9})\b", re.IGNORECASE)
PMCID = re.compile(r"\b(PMC\d{4,9})\b", re.IGNORECASE)
URL = re.compile(r"\bhttps?://[^\s<>\"]+", re.IGNORECASE)
YEAR = re.compile(r"\b(19[5-9]\d|20[0-4]\d)\b")
# Vancouver: Authors. Title. Journal. Year;Vol(Issue):pages.  APA: Authors (Year). Title. Journal, Vol(Issue), pages.
VANCOUVER = re.compile(
    r"^(?P<authors>[^.]{2,300}?)\.\s+(?P<title>[^.?!]{8,400}[.?!])\s+(?P<journal>[^.;]{2,150}?)\.?\s+"
    r"(?P<year>(?:19|20)\d{2})[^;]*;\s*(?P<volume>\d+)(?:\((?P<issue>[^)]+)\))?(?::\s*(?P<pages>[\w\-–]+))?")
APA = re.compile(
    r"^(?P<authors>.{2,300}?)\s*\((?P<year>(?:19|20)\d{2})[a-z]?\)\.\s+(?P<title>[^.?!]{8,400}[.?!])\s+"
    r"(?P<journal>[^,.]{2,150}),\s*(?P<volume>\d+)(?:\((?P<issue>[^)]+)\))?(?:,\s*(?P<pages>[\w\-–]+))?")
# Institutional documents and guidelines: Organisation. Title. Year.
REPORT = re.compile(r"^(?P<authors>[^.]{2,150})\.\s+(?P<title>.{8,400}?)\.\s+(?:[^.]{0,80}[,.;]\s*)?"
                    r"(?P<year>(?:19|20)\d{2})\b")
REFERENCE_LINE = re.compile(r"^\s*(?:\[\d{1,3}\]|\d{1,3}[.)]|[-*•])\s+(?P<body>.+)$")
SECTION = re.compile(r"^\s*(?:#+\s*)?(references?|références?|bibliographie|sources?)\s*:?\s*$", re.IGNORECASE)
TRAILING = ".,;:)]}>»'\""


@dataclass
class Citation:
    kind: str                       # doi | pmid | pmcid | url | reference
    raw: str
    doi: str | None = None
    pmid: str | None = None
    pmcid: str | None = None
    url: str | None = None
    authors: str | None = None
    title: str | None = None
    journal: str | None = None
    year: int | None = None
    volume: str | None = None
    pages: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """What identifies the citation, for matching against annotations."""
        for attr in ("doi", "pmid", "pmcid", "url"):
            value = getattr(self, attr)
            if value:
                return f"{attr}:{value.lower()}"
        return f"title:{(self.title or '').lower().strip(' .')}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, "")}


def _clean(identifier: str) -> str:
    return identifier.rstrip(TRAILING)


def _identifiers(text: str, c: Citation) -> None:
    for m in URL.finditer(text):
        url = _clean(m.group())
        lower = url.lower()
        if "doi.org/" in lower:
            c.doi = c.doi or url.split("doi.org/", 1)[1]
        elif "ncbi.nlm.nih.gov/pmc/articles/" in lower or "pmc.ncbi" in lower:
            found = PMCID.search(url)
            c.pmcid = c.pmcid or (found.group(1).upper() if found else None)
        elif "pubmed" in lower:
            found = re.search(r"/(\d{1,9})/?$", url)
            c.pmid = c.pmid or (found.group(1) if found else None)
        else:
            c.url = c.url or url
    if c.doi is None and (doi := DOI.search(text)):
        c.doi = _clean(doi.group(1))
    if c.pmid is None and (pmid := PMID.search(text)):
        c.pmid = pmid.group(1)
    if c.pmcid is None and (pmcid := PMCID.search(text)):
        c.pmcid = pmcid.group(1).upper()


def _metadata(body: str, c: Citation) -> bool:
    body = re.sub(r"\s+", " ", body.strip())
    for rx in (APA, VANCOUVER, REPORT):
        m = rx.match(body)
        if m:
            groups = m.groupdict()
            c.authors = groups["authors"].strip(" ,")
            c.title = groups["title"].strip(" .")
            c.journal = (groups.get("journal") or "").strip(" ,.") or None
            c.year = int(groups["year"])
            c.volume = groups.get("volume")
            c.pages = groups.get("pages")
            return True
    return False


def _kind(c: Citation) -> str:
    for attr in ("doi", "pmid", "pmcid"):
        if getattr(c, attr):
            return attr
    return "url" if c.url else "reference"


def extract_citations(text: str) -> list[Citation]:
    """Every citation in a generated answer, in order of appearance."""
    out: list[Citation] = []
    in_section = False
    for line in text.splitlines():
        if SECTION.match(line):
            in_section = True
            continue
        item = REFERENCE_LINE.match(line)
        body = item.group("body") if item else (line if in_section and line.strip() else None)
        if body is not None and (YEAR.search(body) or DOI.search(body) or PMID.search(body) or URL.search(body)):
            c = Citation("reference", body.strip())
            _identifiers(body, c)
            has_meta = _metadata(re.sub(r"(?:doi:\s*|https?://\S+|PMID:?\s*\d+|PMC\d+)", "", body,
                                        flags=re.IGNORECASE), c)
            n_ids = sum(len(rx.findall(body)) for rx in (DOI, PMID, PMCID, URL))
            if has_meta or n_ids == 1:
                c.kind = _kind(c)
                out.append(c)
                continue
        # inline identifiers in running text
        for m in list(DOI.finditer(line)) + list(PMID.finditer(line)) + list(PMCID.finditer(line)) + \
                list(URL.finditer(line)):
            c = Citation("doi", m.group())
            _identifiers(m.group(), c)
            c.kind = _kind(c)
            if not any(o.key() == c.key() for o in out):
                out.append(c)
    return out
