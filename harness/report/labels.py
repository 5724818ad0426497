"""Words a reader sees instead of code identifiers: metric names with their units, in
English and French, and how many digits a figure deserves."""

from __future__ import annotations

import math
from typing import Any

#: metric → (English, French); units in the label, so that a figure never stands alone
METRICS: dict[str, tuple[str, str]] = {
    "wer": ("Word error rate", "Taux d'erreur sur les mots"),
    "wer_item_mean": ("Word error rate, mean per item", "Taux d'erreur sur les mots, moyenne par item"),
    "cer": ("Character error rate", "Taux d'erreur sur les caractères"),
    "cpwer": ("Speaker-attributed WER (cpWER)", "WER attribué au locuteur (cpWER)"),
    "accuracy": ("Accuracy", "Exactitude"),
    "unextractable_rate": ("Answers without a choice", "Réponses sans choix lisible"),
    "drug_recall": ("Drug names kept", "Médicaments conservés"),
    "drug_precision": ("Drug names correct", "Médicaments exacts"),
    "drug_substitution_rate": ("Drug swapped for another", "Médicament remplacé par un autre"),
    "dose_accuracy": ("Doses exact", "Doses exactes"),
    "dose_magnitude_error_rate": ("Dose unit or magnitude wrong", "Dose : unité ou ordre de grandeur faux"),
    "dose_invented_per_item": ("Doses invented per item", "Doses inventées par item"),
    "critical_term_error_rate": ("Critical terms wrong", "Termes critiques erronés"),
    "severity_weighted_error_rate": ("Severity-weighted errors", "Erreurs pondérées par la gravité"),
    "unsupported_number_rate": ("Numbers not in the source", "Nombres absents de la source"),
    "outputs_with_unsupported_numbers": ("Outputs adding a number", "Sorties ajoutant un nombre"),
    "verified_rate": ("Citations verified", "Citations vérifiées"),
    "fabricated_rate": ("Citations fabricated", "Citations inventées"),
    "mismatched_rate": ("Mismatched citations", "Citations hors sujet"),
    "outdated_rate": ("Citations outdated", "Citations obsolètes"),
    "unverifiable_rate": ("Citations unverifiable", "Citations invérifiables"),
    "answers_without_citation": ("Answers without a citation", "Réponses sans citation"),
    "citations_per_answer": ("Citations per answer", "Citations par réponse"),
    "bleu": ("BLEU (0–100)", "BLEU (0–100)"),
    "chrf": ("chrF (0–100)", "chrF (0–100)"),
    "ter": ("TER, edits per 100 words", "TER, corrections pour 100 mots"),
    "rouge_l": ("ROUGE-L F1", "ROUGE-L F1"),
    "post_edit_rate": ("Words post-edited", "Mots corrigés (post-édition)"),
    "used_unchanged_rate": ("Outputs used unchanged", "Sorties utilisées telles quelles"),
    "time_to_correct_s": ("Time to correct, s", "Temps de correction, s"),
    "courtesy_word_share": ("Prompt words spent on courtesy", "Mots de politesse dans les consignes"),
    "error_rate": ("Requests failed", "Requêtes en échec"),
    "scoring_error_rate": ("Items the scoring failed on", "Items non notés (erreur)"),
    "missing_rate": ("Items without an answer", "Items sans réponse"),
    "latency_s": ("Latency, s", "Latence, s"),
    "ttft_s": ("Time to first token, s", "Délai du premier jeton, s"),
    "tokens_per_s": ("Output tokens per second", "Jetons produits par seconde"),
    "tokens_out": ("Output tokens per item", "Jetons produits par item"),
    "cost": ("Cost per item", "Coût par item"),
    "energy_wh": ("Energy per item, Wh", "Énergie par item, Wh"),
    "gwp_g": ("Emissions per item, gCO2eq", "Émissions par item, gCO2eq"),
}

#: the figures a reader looks at first, in this order, when a task has many
KEY_METRICS = ("wer", "accuracy", "chrf", "rouge_l", "drug_substitution_rate", "dose_magnitude_error_rate",
               "critical_term_error_rate", "fabricated_rate", "verified_rate", "post_edit_rate", "bleu", "ter",
               "cer", "cpwer", "unsupported_number_rate")


def key_metrics_first(card: dict[str, Any], task: str, named: list[str] | None = None) -> list[str]:
    """A task's quality metrics, those `named` first, then the key ones, then the others."""
    quality = list(dict.fromkeys(r["metric"] for r in card["rows"] if r["task"] == task and not r["operational"]))
    return list(dict.fromkeys([*(named or []), *(m for m in KEY_METRICS if m in quality), *quality]))


def card_currency(card: dict[str, Any]) -> str | None:
    """The currency of the declared prices, when every system that declares one uses the same."""
    found = {((a.get("declarations") or {}).get("prices") or {}).get("currency") for a in card["adapters"].values()}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def metric_label(metric: str, lang: str = "en", currency: str | None = None) -> str:
    """A metric's name for readers; an unknown metric (a plugin's) keeps its identifier."""
    pair = METRICS.get(metric)
    if pair is None and metric.startswith("wer_"):
        speaker = metric[4:]
        return f"WER, {speaker}"
    label = (pair[1] if lang == "fr" else pair[0]) if pair else metric
    if metric == "cost" and currency:
        label += f", {currency}"
    return label


def figure(value: float | None, digits: int = 3) -> str:
    """A figure with `digits` significant digits, never in scientific notation for the
    sizes a report shows; rates between 0 and 1 with three decimals so that columns align."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):  # counts stay counts
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < 1:
        decimals = max(3, digits - 1 - math.floor(math.log10(magnitude)))
        return f"{value:.{min(decimals, 8)}f}"
    if magnitude >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{max(0, digits - 1 - math.floor(math.log10(magnitude)))}f}"


def interval(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{figure(low)}, {figure(high)}]"
