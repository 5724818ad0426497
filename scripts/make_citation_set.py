"""Build harness/citations/data/annotated.jsonl: answers citing works in mixed styles
(Vancouver, APA, DOI/PMID/PMCID inline, URLs; English and French), each line annotated with
the keys of the citations it contains. The annotation comes from the works listed here, not
from the extractor. Works marked invented do not exist."""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "harness" / "citations" / "data" / "annotated.jsonl"

# authors, title, journal, year, volume, issue, pages, doi, pmid  (the first five are real)
WORKS = [
    ("Birks JS, Harvey RJ", "Donepezil for dementia due to Alzheimer's disease", "Cochrane Database Syst Rev",
     2018, "6", "6", "CD001190", "10.1002/14651858.CD001190.pub3", "29923184"),
    ("SPRINT Research Group", "A randomized trial of intensive versus standard blood-pressure control",
     "N Engl J Med", 2015, "373", "22", "2103-2116", "10.1056/NEJMoa1511939", "26551272"),
    ("RECOVERY Collaborative Group", "Dexamethasone in hospitalized patients with Covid-19", "N Engl J Med",
     2021, "384", "8", "693-704", "10.1056/NEJMoa2021436", "32678530"),
    ("McMurray JJV, Solomon SD, Inzucchi SE, et al", "Dapagliflozin in patients with heart failure and reduced "
     "ejection fraction", "N Engl J Med", 2019, "381", "21", "1995-2008", "10.1056/NEJMoa1911303", "31535829"),
    ("Zinman B, Wanner C, Lachin JM, et al", "Empagliflozin, cardiovascular outcomes, and mortality in type 2 "
     "diabetes", "N Engl J Med", 2015, "373", "22", "2117-2128", "10.1056/NEJMoa1504720", "26378978"),
]
TOPICS = ["statin withdrawal in frail elderly patients", "oral anticoagulation after intracranial haemorrhage",
          "early mobilisation after hip fracture surgery", "vitamin D supplementation in nursing homes",
          "procalcitonin-guided antibiotic stopping", "melatonin for postoperative delirium",
          "tranexamic acid in postpartum haemorrhage", "remote monitoring of heart failure",
          "deprescribing proton pump inhibitors", "high-flow nasal oxygen in bronchiolitis",
          "ketamine for treatment-resistant depression", "sodium restriction in chronic kidney disease",
          "point-of-care ultrasound in the emergency department", "iron infusion before cardiac surgery",
          "music therapy for agitation in dementia", "short-course antibiotics for pneumonia in children",
          "aspirin for primary prevention after 75 years", "telephone follow-up after discharge",
          "compression stockings after stroke", "intermittent fasting in type 2 diabetes",
          "nurse-led titration of beta blockers", "topical lidocaine for post-herpetic neuralgia",
          "fluid restriction in heart failure", "caffeine for apnoea of prematurity",
          "physiotherapy for chronic low back pain", "zinc for the common cold in adults",
          "restrictive transfusion thresholds in oncology", "early palliative care in lung cancer",
          "pharmacist medication review at admission", "hypnosis for procedural pain in children"]
SURNAMES = ["Dupont", "Martin", "Okafor", "Nguyen", "Schmidt", "Rossi", "Kowalski", "Haddad", "Silva", "Larsen",
            "Moreau", "Tanaka", "Ibrahim", "Novak", "Garcia"]
JOURNALS = ["Journal of Invented Clinical Research", "Annals of Imaginary Medicine", "Revue française de médecine "
            "fictive", "International Journal of Made-up Therapeutics", "Fictional Geriatrics"]


def invented(i: int, rng: random.Random) -> tuple:
    a, b = rng.sample(SURNAMES, 2)
    topic = TOPICS[i % len(TOPICS)]
    title = f"{rng.choice(['A randomised trial of', 'Effect of', 'Outcomes of', 'Safety of'])} {topic}"
    year = rng.randint(2012, 2025)
    doi = f"10.{rng.randint(1000, 9999)}/inv.{year}.{rng.randint(100, 999)}" if rng.random() < 0.5 else None
    pmid = str(rng.randint(30000000, 39999999)) if doi is None and rng.random() < 0.4 else None
    return (f"{a} {a[0]}, {b} {b[0]}", title, rng.choice(JOURNALS), year, str(rng.randint(1, 60)),
            str(rng.randint(1, 12)), f"{rng.randint(1, 900)}-{rng.randint(901, 999)}", doi, pmid)


def render(w: tuple, style: str) -> tuple[str, str]:
    """(text, key) for one citation in a style."""
    authors, title, journal, year, vol, issue, pages, doi, pmid = w
    title_key = "title:" + title.lower()
    if style == "vancouver_doi" and doi:
        return f"{authors}. {title}. {journal}. {year};{vol}({issue}):{pages}. doi:{doi}", f"doi:{doi.lower()}"
    if style == "apa_doi_url" and doi:
        return f"{authors} ({year}). {title}. {journal}, {vol}({issue}), {pages}. https://doi.org/{doi}", \
            f"doi:{doi.lower()}"
    if style == "vancouver_pmid" and pmid:
        return f"{authors}. {title}. {journal}. {year};{vol}:{pages}. PMID: {pmid}", f"pmid:{pmid}"
    if style == "apa":
        return f"{authors} ({year}). {title}. {journal}, {vol}({issue}), {pages}.", title_key
    if style == "fr_url":
        url = f"https://www.example-revue.fr/articles/{year}/{pages.split('-')[0]}"
        return f"{authors}. {title}. {journal}. {year};{vol}:{pages}. Disponible sur : {url}", f"url:{url}"
    return f"{authors}. {title}. {journal}. {year};{vol}({issue}):{pages}.", title_key


def main() -> None:
    rng = random.Random(20261123)
    works = WORKS + [invented(i, rng) for i in range(40)]
    styles = ["vancouver_doi", "apa_doi_url", "vancouver_pmid", "apa", "fr_url", "vancouver"]
    lines = []
    for n in range(60):
        chosen = rng.sample(works, rng.randint(1, 4))
        keys, refs = [], []
        for w in chosen:
            text, key = render(w, rng.choice(styles))
            refs.append(text)
            keys.append(key)
        inline = ""
        if rng.random() < 0.35:
            extra = rng.choice(works)
            if extra[8]:
                inline, key = f" (PMID {extra[8]})", f"pmid:{extra[8]}"
                inline = f" See PMID: {extra[8]}."
                keys.insert(0, key)
            elif rng.random() < 0.5:
                pmc = f"PMC{rng.randint(1000000, 9999999)}"
                inline = f" Full text: {pmc}."
                keys.insert(0, f"pmcid:{pmc.lower()}")
        french = rng.random() < 0.4
        head = "Références :" if french else rng.choice(["References:", "Sources", "## References"])
        intro = ("Selon les données disponibles, la prise en charge dépend du contexte." if french
                 else "Based on the available evidence, management depends on the clinical context.")
        numbered = "\n".join(f"{i + 1}. {r}" if rng.random() < 0.7 else f"[{i + 1}] {r}" for i, r in enumerate(refs))
        lines.append({"id": f"ans-{n:03d}", "lang": "fr" if french else "en",
                      "text": f"{intro}{inline}\n\n{head}\n{numbered}", "citations": keys})
    OUT.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    print(f"{len(lines)} answers, {sum(len(x['citations']) for x in lines)} citations → {OUT}")


if __name__ == "__main__":
    main()
