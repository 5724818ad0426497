"""Schemas of the files users write (suite, task, adapter profile) and their loading.

Every problem is reported with the file, the field, its line where known, what
was expected and what was found; all problems are gathered before raising so a
user fixes them in one pass.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.energy import EnergyDeclaration
from harness.errors import ConfigError, Problem, did_you_mean
from harness.yamlio import Loc, line_of, load_yaml

DATA_CLASSES = ("public", "pseudonymised", "personal", "health")
DataClass = Literal["public", "pseudonymised", "personal", "health"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: requests in flight per adapter at most: each is a task of the event loop, and a suite
#: asking for 100,000,000 of them made the run take all the machine's memory, then hang
MAX_CONCURRENCY = 10_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- adapter profiles -------------------------------------------------------

class Prices(Strict):
    """Declared prices, used to compute the cost of each response."""

    currency: str = "EUR"
    input_per_million_tokens: float = 0.0
    output_per_million_tokens: float = 0.0
    per_audio_minute: float = 0.0
    per_request: float = 0.0


class Declarations(BaseModel):
    """HAS 1.4 / 4.1: what the provider declares; printed on every scorecard."""

    model_config = ConfigDict(extra="allow")
    provider: str = "undeclared"
    version: str | None = None
    hosting: str | None = None
    hds_certified: bool | None = None
    ce_marking: str | None = None
    intended_use: str | None = None
    contact: str | None = None
    data_clearance: DataClass = "public"
    current_practice: bool = Field(
        default=False, description="the non-AI baseline (HAS 3.3): what professionals produce today, usually replayed")
    encrypted_transport: bool | None = Field(
        default=None, description="requests travel encrypted (TLS); false forbids data above public")
    prices: Prices | None = None
    energy: EnergyDeclaration | None = Field(
        default=None, description="how this system's energy per response is estimated (HAS 2.7)")


class AdapterProfile(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    description: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    declarations: Declarations = Field(default_factory=Declarations)


# --- tasks ------------------------------------------------------------------

class HFSpec(Strict):
    name: str
    config: str | None = None
    split: str = "test"
    revision: str | None = None


class DatasetSpec(Strict):
    path: str | None = None
    hf: HFSpec | None = None
    format: Literal["jsonl", "csv", "parquet", "hf-disk"] | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    limit: int | None = Field(default=None, gt=0)
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV field separator, e.g. ';'")

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.path is None) == (self.hf is None):
            raise ValueError("give exactly one of 'path' or 'hf'")
        return self


class NormalizerSpec(Strict):
    """Text normalization applied to both reference and output before comparison.

    `preset: clinical` (default) keeps what matters in medicine apart (numbers to digits, one
    spelling per unit). `preset: whisper` is what published ASR leaderboards use: OpenAI
    Whisper's English normalizer (fillers removed, contractions expanded, American spelling,
    numbers standardized); other languages get Whisper's basic normalizer and, for French,
    French fillers. The other options adjust either preset."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # hashable: normalizers are cached per spec

    preset: Literal["clinical", "whisper"] = "clinical"
    lowercase: bool = True
    punctuation: bool = True
    numbers: bool = True
    units: bool = True
    fillers: tuple[str, ...] | None = Field(
        default=None, description="words removed from both sides; default: the preset's (whisper: um, uh, hmm, "
                                  "mm…; French: euh, bah, hein…; clinical: none)")
    equivalences: tuple[tuple[str, str], ...] = Field(
        default=(), description="spellings taken as the same, as a mapping: {ok: okay, all right: alright}")
    contractions: Literal["expand", "split", "keep"] | None = Field(
        default=None, description="English contractions: expand (it's → it is; whisper's default), split "
                                  "(it s; clinical default) or keep (its)")
    spelling: Literal["american", "british", "keep"] | None = Field(
        default=None, description="English spelling: american (whisper's default), british, keep (clinical default)")

    @field_validator("equivalences", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return tuple(sorted((str(k).lower(), str(v).lower()) for k, v in value.items()))
        return value

    @model_validator(mode="after")
    def _whisper_expands(self) -> NormalizerSpec:
        if self.preset == "whisper" and self.contractions in ("split", "keep"):
            raise ValueError("the whisper preset expands contractions; use the clinical preset to split or keep them")
        return self


class OnlineResolvers(Strict):
    """Online citation resolvers: off unless listed; cached, paced, identified."""

    resolvers: list[Literal["crossref", "ncbi", "doi"]] = Field(default_factory=list)
    contact: str = Field(description="an e-mail address the services can reach (Crossref and NCBI ask for one)")
    requests_per_second: float = Field(default=3.0, gt=0)
    base_urls: dict[str, str] = Field(default_factory=dict)


class CitationsSpec(Strict):
    """How the `citations` scorer checks the references an output cites (HAS key 2.5)."""

    catalogue: list[str] = Field(default_factory=list, description="CSV, JSONL, BibTeX, RIS, PubMed XML files")
    closed_world: bool = Field(default=False, description="a work absent from the catalogue does not exist")
    registry: str | None = Field(default=None, description="YAML registry of guidelines and their status")
    online: OnlineResolvers | None = None
    max_age_years: float | None = Field(default=None, gt=0)
    as_of: dt.date | None = Field(default=None, description="date for age checks (default: today)")
    cache_dir: str | None = None


class ScorerEntry(BaseModel):
    """A scorer with options: `{name: citations, catalogue: [refs.bib]}`; the options are
    checked against the scorer's own `Settings` model."""

    model_config = ConfigDict(extra="allow")
    name: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskConfig(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    description: str = ""
    language: str = "en"
    source_language: str | None = Field(
        default=None, description="translation: the source's language (`language` is the target's)")
    data_class: DataClass
    dataset: DatasetSpec
    scorers: list[str | ScorerEntry] | None = None
    prompt: str | None = None
    system_prompt: str | None = None
    choices: list[str] | None = None
    answer_pattern: str | None = None
    normalizer: NormalizerSpec = Field(default_factory=NormalizerSpec)
    # deprecated: these are the citations and medical scorers' options now (read, with a note)
    formulary: str | None = Field(default=None, description="deprecated: the medical scorers' `formulary`")
    citations: CitationsSpec | None = Field(default=None, description="deprecated: the citations scorer's options")
    critical_terms: list[tuple[str, str]] = Field(default_factory=list,
                                                  description="deprecated: the medical scorers' `critical_terms`")

    @field_validator("answer_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


# --- suites -----------------------------------------------------------------

class RetryPolicy(Strict):
    """Retries with exponential backoff and jitter on timeouts, connection errors, 408/409/429/5xx."""

    max_attempts: int = Field(default=4, ge=1)
    initial_wait_s: float = Field(default=0.5, ge=0)
    max_wait_s: float = Field(default=30.0, ge=0, description="longest single wait")
    max_total_wait_s: float = Field(default=120.0, ge=0)
    jitter: float = Field(default=0.25, ge=0, le=1)


class ClearanceOverride(Strict):
    """A written exception to the adapter's declared clearance, decided by the suite's owner:
    recorded in the manifest and printed on every report."""

    up_to: DataClass
    justification: str = Field(min_length=30, description="why this data may go to this system")
    approved_by: str = Field(min_length=2, description="who decided (a data-protection officer, say)")


class RayActors(Strict):
    """How an adapter's items are spread over Ray actors (`executor: ray`): each actor loads
    the system once and answers batches of requests."""

    actors: int = Field(default=2, ge=1, description="actors (model replicas) for this adapter")
    num_cpus: float = Field(default=1.0, ge=0, description="CPUs Ray reserves for each actor")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs Ray reserves for each actor")
    batch_size: int | None = Field(default=None, ge=1, description="requests sent to an actor in one call (null: "
                                                                    "the adapter's own default: 1 for a slow model, "
                                                                    "more for a quick script)")
    max_restarts: int = Field(default=3, ge=0, description="actors started again after one dies, in all")


class RaySettings(Strict):
    """Where the Ray cluster is (`executor: ray` or `scoring: ray`)."""

    address: str | None = Field(default=None, description="null: start a local Ray instance for the run; "
                                                          "'auto': the cluster this machine belongs to; "
                                                          "'HOST:PORT' or 'ray://HOST:10001'")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local instance (null: every core)")
    scoring_actors: int | None = Field(default=None, ge=1,
                                       description="actors for `scoring: ray` (null: the cluster's CPUs, at most 8)")
    namespace: str = "avec-harness"
    start_timeout_s: float = Field(default=600.0, gt=0, description="longest wait for an actor to start (a "
                                                                      "cluster scaling up, a model loading)")


class AdapterRef(Strict):
    path: str
    clearance_override: ClearanceOverride | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    adaptive_concurrency: bool = Field(default=True, description="halve in-flight requests on 429")
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    tasks: list[str] | None = None
    concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY)
    timeout_s: float | None = Field(default=None, gt=0)
    ray: RayActors | None = Field(default=None, description="executor: ray — this adapter's actor pool (local "
                                                             "adapters get the defaults when unset)")


_CRITERION = re.compile(r"^\s*(<=|>=|<|>|==)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")
_PERCENT = re.compile(r"^\s*(<=|>=|<|>|==)\s*([0-9.]+)\s*%\s*$")


class Objective(Strict):
    """HAS 1.6: a success criterion and a stop criterion, stated before the run."""

    metric: str
    adapter: str | None = None
    success: str | None = None
    stop: str | None = None

    @field_validator("success", "stop")
    @classmethod
    def _criterion(cls, value: str | None) -> str | None:
        if value is not None and not _CRITERION.match(value):
            percent = _PERCENT.match(value)
            if percent:  # "90%": rates are proportions here, as in the scorecard
                raise ValueError(f"expected a proportion, not a percentage: '{percent[1]} "
                                 f"{float(percent[2]) / 100:g}' for {value.strip()!r}")
            raise ValueError("expected a comparison such as '<= 0.10' or '> 0.25'")
        return value

    def thresholds(self) -> list[tuple[str, float]]:
        """(field, number) of each criterion."""
        return [(name, float(m[2])) for name in ("success", "stop")
                if (text := getattr(self, name)) and (m := _CRITERION.match(text))]


class Gate(Strict):
    """A rule on a metric that decides the exit code."""

    metric: str
    adapter: str | None = None
    max: float | None = None
    min: float | None = None
    non_inferior_to: Literal["baseline"] | None = None
    margin: float = Field(default=0.0, ge=0)

    def thresholds(self) -> list[tuple[str, float]]:
        """(field, number) of its min and max."""
        return [(name, value) for name in ("min", "max") if (value := getattr(self, name)) is not None]

    @model_validator(mode="after")
    def _one_rule(self) -> Gate:
        if self.max is None and self.min is None and self.non_inferior_to is None:
            raise ValueError("a gate needs 'max', 'min' or 'non_inferior_to'")
        return self


class PIIGuardSpec(Strict):
    """HAS 2.4: requests to systems not cleared for personal data are scanned before they are
    sent; what is found is blocked (never sent) or pseudonymised (surrogates, put back in the
    answer)."""

    policy: Literal["block", "pseudonymise", "off"] = "block"
    types: list[str] | None = Field(default=None, description="identifier types to act on (default: all)")
    hospital_patterns: list[str] = Field(default_factory=list,
                                         description="regular expressions for this site's patient numbers")

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        from harness.pii.detect import KINDS

        for kind in value or []:
            if kind not in KINDS:
                raise ValueError(f"unknown identifier type {kind!r}; expected one of {', '.join(KINDS)}")
        return value

    @field_validator("hospital_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
        return value


class SuiteConfig(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    tasks: list[str] = Field(min_length=1)
    adapters: list[AdapterRef] = Field(min_length=1)
    repeats: int = Field(default=1, ge=1)
    concurrency: int = Field(default=8, ge=1, le=MAX_CONCURRENCY,
                             description="requests in flight per adapter")
    timeout_s: float = Field(default=300.0, gt=0)
    seed: int = 0
    objectives: list[Objective] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    baseline: str | None = None
    output_dir: str = "runs"
    cache: bool = Field(default=True, description="reuse identical earlier responses (SQLite, .harness-cache/)")
    scoring_timeout_s: float = Field(default=60.0, gt=0, description="longest a scorer may take on one item")
    pii_guard: PIIGuardSpec = Field(default_factory=PIIGuardSpec)
    store_content: bool = Field(
        default=True, description="false: the record keeps hashes, scores and error classes, never inputs or "
                                  "outputs (the response cache is off, reports show no text)")
    scoring_workers: int | None = Field(
        default=None, ge=0, description="processes for CPU-bound scorers; unset: every core (at most 4) when a run "
                                        "has 400 items or more to score, else in-process; 0 or 1: in-process")
    executor: Literal["local", "ray"] = Field(
        default="local", description="ray: local adapters (faster-whisper, python, command) run on a pool of Ray "
                                     "actors; the record, cache, retries and scoring stay in this process")
    scoring: Literal["local", "ray"] = Field(default="local",
                                             description="ray: CPU-bound scorers run on Ray actors (large runs)")
    ray: RaySettings = Field(default_factory=RaySettings)
    share_records_with_group: bool = Field(default=False,
                                           description="run folders 0750 instead of 0700 (files 0640, not 0600)")
    max_field_bytes: int = Field(default=1_000_000, gt=0,
                                 description="largest text field an item may hold (a guard against runaway data)")
    data_roots: list[str] = Field(default_factory=list,
                                  description="folders outside the suite's own tree that tasks and adapters may read")
    margins: dict[str, float] = Field(default_factory=dict,
                                      description="task/metric → the smallest change that matters (harness compare)")

    @field_validator("adapters", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value


def criterion_holds(criterion: str, value: float) -> bool:
    """Evaluate a criterion such as '<= 0.10' on a value."""
    match = _CRITERION.match(criterion)
    assert match, criterion
    op, bound = match.group(1), float(match.group(2))
    return {"<=": value <= bound, ">=": value >= bound, "<": value < bound,
            ">": value > bound, "==": value == bound}[op]


# --- loading ----------------------------------------------------------------

def _field_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_fields(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the sub-model that `loc` points into (for typo hints)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            break
        ann = info.annotation
        for candidate in (ann, *getattr(ann, "__args__", ())):
            inner = getattr(candidate, "__args__", (candidate,))
            sub = next((c for c in (candidate, *inner) if isinstance(c, type) and issubclass(c, BaseModel)), None)
            if sub is not None:
                current = sub
                break
    return list(getattr(current, "model_fields", {}))


#: a field name that says it holds a credential (its value is never printed either); whole
#: names only: `max_token` is a typo of `max_tokens`, not a key
_CREDENTIAL_FIELD = re.compile(r"^(api[_-]?key|(access|auth|bearer|api|secret)[_-]?token|token|(client[_-]?)?secret|"
                               r"password|passwd|credentials?|key)$", re.IGNORECASE)


def problems_from_validation(exc: ValidationError, model: type[BaseModel], file: str,
                             lines: dict[Loc, int], prefix: Loc = (), owner: str = "this") -> list[Problem]:
    """Turn pydantic's errors into Problems with file, field, line, expected and found; `owner`
    names what the fields belong to (a scorer, an adapter kind) when it takes none."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        full = (*prefix, *loc)
        found = repr(err.get("input"))
        if len(found) > 80:
            found = found[:77] + "..."
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _model_fields(model, loc[:-1])
            out.append(Problem(file, _field_path(full), "unknown field", line_of(lines, full),
                               expected="one of: " + ", ".join(allowed) if allowed
                               else f"no field here: {owner} takes no options",
                               hint=("a credential is never written in a file: put it in an environment "
                                     "variable and name the variable" + (" (api_key_env)" if "api_key_env" in allowed
                                                                         else ""))
                               if _CREDENTIAL_FIELD.search(str(loc[-1])) else did_you_mean(str(loc[-1]), allowed)))
        elif kind == "missing":
            out.append(Problem(file, _field_path(full), "required field is missing",
                               line_of(lines, full[:-1])))
        else:
            message = err["msg"].removeprefix("Value error, ")
            out.append(Problem(file, _field_path(full), message, line_of(lines, full), found=found))
    return out


def parse_file(path: Path, model: type[BaseModel], what: str) -> tuple[Any, dict[Loc, int]]:
    """Load a YAML file into `model`, raising ConfigError with located problems."""
    data, lines = load_yaml(path, what)
    if not isinstance(data, dict):
        article = "an" if what[0] in "aeiou" else "a"
        raise ConfigError([Problem(str(path), "", f"{article} {what} must be a YAML mapping",
                                   expected="key: value pairs",
                                   found="an empty file" if data is None else type(data).__name__)])
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, model, str(path), lines)) from None


def resolve(base: Path, relative: str) -> Path:
    """A path named in a file resolves from that file's directory."""
    p = Path(relative).expanduser()
    return p if p.is_absolute() else (base / p)


@dataclass
class LoadedTask:
    config: TaskConfig
    path: Path
    lines: dict[Loc, int] = field(default_factory=dict)
    #: (scorer name, validated settings with paths resolved), in the task's order
    scorers: list[tuple[str, BaseModel]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def base_dir(self) -> Path:
        return self.path.parent


@dataclass
class LoadedAdapter:
    profile: AdapterProfile
    path: Path
    ref: AdapterRef
    settings: BaseModel
    lines: dict[Loc, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def base_dir(self) -> Path:
        return self.path.parent


@dataclass
class LoadedSuite:
    config: SuiteConfig
    path: Path
    tasks: list[LoadedTask]
    adapters: list[LoadedAdapter]
    pairs: list[tuple[LoadedTask, LoadedAdapter]]
    lines: dict[Loc, int] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent
