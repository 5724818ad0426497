"""French for the words the scorers and the metrics layer write in report sections.

Sections are computed once, in English, from the record; the committee's page in French
translates their fixed words: titles, groups, table headers, error classes, verdicts and
the sentence patterns the harness writes. Data (drug names, items, system names, citations)
is never touched: only whole known strings, known prefixes and known patterns are. A
third-party scorer's words that are not here stay in English.
"""

from __future__ import annotations

import re
from typing import Any

from harness.report.labels import METRICS, metric_label

EXACT_FR = {
    # groups and titles
    "Errors that matter in medicine": "Erreurs qui comptent en médecine",
    "Confidentiality (HAS 2.4)": "Confidentialité (HAS 2.4)",
    "Against current practice (HAS 3.3)": "Face à la pratique actuelle (HAS 3.3)",
    "Cited sources (HAS 2.5)": "Sources citées (HAS 2.5)",
    "Drug names": "Noms de médicaments", "Doses and units": "Doses et unités",
    "Negation, laterality, near-homophones, dosing frequency":
        "Négation, latéralité, quasi-homophones, fréquence des prises",
    "Cited sources": "Sources citées", "Latency and cost": "Latence et coût",
    "Energy and emissions": "Énergie et émissions", "Most corrected outputs": "Sorties les plus corrigées",
    "Courtesy in prompts": "Politesse dans les consignes", "Clearance override": "Dérogation d'habilitation",
    "Pre-flight PII guard": "Contrôle préalable des données personnelles",
    "Word errors by speaker": "Erreurs de mots par locuteur",
    "Personal identifiers in answers": "Identifiants personnels dans les réponses",
    "Identifiers left in the output": "Identifiants laissés dans la sortie",
    "type": "type", "in answers": "dans les réponses", "repeated from the input": "repris de l'entrée",
    "left in the output": "laissés dans la sortie", "reference speaker": "locuteur de référence",
    "matched output speaker": "locuteur de sortie apparié", "items": "items", "speaker": "locuteur",
    "reference words": "mots de référence", "errors": "erreurs",
    # table headers
    "Reference drug": "Médicament de référence", "Heard / written": "Entendu / écrit", "Times": "Fois",
    "Why flagged": "Motif", "Item": "Item", "Cited": "Cité", "Verdict": "Verdict", "Why": "Motif",
    "Outdated": "Obsolète", "percentile": "centile", "seconds": "secondes", "metric": "indicateur",
    "difference": "différence", "95% CI": "IC à 95 %", "this run": "cette exécution", "per item": "par item",
    "per 1,000 items": "pour 1 000 items", "energy, Wh": "énergie, Wh", "emissions, gCO2eq": "émissions, gCO2eq",
    # verdicts in cells
    "no clear difference": "pas de différence nette", "better": "meilleur", "worse": "moins bon",
    "— (one measurement)": "— (une seule mesure)",
}

#: error classes, as the medical and citation scorers name them (with spaces)
KINDS_FR = {
    "drug lost": "médicament perdu", "drug misspelled": "médicament mal orthographié",
    "drug substitution": "médicament substitué", "drug invented": "médicament inventé",
    "dose value": "valeur de la dose", "dose unit dropped": "unité de dose perdue", "dose dropped": "dose perdue",
    "dose invented": "dose inventée", "dose unit magnitude": "unité ou ordre de grandeur",
    "dose decimal slip": "virgule décalée", "dose per unit": "« par » perdu (mg/kg…)",
    "frequency lost": "fréquence perdue", "frequency changed": "fréquence changée",
    "negation added": "négation ajoutée", "negation lost": "négation perdue",
    "near homophone swap": "quasi-homophone", "laterality flip": "côté inversé",
    "verified": "vérifiée", "outdated": "obsolète", "not found": "introuvable",
    "mismatched": "ne soutient pas l'affirmation", "unverifiable": "invérifiable",
}

PATTERNS_FR: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(.+) minus (.+), on the items both answered \(paired bootstrap\)\.$"),
     r"\1 moins \2, sur les items traités par les deux (bootstrap apparié)."),
    (re.compile(r"^Declared cost: (\S+) per 1,000 items \((\d+) items priced\)\.$"),
     r"Coût déclaré : \1 pour 1 000 items (\2 items avec un prix)."),
    (re.compile(r"^Only (\d+) responses: the upper percentiles rest on a handful of values\.$"),
     r"Seulement \1 réponses : les centiles élevés reposent sur une poignée de valeurs."),
    (re.compile(r"^Method: (.+)\. Figures from different methods or versions are not comparable\.$"),
     r"Méthode : \1. Des chiffres issus de méthodes ou de versions différentes ne sont pas comparables."),
    (re.compile(r"^Throughput: (\S+) output tokens per second per response \(mean of (\d+)\)\.$"),
     r"Débit : \1 jetons produits par seconde et par réponse (moyenne sur \2)."),
    (re.compile(r"^Against current practice \((.+)\)$"), r"Face à la pratique actuelle (\1)"),
    (re.compile(r"^(.+): (\d+) word edits$"), r"\1 : \2 mots corrigés"),
    (re.compile(r"^time to first token p(\d+)$"), r"délai du premier jeton p\1"),
]
_KIND_LIST = re.compile(r"^(?:[a-z][a-z ]+ \d+)(?:, [a-z][a-z ]+ \d+)*$")
_KIND_PREFIX = re.compile(r"^([a-z][a-z ]+): ")


def translate(text: str, lang: str) -> str:
    """A section's fixed words in `lang` (en: unchanged)."""
    if lang != "fr" or not isinstance(text, str):
        return text
    if text in EXACT_FR:
        return EXACT_FR[text]
    if _KIND_LIST.match(text):  # "drug lost 32, drug substitution 1"
        return ", ".join(_kind_count(part) for part in text.split(", "))
    prefix = _KIND_PREFIX.match(text)  # "negation lost: pas → (nothing) (dictee-002)"
    if prefix and prefix.group(1) in KINDS_FR:
        return KINDS_FR[prefix.group(1)] + " : " + text[prefix.end():].replace("(nothing)", "(rien)")
    for pattern, replacement in PATTERNS_FR:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return text


def _kind_count(part: str) -> str:
    name, _, count = part.rpartition(" ")
    return f"{KINDS_FR.get(name, name)} {count}"


#: the only cells translated: words the harness writes, never data
_CELLS = {"no clear difference", "better", "worse", "— (one measurement)", "energy, Wh", "emissions, gCO2eq"}


def _cell(value: Any, lang: str) -> Any:
    if isinstance(value, str) and value in METRICS:  # a metric's identifier in a table: its name
        return metric_label(value, lang)
    if isinstance(value, str) and (value in _CELLS or value.startswith("time to first token p")):
        return translate(value, lang)
    return value


def translate_section(section: dict[str, Any], lang: str) -> dict[str, Any]:
    """A copy of a section with its fixed words translated (and, in every language, metric
    identifiers in tables given their names); its data untouched."""
    out = dict(section)
    out["title"] = translate(section["title"], lang)
    out["group"] = translate(section["group"], lang) if section.get("group") else section.get("group")
    out["paragraphs"] = [translate(p, lang) for p in section["paragraphs"]]
    out["bullets"] = [translate(b, lang) for b in section["bullets"]]
    out["tables"] = [{**t, "headers": [translate(h, lang) for h in t["headers"]],
                      "rows": [[_cell(c, lang) for c in row] for row in t["rows"]]}
                     for t in section["tables"]]
    return out
