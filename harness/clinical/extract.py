"""Extraction of clinical mentions from one text: drugs, doses, routes, frequencies,
negation cues, laterality and near-homophones, for English and French.

Numbers written in words become digits first (text2num: "one gram", "deux cent
cinquante milligrammes", "zero point five"); decimal commas are read as points.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from text_to_num import alpha2digit

from harness.clinical.lexicon import SALT_WORDS, TITLES, Lexicon, critical_terms, fold, strip_accents
from harness.textcache import text_cache

_THOUSANDS_EN = re.compile(r"(?<=\d)[, ](?=\d{3}(?!\d))")
_THOUSANDS_FR = re.compile(r"(?<=\d)[ \u202f](?=\d{3}(?!\d))")
_SLASH = re.compile(r" ?/ ?")
_NOT = re.compile(r"n't\b")
_SPACED_RANGE = re.compile(r"(?<=\d)\s+([-–])\s+(?=\d)")
TOKEN = re.compile(r"\d+(?:[.,]\d+)?|(?<=\d)[-–](?=\d)|[^\W\d_]+(?:-[^\W\d_]+)*|[µ%/]")

UNITS = {
    "mg": "mg", "mgs": "mg", "milligram": "mg", "milligrams": "mg", "milligramme": "mg", "milligrammes": "mg",
    "g": "g", "gr": "g", "gm": "g", "gram": "g", "grams": "g", "gramme": "g", "grammes": "g",
    "µg": "µg", "mcg": "µg", "ug": "µg", "microgram": "µg", "micrograms": "µg", "microgramme": "µg",
    "microgrammes": "µg", "gamma": "µg", "gammas": "µg",
    "ng": "ng", "nanogram": "ng", "nanograms": "ng", "nanogramme": "ng", "nanogrammes": "ng",
    "kg": "kg", "ml": "ml", "mls": "ml", "millilitre": "ml", "millilitres": "ml", "milliliter": "ml",
    "milliliters": "ml", "l": "l", "litre": "l", "litres": "l", "liter": "l", "liters": "l",
    "ui": "units", "iu": "units", "u": "units", "unit": "units", "units": "units", "unité": "units", "unités": "units",
    "mmol": "mmol", "millimole": "mmol", "millimoles": "mmol", "meq": "meq", "milliequivalents": "meq",
    "%": "%", "percent": "%", "pourcent": "%",
    "drop": "drops", "drops": "drops", "goutte": "drops", "gouttes": "drops",
    "puff": "puffs", "puffs": "puffs", "bouffée": "puffs", "bouffées": "puffs",
}
PER_UNITS = {
    "kg": "kg", "kilogram": "kg", "kilograms": "kg", "kilo": "kg", "kilos": "kg", "kilogramme": "kg",
    "kilogrammes": "kg", "day": "day", "days": "day", "jour": "day", "jours": "day", "j": "day", "d": "day",
    "hour": "h", "hours": "h", "hr": "h", "hrs": "h", "heure": "h", "heures": "h", "h": "h", "minute": "min",
    "minutes": "min",
    "min": "min", "dose": "dose", "doses": "dose", "m2": "m2", "m²": "m2", "ml": "ml", "l": "l", "week": "week",
    "semaine": "week",
}
PER_WORDS = {"/", "per", "par", "a", "by"}
RANGE_WORDS = {"-", "–", "to", "à", "a"}
UNIT_BASE = {"mg": ("mass", 1e-3), "g": ("mass", 1.0), "µg": ("mass", 1e-6), "ng": ("mass", 1e-9),
             "kg": ("mass", 1e3), "ml": ("volume", 1e-3), "l": ("volume", 1.0)}
ROUTES = {
    "en": {"iv": "iv", "intravenous": "iv", "intravenously": "iv", "oral": "oral", "orally": "oral",
           "po": "oral", "mouth": "oral", "sc": "sc", "subcutaneous": "sc", "subcutaneously": "sc", "subcut": "sc",
           "im": "im", "intramuscular": "im", "intramuscularly": "im", "inhaled": "inhaled", "topical": "topical"},
    "fr": {"iv": "iv", "intraveineuse": "iv", "intraveineux": "iv", "ivd": "iv", "os": "oral", "orale": "oral",
           "sc": "sc", "sous-cutanée": "sc", "sous-cutané": "sc", "im": "im", "intramusculaire": "im",
           "inhalé": "inhaled", "inhalée": "inhaled"},
}
FREQUENCY = {
    "en": re.compile(r"\b(?:once|twice|(?:\d+) times) (?:daily|a day|weekly|a week)\b|\bevery \d+ hours\b|"
                     r"\b(?:b\.?i\.?d|t\.?i\.?d|q\.?i\.?d|q\d+h|prn)\b|\bas (?:needed|required)\b|"
                     r"\bat (?:night|bedtime)\b|\bonce weekly\b|\bdaily\b"),
    "fr": re.compile(r"\b(?:\d+|une|deux|trois) fois par (?:jour|semaine)\b|\btoutes les \d+ heures\b|"
                     r"\bsi besoin\b|\bau coucher\b|\ble soir\b|\ble matin\b|\bpar jour\b"),
}


_COUNT = {"once": 1, "twice": 2, "thrice": 3, "une": 1, "un": 1, "deux": 2, "trois": 3, "quatre": 4}
_PERIOD_DAYS = {"day": 1, "days": 1, "daily": 1, "jour": 1, "jours": 1, "j": 1, "week": 7, "weeks": 7, "weekly": 7,
                "semaine": 7, "semaines": 7, "month": 30, "months": 30, "monthly": 30, "mois": 30,
                "hour": 1 / 24, "hours": 1 / 24, "heure": 1 / 24, "heures": 1 / 24, "h": 1 / 24}
_ABBREVIATIONS = {"od": 1, "qd": 1, "bd": 2, "bid": 2, "tds": 3, "tid": 3, "qds": 4, "qid": 4, "qhs": 1}
#: dosing schedules → doses a day, most specific first (a weekly drug heard as daily is a classic
#: fatal error: the schedule is compared, not only its words)
SCHEDULES: dict[str, list[tuple[re.Pattern[str], Callable[[re.Match[str]], float]]]] = {
    "en": [
        (re.compile(r"\b(once|twice|thrice|\d+) (?:times )?(?:a|per|each|every) (day|week|month)\b"),
         lambda m: (_COUNT.get(m[1], 0) or float(m[1])) / _PERIOD_DAYS[m[2]]),
        (re.compile(r"\b(once|twice|thrice|\d+) (?:times )?(daily|weekly|monthly)\b"),
         lambda m: (_COUNT.get(m[1], 0) or float(m[1])) / _PERIOD_DAYS[m[2]]),
        (re.compile(r"\bevery (\d+) (hours?|days?|weeks?|months?)\b"),
         lambda m: 1 / (float(m[1]) * _PERIOD_DAYS[m[2]])),
        (re.compile(r"\bq ?(\d+) ?h\b"), lambda m: 24 / float(m[1])),
        (re.compile(r"\bevery other day\b|\balternate days\b"), lambda m: 0.5),
        (re.compile(r"\bevery (day|week|month)\b|\b(daily|weekly|monthly)\b"),
         lambda m: 1 / _PERIOD_DAYS[m[1] or m[2]]),
        (re.compile(r"\bon (?:mondays|tuesdays|wednesdays|thursdays|fridays|saturdays|sundays)\b"), lambda m: 1 / 7),
        (re.compile(r"\b(od|qd|bd|bid|tds|tid|qds|qid|qhs)\b"), lambda m: _ABBREVIATIONS[m[1]]),
        (re.compile(r"\b(?:at night|at bedtime|every morning|in the morning|nightly)\b"), lambda m: 1),
    ],
    "fr": [
        (re.compile(r"\b(une|deux|trois|quatre|\d+) fois par (jour|semaine|mois)\b"),
         lambda m: (_COUNT.get(m[1], 0) or float(m[1])) / _PERIOD_DAYS[m[2]]),
        (re.compile(r"\btoutes les (\d+) (heures|h)\b"), lambda m: 24 / float(m[1])),
        (re.compile(r"\btous les (\d+) (jours|mois)\b"), lambda m: 1 / (float(m[1]) * _PERIOD_DAYS[m[2]])),
        (re.compile(r"\bun jour sur (?:deux|2)\b"), lambda m: 0.5),
        (re.compile(r"\bmatin,? midi et soir\b"), lambda m: 3),
        (re.compile(r"\bmatin et soir\b"), lambda m: 2),
        (re.compile(r"\b(?:par|chaque|tous les|toutes les) (jour|jours|semaine|semaines|mois)\b"),
         lambda m: 1 / _PERIOD_DAYS[m[1]]),
        (re.compile(r"\b(quotidien|quotidienne|hebdomadaire|mensuel|mensuelle)\b"),
         lambda m: {"quotidien": 1, "quotidienne": 1, "hebdomadaire": 1 / 7}.get(m[1], 1 / 30)),
        (re.compile(r"\b(?:le lundi|le mardi|le mercredi|le jeudi|le vendredi|le samedi|le dimanche)\b"),
         lambda m: 1 / 7),
        (re.compile(r"\b(?:le soir|au coucher|le matin)\b"), lambda m: 1),
    ],
}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A dosing schedule: where it starts (token index), doses a day, as written."""

    first: int
    per_day: float
    text: str


def _schedules(folded: str, lang: str) -> list[Schedule]:
    """Every schedule, the earlier patterns first where two overlap. Linear in the text: the
    characters already taken are marked, and a schedule's token index is looked up among the
    tokens' offsets (a count of the tokens before it for each one took a third of the time of
    scoring long consultations)."""
    covered = bytearray(len(folded) + 1)
    out: list[tuple[int, float, str]] = []
    for pattern, rate in SCHEDULES[lang]:
        for m in pattern.finditer(folded):
            start, end = m.span()
            if covered.find(1, start, end) != -1:
                continue
            covered[start:end] = b"\x01" * (end - start)
            out.append((start, rate(m), m.group()))
    if not out:
        return []
    out.sort()
    tokens = [t.span() for t in TOKEN.finditer(folded)]
    starts = [a for a, _ in tokens]
    return [Schedule(_tokens_before(folded, tokens, starts, start), round(per_day, 6), text)
            for start, per_day, text in out]


def _tokens_before(folded: str, tokens: list[tuple[int, int]], starts: list[int], offset: int) -> int:
    """How many tokens the text before `offset` holds, as TOKEN reads it there: those starting
    before it, less a dash between two numbers that ends at `offset` (its look-ahead needs the
    digit after it, which the text before `offset` does not have)."""
    k = bisect.bisect_left(starts, offset)
    if k and tokens[k - 1][1] == offset and folded[tokens[k - 1][0]] in "-–":
        k -= 1
    return k


@dataclass(frozen=True, slots=True)
class DrugMention:
    canonical: str
    surface: str
    first: int          # token index
    last: int           # token index, inclusive


@dataclass(frozen=True, slots=True)
class Dose:
    value: float
    unit: str
    per: tuple[str, ...]
    first: int
    last: int
    surface: str
    high: float | None = None

    def key(self) -> tuple[float, float | None, str, tuple[str, ...]]:
        return (self.value, self.high, self.unit, self.per)

    def base_amount(self) -> tuple[str, float] | None:
        dim = UNIT_BASE.get(self.unit)
        return (dim[0], self.value * dim[1]) if dim else None


@dataclass
class Extraction:
    text: str
    words: list[str]
    drugs: list[DrugMention]
    doses: list[Dose]
    numbers: list[tuple[int, float]]
    routes: list[tuple[int, str]]
    frequencies: list[str]
    schedules: list[Schedule]
    negations: list[int]
    laterality: list[tuple[int, str]]
    homophones: list[tuple[int, str]]


def _lang(language: str) -> str:
    lang = language.split("-")[0].lower()
    return lang if lang in ("en", "fr") else "en"


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


def tokenize(text: str, language: str) -> tuple[str, list[str]]:
    """Folded text with numbers in words turned into digits, and its words (plain strings:
    a token object each cost more than the rest of the extraction of a long transcript)."""
    lang = _lang(language)
    folded = fold(text)
    if lang == "fr":
        folded = folded.replace("pour cent", "pourcent")
    # thousands separators: "1,000" in English, "5 000" in both; a French comma is a decimal point.
    # Joined before number words become digits: "one 500 mg tablet" is one tablet of 500 mg,
    # not 1500 mg ("1 500" once "one" is a digit)
    folded = (_THOUSANDS_EN if lang == "en" else _THOUSANDS_FR).sub("", folded)
    folded = alpha2digit(folded, lang, threshold=0)
    if lang == "en":
        folded = _NOT.sub(" not", folded)  # "doesn't", "isn't": the negation is a word of its own
    folded = folded.replace("'", " ")  # l'aspirine → l aspirine; n'est → n est
    folded = _SPACED_RANGE.sub(r"\1", folded)  # "5 - 10 mg" is the range 5-10 mg, not 10 mg
    return folded, TOKEN.findall(folded)


def _drugs(words: list[str], lexicon: Lexicon, lang: str = "en") -> list[DrugMention]:
    """Drug mentions, longest names first, left to right. Hyphenated words are also read as
    their parts ("amoxicilline-acide clavulanique"), accents are optional, French INNs may
    carry their -e ("dapagliflozine") and read "acide X-ique" as "X-ic acid"; mentions that
    together make a known combination product are one mention ("piperacillin tazobactam",
    "sacubitril/valsartan")."""
    # (token index, text): hyphenated tokens that are not names themselves are split
    parts: list[tuple[int, str]] = []
    for index, word in enumerate(words):
        if "-" in word and _lookup(word, lexicon, lang) is None:
            parts.extend((index, piece) for piece in word.split("-") if piece)
        else:
            parts.append((index, word))
    found: list[DrugMention] = []
    prefixes, stop = lexicon.prefixes, lexicon.stopwords
    i, count = 0, len(parts)
    while i < count:
        index, word = parts[i]
        if word[0].isdigit() or (i and parts[i - 1][1] in TITLES and parts[i - 1][0] < index):
            i += 1
            continue
        best, canonical = 0, None
        if word not in stop and len(word) >= 3:
            canonical = _lookup(word, lexicon, lang)
            best = 1 if canonical else 0
        phrase, n = strip_accents(word), 1
        while phrase in prefixes and i + n < count and n < lexicon.max_words:
            phrase = f"{phrase} {strip_accents(parts[i + n][1])}"
            n += 1
            hit = _lookup(phrase, lexicon, lang)
            if hit is not None:
                best, canonical = n, hit
        if lang == "fr" and word == "acide" and i + 1 < count and parts[i + 1][1].endswith("ique"):
            hit = lexicon.variants.get(strip_accents(parts[i + 1][1])[:-4] + "ic acid")
            if hit is not None:
                best, canonical = 2, hit
        if best and canonical is not None:
            surface = " ".join(p for _, p in parts[i:i + best])
            last = parts[i + best - 1][0]
            # "valproate de sodium", "X sodium": the salt belongs to the mention
            if i + best + 1 < count and parts[i + best][1] == "de" and parts[i + best + 1][1] in SALT_WORDS:
                last, best = parts[i + best + 1][0], best + 2
            found.append(DrugMention(canonical, surface, index, last))
            i += best
        else:
            i += 1
    return _combined(found, words, lexicon)


_JOINERS = frozenset({"/", "+", "with", "and", "et", "avec", "plus"})


def _combined(found: list[DrugMention], words: list[str], lexicon: Lexicon) -> list[DrugMention]:
    """Neighbouring mentions whose substances make a known combination become one mention."""
    if len(found) < 2 or not lexicon.combinations:
        return found
    out: list[DrugMention] = []
    for mention in found:
        if out:
            previous = out[-1]
            between = words[previous.last + 1:mention.first]
            if len(between) <= 1 and all(w in _JOINERS for w in between):
                together = lexicon.substances(previous.canonical) | lexicon.substances(mention.canonical)
                name = lexicon.combinations.get(together)
                if name is not None:
                    out[-1] = DrugMention(name, f"{previous.surface} {mention.surface}", previous.first, mention.last)
                    continue
        out.append(mention)
    return out


def _lookup(phrase: str, lexicon: Lexicon, lang: str) -> str | None:
    variants = lexicon.variants
    hit = variants.get(phrase)
    if hit is None and not phrase.isascii():
        phrase = strip_accents(phrase)
        hit = variants.get(phrase)
    # French INN: dapagliflozine, tinzaparine, nitrofurantoïne (not a class: "statine")
    if (hit is None and lang == "fr" and len(phrase) >= 7 and phrase.endswith("e") and " " not in phrase
            and phrase[:-1] not in lexicon.stopwords):
        hit = variants.get(phrase[:-1])
    return hit


#: a number with these words just before it is a measurement, not a dose ("saturation 98 %", "weighs 62 kg")
MEASUREMENT_CUES = frozenset({"saturation", "saturating", "sat", "sats", "spo2", "sature", "saturé", "saturée",
                              "weighs", "weight", "weighing", "poids", "pèse", "pese", "pesant"})
ALCOHOL = (("of", "alcohol"), ("d", "alcool"), ("alcohol",), ("alcool",))


def _doses(words: list[str]) -> tuple[list[Dose], list[tuple[int, float]]]:
    doses: list[Dose] = []
    numbers: list[tuple[int, float]] = []
    n_words = len(words)
    i = 0
    while i < n_words:
        value = _number(words[i]) if words[i][0].isdigit() else None
        if value is None:
            i += 1
            continue
        first = i
        if i and words[i - 1] in ("point", "virgule") and words[i].isdigit() and (
                i < 2 or not words[i - 2][0].isdigit()):
            value, first = float("0." + words[i]), i - 1  # "point five milligrams" is 0.5 mg, not 5 mg
        numbers.append((i, value))
        if i >= 2 and words[i - 1] == "/" and words[i - 2][0].isdigit():
            i += 1  # "sacubitril/valsartan 24/26 mg": the strengths of a combination, not a 26 mg dose
            continue
        j = i + 1
        high = None
        if j + 1 < n_words and words[j] in RANGE_WORDS and words[j + 1][0].isdigit():
            high = _number(words[j + 1])
            j += 2
        if words[j:j + 3] == ["and", "a", "half"]:
            value, j = value + 0.5, j + 3  # "one and a half grams"
        if j + 1 < n_words and words[j] == "international":
            j += 1  # "international units"
        unit = UNITS.get(words[j]) if j < n_words else None
        if unit is None and j + 1 < n_words and words[j] == "per" and words[j + 1] == "cent":
            unit, j = "%", j + 1
        if unit is None or (unit in ("%", "kg") and MEASUREMENT_CUES.intersection(words[max(0, i - 3):i])) or (
                unit == "units" and any(tuple(words[j + 1:j + 1 + len(a)]) == a for a in ALCOHOL)):
            i += 1
            continue
        if unit == "units" and j + 1 < n_words and words[j + 1] in ("internationales", "internationale"):
            j += 1  # "unités internationales"
        last = j
        if j + 2 < n_words and words[j + 1] == "et" and words[j + 2] in ("demi", "demie"):
            value, last = value + 0.5, j + 2  # "deux milligrammes et demi"
        per: list[str] = []
        k = last + 1
        while k + 1 < n_words:
            if words[k] in ("et", "and") and k + 2 < n_words and words[k + 1] in PER_WORDS:
                k += 1  # "par kilo et par jour"
            if words[k] in PER_WORDS and words[k + 1] == "m" and k + 2 < n_words and words[k + 2] == "2":
                per.append("m2")  # "mg/m2" is tokenized m, 2
                last, k = k + 2, k + 3
                continue
            if not (words[k] in PER_WORDS and words[k + 1] in PER_UNITS):
                break
            if PER_UNITS[words[k + 1]] in ("day", "week") and not per:
                break  # "500 mg a day", "900 mg/day", "75 mg par jour": a frequency, not a per-unit dose
            per.append(PER_UNITS[words[k + 1]])
            last = k + 1
            k += 2
        surface = _SLASH.sub("/", " ".join(words[first:last + 1]))
        doses.append(Dose(value, unit, tuple(per), first, last, surface, high))
        i = last + 1
    return doses, numbers


#: a negation cue counts when a clinical term follows within this many words ("no chest pain",
#: "ne présente pas de douleur thoracique"); cues that follow their term ("pain: none",
#: "fièvre absente") look back as far; a side counts with a term on either side ("left knee",
#: "genou gauche")
NEGATION_SCOPE_AFTER = 6
NEGATION_SCOPE_BEFORE = 4
LATERALITY_SCOPE = 3
DISCOURSE_BEFORE_SIDE = frozenset({"all", "that's", "thats", "just", "exactly", "quite"})  # "all right"
POST_NEGATIONS = frozenset({"none", "negative", "absent", "négatif", "négative", "absence", "absente", "absents"})


def side(word: str) -> str:
    """The side a word names: "right-sided", "left-hand" → right, left (the word otherwise)."""
    return word.split("-", 1)[0] if "-" in word else word


@lru_cache(maxsize=8)
def _anchor_matcher(lang: str, kinds: tuple[str, ...]) -> Callable[[str], bool]:
    anchors = critical_terms().get("anchors", {})
    entries = [e for kind in kinds for e in anchors.get(kind, {}).get(lang, [])]
    exact = frozenset(e for e in entries if not e.endswith("*"))
    prefixes = tuple(e[:-1] for e in entries if e.endswith("*"))

    @lru_cache(maxsize=1 << 14)
    def is_anchor(word: str) -> bool:
        return word in exact or word.startswith(prefixes)

    return is_anchor


def _anchored(i: int, anchored: list[bool], after: int, before: int) -> bool:
    """A clinical term within `after` words after position i or `before` words before it."""
    return any(anchored[i + 1:i + 1 + after]) or any(anchored[max(0, i - before):i])


@text_cache()
def extract(text: str, language: str, lexicon: Lexicon) -> Extraction:
    """Every clinical mention in `text`. Cached: references are analysed once."""
    lang = _lang(language)
    folded, words = tokenize(text, lang)
    terms = critical_terms()
    drugs = _drugs(words, lexicon, lang)
    doses, numbers = _doses(words)
    routes = [(i, ROUTES[lang][w]) for i, w in enumerate(words) if w in ROUTES[lang]]
    negation_words = set(terms["negation"][lang])
    laterality = terms["laterality"][lang]
    homophones = {w for pair in terms["near_homophones"][lang] for w in pair}
    is_body = _anchor_matcher(lang, ("body",))
    is_finding = _anchor_matcher(lang, ("findings",))
    body = [is_body(w) for w in words]
    anchored = [b or is_finding(w) for b, w in zip(body, words, strict=True)]
    for first, last in [(d.first, d.last) for d in drugs] + [(d.first, d.last) for d in doses]:
        for k in range(first, last + 1):
            anchored[k] = True
    return Extraction(
        text=folded, words=words, drugs=drugs, doses=doses, numbers=numbers, routes=routes,
        frequencies=[m.group() for m in FREQUENCY[lang].finditer(folded)],
        schedules=_schedules(folded, lang),
        negations=[i for i, w in enumerate(words) if w in negation_words and _anchored(
            i, anchored, NEGATION_SCOPE_AFTER, NEGATION_SCOPE_BEFORE if w in POST_NEGATIONS else 0)],
        laterality=[(i, side(w)) for i, w in enumerate(words) if side(w) in laterality
                    and not (i and words[i - 1] in DISCOURSE_BEFORE_SIDE)
                    and (_anchored(i, body, LATERALITY_SCOPE, LATERALITY_SCOPE) or "-" in w)],
        homophones=[(i, w) for i, w in enumerate(words) if w in homophones])
