"""Citation benchmarks: ingest 30,000 generated PubMed records into the catalogue (target
< 60 s), then verify citations against it (target >= 1,000 verifications/s)."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from targets import verdict

from harness.citations.catalogue import Catalogue
from harness.citations.extract import Citation
from harness.citations.verify import Verifier

N = 30_000
_COMMON_TEXT = ("trial effect outcome randomised heart failure diabetes stroke dementia infection sepsis kidney "
                "cancer therapy older adults children mortality cohort safety dose hospital")
COMMON = tuple(_COMMON_TEXT.split())
_SYLLABLES = ["car", "dio", "neu", "ro", "pha", "gen", "tox", "imm", "uno", "lip", "ost", "eo", "hep", "at",
              "nep", "hro", "pul", "mo", "der", "ma", "gas", "tro", "end", "ocr", "ine", "vas", "cul", "ar"]
# Titles draw on a vocabulary of ~3,000 words with a Zipf-like skew, as real titles do:
# a 20-word vocabulary would make every title search match a third of the catalogue.
RARE = sorted({"".join(random.Random(k).choices(_SYLLABLES, k=3)) for k in range(4000)})


def write_pubmed(path: Path, n: int, rng: random.Random) -> list[tuple[str, str, str, int]]:
    works = []
    with path.open("w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n')
        for i in range(n):
            pmid, doi = str(10_000_000 + i), f"10.5555/bench.{i}"
            words = rng.choices(COMMON, k=5) + [RARE[int(rng.paretovariate(1.2)) % len(RARE)] for _ in range(4)]
            rng.shuffle(words)
            title = " ".join(words).capitalize() + f" ({RARE[i % len(RARE)]}{i})"  # titles are nearly unique
            year = rng.randint(1990, 2025)
            works.append((pmid, doi, title, year))
            fh.write(f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><Journal><Title>Journal {i % 300}"
                     f"</Title><JournalIssue><PubDate><Year>{year}</Year></PubDate></JournalIssue></Journal>"
                     f"<ArticleTitle>{title}.</ArticleTitle><AuthorList><Author><LastName>Author{i}</LastName>"
                     f"<Initials>A</Initials></Author></AuthorList></Article></MedlineCitation><PubmedData>"
                     f"<ArticleIdList><ArticleId IdType=\"doi\">{doi}</ArticleId></ArticleIdList></PubmedData>"
                     f"</PubmedArticle>\n")
        fh.write("</PubmedArticleSet>\n")
    return works


def main(n: int = N) -> dict[str, float]:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "pubmed.xml"
        works = write_pubmed(xml, n, rng)
        start = time.perf_counter()
        catalogue = Catalogue([xml], Path(tmp) / "cache")
        ingest = time.perf_counter() - start
        assert catalogue.count() == n
        verifier = Verifier(catalogue=catalogue, closed_world=True)
        citations = []
        for k in range(3000):
            pmid, doi, title, year = works[rng.randrange(n)]
            form = k % 3
            if form == 0:
                citations.append(Citation("doi", doi, doi=doi, title=title, year=year))
            elif form == 1:
                citations.append(Citation("pmid", pmid, pmid=pmid))
            else:  # free-text reference: title search through FTS5
                citations.append(Citation("reference", title, title=title, year=year))
        start = time.perf_counter()
        verdicts = [verifier.verify(c) for c in citations]
        verify_s = time.perf_counter() - start
    assert all(v.status == "verified" for v in verdicts)
    rate = len(citations) / verify_s
    print(f"Catalogue ingest of {n:,} PubMed XML records: {ingest:.1f} s (target < 60 s: "
          f"{verdict(ingest < 60, 'bench_citations')})")
    print(f"Local verification (DOI, PMID and title search, 1/3 each): {rate:,.0f} citations/s "
          f"(target >= 1,000: {verdict(rate >= 1000, 'bench_citations')})")
    return {"ingest_s": ingest, "verifications_per_s": rate}


if __name__ == "__main__":
    main()
