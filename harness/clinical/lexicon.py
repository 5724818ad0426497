"""Drug lexicon: the `drug-named-entity-recognition` dictionary (MIT; brands and synonyms
mapped to canonical names), a bundled French supplement, an optional user formulary, and
the bundled list of known look-alike / sound-alike pairs."""

from __future__ import annotations

import bz2
import contextlib
import csv
import hashlib
import importlib.util
import marshal
import os
import pickle
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from harness.errors import Problem, not_utf8

DATA = Path(str(files("harness.clinical") / "data"))
#: words the lexicon lists as drugs that, in clinical prose, are almost always something else
EXTRA_STOPWORDS = {"max", "iv", "pain", "plan", "today", "once", "daily", "units", "unit", "dose", "doses", "tab",
                   "patch", "night", "level", "film", "base", "left", "right", "clear", "check", "stop", "start",
                   "give", "mg", "ml", "bid", "tid", "prn", "ice", "hope", "will", "may", "over", "soft", "sun",
                   "flu", "line", "cold", "weekly", "monday", "mondays", "after", "before", "every", "minute",
                   "hour", "hours", "week", "weeks", "month", "day", "days", "heure", "heures", "jour", "jours",
                   "soir", "matin", "par", "pour", "dans", "avec", "sans", "le", "la", "les", "des", "une", "un"}
FORM_WORDS = {"patch", "patches", "tablet", "tablets", "injection", "solution", "cream", "spray", "syrup",
              "capsule", "capsules", "suppository", "drops", "infusion", "oral"}
SALT_WORDS = FORM_WORDS | {
    "sodium", "hydrochloride", "axetil", "sulfate", "sulphate", "hyclate", "disodium", "potassium", "calcium",
    "magnesium", "mesylate", "maleate", "tartrate", "succinate", "citrate", "acetate", "phosphate", "bromide",
    "anhydrous", "monohydrate", "trihydrate", "dihydrate", "hcl", "mofetil", "dipropionate", "propionate",
    "furoate", "besylate", "besilate", "fumarate", "erbumine", "arginine", "trometamol", "tromethamine"}
#: drug classes and everyday words the source dictionary lists as drugs: not one substance
CLASS_WORDS = {"statin", "statins", "anticoagulant", "anticoagulants", "antibiotic", "antibiotics", "sulfate",
               "sulfates", "sulphate", "vitamin", "vitamins", "steroid", "steroids", "opioid", "opioids",
               "diuretic", "diuretics", "antidepressant", "antidepressants", "insulins", "antibiotique",
               "antibiotiques", "vitamine", "vitamines"}
#: a word after these is a person's name, even when it equals a brand ("Mrs Allegra Jones")
TITLES = {"mr", "mrs", "ms", "miss", "dr", "pr", "prof", "m", "mme", "mlle", "madame", "monsieur", "docteur",
          "professeur"}


def strip_accents(text: str) -> str:
    """céfépime → cefepime, nitrofurantoïne → nitrofurantoine (µ is kept: it is a unit)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def fold(text: str) -> str:
    """Lowercase, NFKC, typographic apostrophes to ASCII."""
    # NFKC turns the micro sign into a Greek mu; units are written with the micro sign
    return unicodedata.normalize("NFKC", text).replace("’", "'").replace("μ", "µ").lower()


def _package_stopwords() -> set[str]:
    """The stopword list of drug-named-entity-recognition, read without importing the package
    (whose import builds an n-gram index for seconds and touches the home directory)."""
    spec = importlib.util.find_spec("drug_named_entity_recognition")
    if spec is None or not spec.submodule_search_locations:
        return set()
    path = Path(next(iter(spec.submodule_search_locations))) / "util.py"
    util_spec = importlib.util.spec_from_file_location("_dner_util", path)
    if util_spec is None or util_spec.loader is None:
        return set()
    module = importlib.util.module_from_spec(util_spec)
    util_spec.loader.exec_module(module)
    return set(getattr(module, "stopwords", set()))


@dataclass(eq=False)  # hashed by identity: one lexicon object per formulary, cached
class Lexicon:
    variants: dict[str, str]                 # folded surface form → canonical name
    max_words: int
    stopwords: set[str]
    confusables: dict[frozenset[str], str] = field(default_factory=dict)
    #: phrases that begin a longer name ("acide", "acide acetylsalicylique" …): the matcher
    #: extends a phrase only while it is one of them
    prefixes: frozenset[str] = frozenset()
    #: the substances of each combination product → its name (Augmentin's, co-amoxiclav's …)
    combinations: dict[frozenset[str], str] = field(default_factory=dict)

    def canonical(self, name: str) -> str:
        return self.variants.get(fold(name), fold(name))

    def substances(self, name: str) -> frozenset[str]:
        """The active substances a drug name stands for, one key each: brands, spellings and
        salts of one substance share a key ("Doliprane", "paracetamol", "acetaminophen";
        "valproate de sodium", "valproic acid"), a combination is the set of its substances
        ("Augmentin", "co-amoxiclav", "amoxicillin+clavulanic acid")."""
        return substances(self, name)

    def known_confusable(self, a: str, b: str) -> str | None:
        return self.confusables.get(frozenset((a, b)))


_COMBINATION = re.compile(r"\s*(?:\+|/|,? and | with |, (?!human))\s*")
_ACID = re.compile(r"\b(\w+)ic acid\b")


def substance_key(name: str) -> str:
    """One spelling per substance: salts and dosage forms dropped, "X-ic acid" read as "X-ate"
    (valproic acid = valproate, clavulanic acid = clavulanate)."""
    raw = _ACID.sub(r"\1ate", name).split()
    words = [w for k, w in enumerate(raw) if w not in SALT_WORDS
             and not (w in ("de", "d") and k + 1 < len(raw) and raw[k + 1] in SALT_WORDS)]  # "de sodium"
    return " ".join(words) or name


def substances(lexicon: Lexicon, name: str) -> frozenset[str]:
    folded = fold(name).strip()
    canonical = lexicon.variants.get(folded) or lexicon.variants.get(strip_accents(folded), folded)
    parts = [p for p in _COMBINATION.split(canonical) if p]
    return frozenset(substance_key(lexicon.variants.get(p, p)) for p in parts)


def _base_name(canonical: str, canonicals: set[str]) -> str:
    """'cefuroxime axetil' → 'cefuroxime' when the base is itself a drug: salts are one drug."""
    words = canonical.split()
    kept = [w for w in words if w not in SALT_WORDS]
    base = " ".join(kept)
    return base if kept and len(kept) < len(words) and base in canonicals else canonical


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:  # a byte-order mark, as Excel writes
        return [(fold(r["variant"]), fold(r["canonical"])) for r in csv.DictReader(fh)]


def formulary_problems(path: Path) -> list[Problem]:
    """What is wrong with a formulary file, each with its line, for `harness validate`: a
    header without variant and canonical, an empty cell, text that is not UTF-8 (each
    crashed the run that built the scorer)."""
    problems: list[Problem] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("variant", "canonical") if c not in (reader.fieldnames or [])]
            if missing:
                return [Problem(str(path), "", "header lacks " + " and ".join(missing), 1,
                                expected="variant,canonical", found=",".join(reader.fieldnames or []))]
            start = 2
            for row in reader:
                if not (row.get("variant") or "").strip() or not (row.get("canonical") or "").strip():
                    problems.append(Problem(str(path), "", "empty variant or canonical", start,
                                            expected="two names, e.g. hospicef,ceftriaxone"))
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        return [not_utf8(path, exc, what="CSV")]
    except csv.Error as exc:
        return [Problem(str(path), "", f"not a readable CSV file: {exc}")]
    return problems[:20]


#: bump when the way the lexicon is built changes: built lexicons cached on disk are rebuilt
LEXICON_FORMAT = 2


def _built_cache(formulary: str | None) -> Path | None:
    """Where the built lexicon is kept between processes (marshal: plain data, no code runs
    on load), keyed on everything it is built from; None when there is nowhere to keep it."""
    spec = importlib.util.find_spec("drug_named_entity_recognition")
    if spec is None or not spec.submodule_search_locations:
        return None
    digest = hashlib.sha256(f"{LEXICON_FORMAT}".encode())
    sources = [Path(next(iter(spec.submodule_search_locations))) / "drug_ner_dictionary.pkl.bz2",
               *sorted(DATA.glob("*.csv")), *([Path(formulary)] if formulary else [])]
    for source in sources:
        try:
            digest.update(source.read_bytes() if source.suffix == ".csv" else repr(source.stat().st_size).encode())
        except OSError:
            return None
        digest.update(str(source).encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "avec-harness"
    return root / f"lexicon-{digest.hexdigest()[:24]}.marshal"


@lru_cache(maxsize=8)
def load_lexicon(formulary: str | None = None) -> Lexicon:
    """The merged lexicon; `formulary` is a CSV with columns variant,canonical (optional).
    Built once (about a second) and kept on disk for the next processes (~0.1 s to read)."""
    cached = _built_cache(formulary)
    if cached is not None:
        with contextlib.suppress(OSError, EOFError, ValueError, TypeError):
            fields = marshal.loads(cached.read_bytes())
            return Lexicon(*fields)
    lexicon = _build_lexicon(formulary)
    if cached is not None:
        with contextlib.suppress(OSError):
            cached.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(marshal.dumps((lexicon.variants, lexicon.max_words, lexicon.stopwords,
                                           lexicon.confusables, lexicon.prefixes, lexicon.combinations)))
            tmp.chmod(0o600)
            tmp.replace(cached)  # atomic: a concurrent reader sees the old file or the whole new one
    return lexicon


def _build_lexicon(formulary: str | None) -> Lexicon:
    spec = importlib.util.find_spec("drug_named_entity_recognition")
    variants: dict[str, str] = {}
    if spec is None or not spec.submodule_search_locations:
        # never degrade silently to a lexicon of a few French names
        raise RuntimeError("the drug lexicon needs the package drug-named-entity-recognition (pip install it)")
    pkl = Path(next(iter(spec.submodule_search_locations))) / "drug_ner_dictionary.pkl.bz2"
    with bz2.open(pkl, "rb") as fh:
        data = pickle.load(fh)
    canonicals = {fold(c) for c in data["drug_canonical_to_data"]}
    for variant, targets in data["drug_variant_to_canonical"].items():
        if targets:
            variants[fold(variant)] = _base_name(fold(targets[0]), canonicals)
    for supplement in ("drugs_en.csv", "drugs_fr.csv"):
        for variant, canonical in _read_pairs(DATA / supplement):
            variants[variant] = canonical
    if formulary:
        for variant, canonical in _read_pairs(Path(formulary)):
            variants[variant] = canonical
    # one identity per substance: a canonical name that the supplements map to another
    # (thyroxine → levothyroxine, colecalciferol → cholecalciferol) is followed once
    for variant, canonical in variants.items():
        target = variants.get(canonical)
        if target is not None and target != canonical:
            variants[variant] = target
    for variant in list(variants):  # accents optional: céfépime = cefepime, kétoprofène = ketoprofene
        variants.setdefault(strip_accents(variant), variants[variant])
    combinations: dict[frozenset[str], str] = {}
    for canonical in set(variants.values()):
        parts = [p for p in _COMBINATION.split(canonical) if p]
        if len(parts) > 1:
            combinations.setdefault(frozenset(substance_key(variants.get(p, p)) for p in parts), canonical)
    stop = {fold(w) for w in _package_stopwords()} | EXTRA_STOPWORDS | CLASS_WORDS
    confusables: dict[frozenset[str], str] = {}
    with (DATA / "confusables.csv").open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            confusables[frozenset((fold(r["drug_a"]), fold(r["drug_b"])))] = r["source"]
    max_words = 5
    prefixes = {" ".join(words[:k]) for words in (v.split() for v in variants) if len(words) <= max_words
                for k in range(1, len(words))}
    return Lexicon(variants, max_words, stop, confusables, frozenset(prefixes), combinations)


@lru_cache(maxsize=1)
def critical_terms() -> dict[str, Any]:
    return dict(yaml.safe_load((DATA / "critical_terms.yaml").read_text(encoding="utf-8")))
