"""Rule-based detection of personal and health identifiers in French and English text.

HAS key 2.4: without an assurance of confidentiality no request may carry names, initials,
dates, addresses, telephone numbers or social security numbers. Rules, not a trained model:
they run offline, fast (megabytes a second) and each one is tested; checksums (NIR key,
IBAN mod 97, NHS mod 11) keep look-alike numbers out. Overlaps are resolved by rule order
(an e-mail is not also a name, a NIR not also a phone number).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import NamedTuple

KINDS = ("EMAIL", "IBAN", "NIR", "PHONE", "HOSPITAL_ID", "BIRTH_DATE", "DATE", "AGE", "ADDRESS", "POSTCODE_CITY",
         "NAME")


class Entity(NamedTuple):
    """An identifier found: its type, where, the text, and a note (a failed check digit...).
    A named tuple: a scan of 20 MB builds 150,000 of them, three times faster than a frozen
    dataclass."""

    kind: str
    start: int
    end: int
    text: str
    detail: str = ""


_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zß-öø-ÿ"
#: a capitalised name word: "Morel", "Jean-Pierre", "Lefèvre", "O'Neil"; or one in capitals: "DUPONT"
_CAP = rf"(?:[{_UP}][{_LOW}]+(?:['’-][{_UP}][{_LOW}]+)*|[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})?)"
_TITLE = (r"(?:M\.|Mr\.?|Mrs\.?|Ms\.?|Miss|Mme\.?|Mlle\.?|Monsieur|Madame|Mademoiselle|Dr\.?|Docteur|"
          r"Pr\.?|Professeur|Professor|Prof\.?)")
_PARTICLE = r"(?:de |du |des |d'|van |von |Le |La |le |la )?"
_MONTHS_FR = (r"(?:janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|"
              r"décembre|decembre)")
_MONTHS_EN = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
              r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?")
_DAYS = (r"(?:lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|Monday|Tuesday|Wednesday|Thursday|Friday|"
         r"Saturday|Sunday)")
_STREET_FR = (r"(?:rue|avenue|av\.|boulevard|bd|place|allée|allee|impasse|chemin|route|quai|cours|square|passage|"
              r"voie|faubourg|esplanade|résidence|lotissement)")
_STREET_EN = (r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Way|Court|Ct|Crescent|Place|Square|"
              r"Boulevard|Blvd|Terrace|Gardens|Row|Hill|Grove|Mews|Parade|Walk)")
_BIRTH_CUE = (r"(?i:n[ée]e? le|n[ée]e?|date de naissance\s?:?|DDN\s?:?|born on|born|DOB\s?:?|D\.O\.B\.?\s?:?|"
              r"date of birth\s?:?)")
_RELATION = (r"(?:épouse|époux|mari|femme|fils|fille|enfant|frère|sœur|soeur|mère|père|wife|husband|son|daughter|"
             r"child|brother|sister|mother|father|partner)")


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    text = Path(str(files("harness.pii") / "data" / "first_names.txt")).read_text(encoding="utf-8")
    names = {w for line in text.splitlines() if not line.startswith("#") for w in line.split()}
    return frozenset(names | {_plain(n) for n in names})


def _plain(word: str) -> str:
    """René → Rene, Océane → Oceane: names are often typed without their accents."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))


def nir_key_ok(digits: str) -> bool:
    """French NIR: 13 characters + key = 97 − (number mod 97); Corsica 2A → 19, 2B → 18."""
    body, key = digits[:13].upper(), digits[13:]
    body = body.replace("2A", "19").replace("2B", "18")
    return body.isdigit() and key.isdigit() and 97 - int(body) % 97 == int(key)


def iban_ok(text: str) -> bool:
    s = re.sub(r"\s", "", text).upper()
    if not 15 <= len(s) <= 34:
        return False
    rotated = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rotated)) % 97 == 1


def nhs_ok(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if len(digits) != 10:
        return False
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    return (0 if check == 11 else check) == int(digits[9])


def _preceded(m: re.Match[str], bad: Callable[[str], bool]) -> bool:
    """Whether the character before a match is one that must not stand there."""
    return m.start() > 0 and bad(m.string[m.start() - 1])


def _word_or_plus(c: str) -> bool:
    return c.isalnum() or c == "+"


def _wordy(c: str) -> bool:
    """A character `\\b` counts as part of a word."""
    return c.isalnum() or c == "_"


Accept = Callable[[re.Match[str]], tuple[int, int, str] | None]
Rule = tuple[str, re.Pattern[str], Accept | None]
#: a rule and what a text must hold for it to match: "@", "digit", or "" (anything)
GatedRule = tuple[str, re.Pattern[str], Accept | None, str]


def _rules(hospital_patterns: tuple[str, ...]) -> list[GatedRule]:
    # Patterns start with a literal or a digit where they can, and the "not preceded by" tests
    # are made in Python (`alone`): a leading look-behind stops `re` from skipping ahead to
    # candidate characters, and costs ten times the scan.
    def group(n: int) -> Callable[[re.Match[str]], tuple[int, int, str] | None]:
        return lambda m: (m.start(n), m.end(n), "")

    def word_start(accept: Callable[[re.Match[str]], tuple[int, int, str] | None] | None = None
                   ) -> Callable[[re.Match[str]], tuple[int, int, str] | None]:
        # the leading `\b` of a pattern, tested here: `re` skips to candidate characters only
        # when a pattern starts with a plain character class (2-3x faster per rule)
        def check(m: re.Match[str]) -> tuple[int, int, str] | None:
            if _preceded(m, _wordy):
                return None
            return accept(m) if accept is not None else (m.start(), m.end(), "")
        return check

    def alone(bad: Callable[[str], bool] | None, test: Callable[[str], bool] | None = None,
              ) -> Callable[[re.Match[str]], tuple[int, int, str] | None]:
        def accept(m: re.Match[str]) -> tuple[int, int, str] | None:
            if bad is not None and _preceded(m, bad):
                return None
            return (m.start(), m.end(), "") if test is None or test(m.group()) else None
        return accept

    def email(m: re.Match[str]) -> tuple[int, int, str] | None:
        local = _LOCAL_PART.search(m.string, max(0, m.start() - 64), m.start())
        return None if local is None else (local.start(), m.end(), "")

    def nir(m: re.Match[str]) -> tuple[int, int, str] | None:
        if _preceded(m, str.isdigit):
            return None
        digits = re.sub(r"[\s.]", "", m.group())
        return m.start(), m.end(), "" if nir_key_ok(digits) else "key does not match (a typo, or another number)"

    def date(m: re.Match[str]) -> tuple[int, int, str] | None:
        if _preceded(m, lambda c: c.isdigit() or c in "/."):
            return None
        day, month = int(m["d"]), int(m["m"])
        return (m.start(), m.end(), "") if 1 <= day <= 31 and 1 <= month <= 12 else None

    def nhs(m: re.Match[str]) -> tuple[int, int, str] | None:
        if _preceded(m, str.isalnum):
            return None
        if nhs_ok(m.group()):
            return m.start(), m.end(), ""
        cue = _NHS_CUE.search(m.string, max(0, m.start() - 20), m.start())
        return (m.start(), m.end(), "check digit does not match") if cue else None

    def digits_between(low: int, high: int) -> Callable[[str], bool]:
        return lambda s: low <= sum(c.isdigit() for c in s) <= high

    months = f"(?:{_MONTHS_FR}|{_MONTHS_EN})"
    numeric_first = rf"(?:1er|\d\d?)(?:st|nd|rd|th)?(?:\s+(?:au|to)\s+\d{{1,2}})?\s+{months}(?:\s+\d{{4}})?"
    month_first = rf"(?:{_MONTHS_EN}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|{months}\s+\d{{4}})"

    def uk_city(m: re.Match[str]) -> tuple[int, int, str] | None:
        # the postcode first ("SW1A 1AA"), then the town before it: one rule per capitalised
        # word of the text cost more than every other rule
        city = _UK_TOWN_BEFORE.search(m.string, max(0, m.start() - 60), m.start())
        return None if city is None else (city.start(), m.end(), "")

    custom: list[Rule] = [("HOSPITAL_ID", re.compile(p), None) for p in hospital_patterns]
    rules: list[Rule] = [
        ("EMAIL", re.compile(r"@[\w-]+(?:\.[\w-]+)+"), email),
        ("IBAN", re.compile(r"[A-Z][A-Z]\d\d(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?\b"),
         alone(_wordy, iban_ok)),
        ("NIR", re.compile(r"[12378][\s.]?\d{2}[\s.]?(?:0[1-9]|1[0-2]|[2-9]\d)[\s.]?(?:\d{2}|2[AB])"
                           r"[\s.]?\d{3}[\s.]?\d{3}[\s.]?\d{2}(?!\d)"), nir),
        # NHS numbers: after their cue whatever their check digit (a typo is still the patient's), alone
        # only when the mod-11 check holds (a US phone number has the same 3-3-4 shape)
        ("HOSPITAL_ID", re.compile(r"\d\d\d\s\d{3}\s\d{4}\b"), nhs),
        ("PHONE", re.compile(r"(?:\+33\s?(?:\(0\)\s?)?[1-9]|0033\s?[1-9]|0[1-9])(?:[\s.-]?\d{2}){4}(?!\d)"),
         alone(_word_or_plus)),
        ("PHONE", re.compile(r"\+\d{1,3}[\s.-]?(?:\(0\)\s?)?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?!\d)"),
         alone(_word_or_plus)),
        ("PHONE", re.compile(r"0\d{2,4}\s?\d{3,4}\s?\d{3,4}(?!\d)"), alone(_word_or_plus, digits_between(10, 11))),
        ("PHONE", re.compile(r"\(\d{3}\)\s?\d{3}[-.\s]\d{4}\b"), None),
        ("HOSPITAL_ID", re.compile(
            # the cue words spelt out in both cases: an alternation of plain words lets `re`
            # skip ahead, `[Nn]` does not
            r"(?:IPP|NDA|N° de séjour|n° de séjour|Numéro de séjour|numéro de séjour|Séjour|séjour|Dossier|"
            r"dossier|Épisode|épisode|Episode|episode|MRN|Hospital number|hospital number|Record|record|"
            r"Admission|admission|Patient number|patient number)\s*[:#°n]*\s*"
            r"((?:MRN\s)?(?:[A-Z]{1,3}-?)?\d[\d-]{4,14}\d)\b"), word_start(group(1))),
        *custom,
        ("DATE", re.compile(r"(?P<d>\d\d?)[/.-](?P<m>\d{1,2})[/.-](?:\d{4}|\d{2})(?![\d/])"), date),
        ("DATE", re.compile(r"\d\d\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b"), alone(str.isalnum)),
        # written dates: with a day name first, then without (an optional group in front keeps
        # `re` from skipping ahead); the longer is taken first
        ("DATE", re.compile(rf"{_DAYS}\s+(?:{numeric_first}|{month_first})\b"), word_start()),
        ("DATE", re.compile(rf"{numeric_first}\b"), word_start()),
        ("DATE", re.compile(rf"\b{month_first}\b"), None),
        ("DATE", re.compile(r"(?:depuis|since|en|in)\s+((?:19|20)\d{2})\b(?!\s*(?:mg|g|ml|units|UI))"),
         word_start(group(1))),
        ("AGE", re.compile(r"(?:9\d|1[0-2]\d)(?:\s?ans|\s?years?[\s-]old|-year-old|\s?yo)\b"), word_start()),
        ("AGE", re.compile(r", (9\d|1[0-2]\d)(?=[,;.])"),
         lambda m: (m.start(1), m.end(1), "") if m.start() and not _preceded(
             m, lambda c: not (c.isalnum() or c == ".")) else None),
        ("ADDRESS", re.compile(rf"\d\d{{0,3}}(?:\s?(?:bis|ter))?,?\s+{_STREET_FR}\s+[^,;:\n()]{{2,40}}?"
                               r"(?=[,;:\n()]|\.(?:\s|$)|$)"), word_start()),
        ("ADDRESS", re.compile(rf"\d\d{{0,4}}\s+(?:[{_UP}][{_LOW}]+\s+){{1,3}}{_STREET_EN}\b"), word_start()),
        ("POSTCODE_CITY", re.compile(rf"\d\d\d\d\d\s+(?:[{_UP}][{_LOW}'’-]+)(?:[\s-](?:[{_UP}][{_LOW}'’-]+|sur|en|"
                                     rf"lès|les))*"), word_start()),
        ("POSTCODE_CITY", re.compile(r"[A-Z][A-Z]?\d[A-Z\d]?\s\d[A-Z]{2}\b"), word_start(uk_city)),
    ]
    # what a text must hold for a rule to match: every built-in rule but the e-mail one
    # matches a digit, so a text without one skips them (a third of the scan of a short
    # prompt); a hospital's own patterns always run
    def needs(rule: Rule) -> str:
        return "" if any(rule is c for c in custom) else "@" if rule[0] == "EMAIL" else "digit"

    return [(*rule, needs(rule)) for rule in rules]


_NAME_RULES = [
    # a title and one to three name words: "M. Jean-Pierre Morel", "Dr Lefèvre", "Mme Thi Lan Nguyen"
    re.compile(rf"{_TITLE}\s+(?:{_CAP}\.?\s+)?{_PARTICLE}{_CAP}(?:\s+{_PARTICLE}{_CAP}){{0,2}}"),
    # family name in capitals, then a given name: "DUPONT Marie"
    re.compile(rf"[{_UP}][{_UP}]+(?:-[{_UP}]{{2,}})?\s+[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?"),
    # "la famille Nguyen", "the Nguyen family"
    re.compile(rf"famille ([{_UP}][{_LOW}]+)|[Tt]he ([{_UP}][{_LOW}]+)(?= family)"),
]
_NHS_CUE = re.compile(r"NHS (?:number|no\.?)\s*:?\s*$")
_LOCAL_PART = re.compile(r"[\w.+-]+$")
_BIRTH_BEFORE = re.compile(rf"{_BIRTH_CUE}\s*$")
_BIRTH_PLACE = re.compile(rf"\s+à\s+{_CAP}")
_WORD = re.compile(rf"[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?")
# a given name right after a street type is a street ("boulevard Victor Hugo"); "Dr" and "St" are
# left out here, they are titles and saints as often as Drive and Street
_STREET_BEFORE = re.compile(rf"\b(?:{_STREET_FR}|{_STREET_EN.replace('Dr|', '').replace('St|', '')})\s*$",
                            re.IGNORECASE)
_RELATION_BEFORE = re.compile(rf"\b{_RELATION}\s*:?\s*$", re.IGNORECASE)
#: words after which two capitalised words are a person: "Amie : Océane Blanchard", "patient Rene Marshall"
_PERSON_CUE_AHEAD = re.compile(r"(?:patient|patiente|ami|amie|friend|contact|next of kin|personne de confiance|"
                               r"personne à prévenir|infirmière|infirmier|nurse|interne|kinésithérapeute|"
                               r"physiotherapist|titulaire|holder|bénéficiaire|assurée?|seen|vu|vue)\s*:?\s*",
                               re.IGNORECASE)


_UK_TOWN_BEFORE = re.compile(rf"\b(?:[{_UP}][{_LOW}]+\s)?[{_UP}][{_LOW}]+\s+$")
_PERSON_CUE_LOWER = re.compile(_PERSON_CUE_AHEAD.pattern)
_FAMILY = re.compile(rf"(?:\s+(?:Le |La )?{_CAP}){{1,2}}")
_TWO_WORDS = re.compile(rf"{_CAP}\s+{_PARTICLE}{_CAP}\b")
_CLOSING = re.compile(r"\s*\)")
_DIGIT = re.compile(r"\d")
_PUNCT = re.compile(r"[,.;]")


def _names(text: str) -> Iterable[tuple[int, int]]:
    # the rules start with a plain character or word list, not `\b`, so that `re` can skip
    # ahead; the word boundary is tested here
    names = first_names()
    for m in _NAME_RULES[1].finditer(text):
        if m.group().split()[-1] in names and not _preceded(m, _wordy):
            yield m.start(), m.end()
    for m in _NAME_RULES[2].finditer(text):
        g = 1 if m.start(1) != -1 else 2
        if not _preceded(m, _wordy):
            yield m.start(g), m.end(g)
    for m in _NAME_RULES[0].finditer(text):
        if not _preceded(m, _wordy):
            yield m.start(), m.end()
    # cue words are rarer than pairs of capitalised words; searched case-sensitively in the
    # lowercased text (IGNORECASE makes `re` test every position), when lowering keeps offsets
    lowered = text.lower()
    cues = (_PERSON_CUE_LOWER.finditer(lowered) if len(lowered) == len(text) else _PERSON_CUE_AHEAD.finditer(text))
    for cue in cues:
        if _preceded(cue, _wordy):  # the lowercased text: a letter stays a letter
            continue
        pair = _TWO_WORDS.match(text, cue.end())
        if pair is not None:
            yield pair.start(), pair.end()
    # a given name from the bundled lists, then family names: "Sophie Dupont", "Jean Valjean"
    for m in _WORD.finditer(text):
        if m.group() not in names or _STREET_BEFORE.search(text, max(0, m.start() - 20), m.start()):
            continue
        end = m.end()
        # family names after a given name; "de" only after a title ("Rose de Noël" is a flower)
        following = _FAMILY.match(text, end)
        if following and not _STREET_BEFORE.search(following.group()):
            yield m.start(), following.end()
        elif _RELATION_BEFORE.search(text, max(0, m.start() - 30), m.start()) or _CLOSING.match(text, end):
            yield m.start(), end  # "son fils Youssef", "épouse Jeanne", "(Youssef)"


def scan(text: str, hospital_patterns: Iterable[str] = ()) -> list[Entity]:
    """Every identifier found in `text`, in order; the rules hold for French and English."""
    found: list[Entity] = []
    covered = bytearray(len(text) + 1)  # characters already in an entity: linear, not pairwise

    def take(start: int, end: int) -> bool:
        if covered.find(1, start, end) != -1:
            return False
        covered[start:end] = b"\x01" * (end - start)
        return True

    present = {"": True, "@": "@" in text, "digit": _DIGIT.search(text) is not None}
    for kind, pattern, accept, needs in _compiled(tuple(hospital_patterns)):
        if not present[needs]:
            continue
        for m in pattern.finditer(text):
            span = accept(m) if accept is not None else (m.start(), m.end(), "")
            if span is None:
                continue
            start, end, detail = span
            if end > start and take(start, end):
                found.append(Entity(kind, start, end, text[start:end], detail))
    for k, e in enumerate(found):
        if e.kind == "DATE":
            cue = _BIRTH_BEFORE.search(text, max(0, e.start - 30), e.start)
            if cue is not None:
                end = e.end
                place = _BIRTH_PLACE.match(text, end)  # "né le 1er avril 1950 à Lyon"
                if place is not None:
                    end = place.end()
                    covered[e.end:end] = b"\x01" * (end - e.end)
                found[k] = Entity("BIRTH_DATE", cue.start(), end, text[cue.start():end])
    for start, end in sorted(_names(text), key=lambda s: (s[0], -(s[1] - s[0]))):
        if take(start, end):
            found.append(Entity("NAME", start, end, text[start:end]))
    return sorted(found, key=lambda e: e.start)


@lru_cache(maxsize=16)
def _compiled(hospital_patterns: tuple[str, ...]) -> list[GatedRule]:
    return _rules(hospital_patterns)


#: below this, a text is scanned in one piece (starting worker processes costs more)
PARALLEL_MIN_CHARS = 2_000_000


def scan_parallel(text: str, hospital_patterns: Iterable[str] = (), workers: int | None = None) -> list[Entity]:
    """`scan` of a large text on every core: cut at line breaks into pieces, one process per
    core; the same entities as `scan` for identifiers that do not span lines."""
    import os

    patterns = tuple(hospital_patterns)
    cores = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    if len(text) < PARALLEL_MIN_CHARS or cores < 2:
        return scan(text, patterns)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = max(len(text) // (cores * 4), 100_000)
    pieces, start = [], 0
    while start < len(text):
        end = text.find("\n", min(start + size, len(text)))
        end = len(text) if end == -1 else end + 1
        pieces.append((start, text[start:end]))
        start = end
    if "fork" not in multiprocessing.get_all_start_methods():
        with ProcessPoolExecutor(cores) as pool:
            results = pool.map(scan, [p for _, p in pieces], [patterns] * len(pieces))
            return [Entity(e.kind, e.start + offset, e.end + offset, e.text, e.detail)
                    for (offset, _), found in zip(pieces, results, strict=True) for e in found]
    # Forked workers inherit the text: only offsets go out and compact tuples come back
    # (pickling 20 MB of pieces and 150,000 entities cost a third of the scan)
    global _SHARED_TEXT
    _SHARED_TEXT = text
    try:
        with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("fork")) as pool:
            spans = pool.map(_scan_span, [(start, start + len(piece), patterns) for start, piece in pieces])
            return [Entity(kind, start, end, text[start:end], detail)
                    for found in spans for kind, start, end, detail in found]
    finally:
        _SHARED_TEXT = ""


_SHARED_TEXT = ""


def _scan_span(job: tuple[int, int, tuple[str, ...]]) -> list[tuple[str, int, int, str]]:
    start, end, patterns = job
    return [(e.kind, e.start + start, e.end + start, e.detail) for e in scan(_SHARED_TEXT[start:end], patterns)]
