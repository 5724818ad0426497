"""Energy and emissions of each response (HAS 2.7: weigh benefits against environmental cost).

An adapter declares how its energy is estimated (`declarations.energy`):
- `method: ecologits`: EcoLogits' model of the provider and model it knows (offline, its
  bundled database), from the output tokens and the latency;
- `method: declared`: a figure the provider or the team states, in Wh per 1,000 output
  tokens (and per request), with its source;
- `method: measured`: CodeCarbon measures this process while the run computes (local
  adapters: faster-whisper, `python`, `command`), offline; the measured energy is shared
  among the measuring systems' items by their share of computing time (latency). One
  measurement for the whole run, so there is no per-item CI: the report says so.

Every figure is recorded with its method and version (`EnergyEstimate.method`): EcoLogits
changed its estimate for 70B-class models by a factor of about 57 between versions, so a
figure without the version it came from is not comparable with another.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: world average carbon intensity (gCO2eq/kWh) when a declared figure names no mix; EcoLogits' "WOR"
WORLD_G_CO2_PER_KWH = 481.0


class EnergyDeclaration(BaseModel):
    """How this system's energy is estimated; printed beside every energy figure."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["ecologits", "declared", "measured"]
    provider: str | None = Field(default=None, description="ecologits: provider as EcoLogits names it (openai, "
                                                           "mistralai, anthropic, ...)")
    model: str | None = Field(default=None, description="ecologits: model name as in its database")
    electricity_mix_zone: str = Field(default="WOR", description="ISO 3166-1 alpha-3 code (FRA) or WOR; "
                                                                "measured needs a country code")
    wh_per_1000_output_tokens: float | None = Field(default=None, ge=0)
    wh_per_request: float = Field(default=0.0, ge=0)
    g_co2_per_kwh: float | None = Field(default=None, ge=0)
    source: str | None = Field(default=None, description="declared: where the figure comes from")

    @model_validator(mode="after")
    def _complete(self) -> EnergyDeclaration:
        if self.method == "ecologits" and not (self.provider and self.model):
            raise ValueError("method ecologits needs `provider` and `model`")
        if self.method == "declared" and self.wh_per_1000_output_tokens is None and not self.wh_per_request:
            raise ValueError("method declared needs `wh_per_1000_output_tokens` or `wh_per_request`")
        if self.method == "measured" and (len(self.electricity_mix_zone) != 3 or self.electricity_mix_zone == "WOR"):
            raise ValueError("method measured needs `electricity_mix_zone`: the country's ISO 3166-1 alpha-3 code, "
                             "e.g. FRA")
        return self


@dataclass(frozen=True)
class EnergyEstimate:
    wh: float
    wh_low: float
    wh_high: float
    g_co2: float


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def describe(decl: EnergyDeclaration) -> str:
    """The method and its version, as the report states it beside the figures."""
    if decl.method == "ecologits":
        text = (f"EcoLogits {_package_version('ecologits')} (provider {decl.provider}, model {decl.model}, "
                f"electricity mix {decl.electricity_mix_zone})")
        return text + _ecologits_caveats(decl)
    if decl.method == "declared":
        parts = []
        if decl.wh_per_1000_output_tokens is not None:
            parts.append(f"{decl.wh_per_1000_output_tokens:g} Wh per 1,000 output tokens")
        if decl.wh_per_request:
            parts.append(f"{decl.wh_per_request:g} Wh per request")
        intensity = decl.g_co2_per_kwh if decl.g_co2_per_kwh is not None else WORLD_G_CO2_PER_KWH
        return f"declared: {' + '.join(parts)}, {intensity:g} gCO2eq/kWh (source: {decl.source or 'not stated'})"
    return (f"measured with CodeCarbon {_package_version('codecarbon')} (this process, electricity mix "
            f"{decl.electricity_mix_zone}), shared among items by computing time")


def _quiet_ecologits() -> None:
    # EcoLogits logs its caveats once per process; the report states them beside the figures
    logging.getLogger("ecologits").setLevel(logging.ERROR)


def _ecologits_caveats(decl: EnergyDeclaration) -> str:
    """EcoLogits' own warnings about this model (architecture not published, multimodal...),
    or that it does not know the model at all."""
    from ecologits.tracers.utils import llm_impacts

    _quiet_ecologits()
    assert decl.provider and decl.model
    impacts = llm_impacts(provider=decl.provider, model_name=decl.model, output_token_count=100,
                          request_latency=1.0, electricity_mix_zone=decl.electricity_mix_zone)
    if impacts is None or getattr(impacts, "energy", None) is None:
        return "; model unknown to this EcoLogits version: no estimate"
    notes = [str(getattr(w, "message", w)) for w in (impacts.warnings or [])]
    return "; EcoLogits warns: " + " ".join(notes) if notes else ""


@lru_cache(maxsize=4096)
def _ecologits(provider: str, model: str, tokens_out: int, latency_s: float, zone: str) -> EnergyEstimate | None:
    from ecologits.tracers.utils import llm_impacts

    _quiet_ecologits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        impacts = llm_impacts(provider=provider, model_name=model, output_token_count=tokens_out,
                              request_latency=latency_s, electricity_mix_zone=zone)
    if impacts is None or impacts.energy is None or impacts.gwp is None:
        return None
    energy, gwp = impacts.energy.value, impacts.gwp.value

    def ends(v: Any) -> tuple[float, float]:
        return (float(v.min), float(v.max)) if hasattr(v, "min") else (float(v), float(v))

    (e_low, e_high), (g_low, g_high) = ends(energy), ends(gwp)
    # kWh → Wh, kgCO2eq → g; the centre of EcoLogits' range, the range kept beside it
    return EnergyEstimate(wh=500 * (e_low + e_high), wh_low=1000 * e_low, wh_high=1000 * e_high,
                          g_co2=500 * (g_low + g_high))


def estimate(decl: EnergyDeclaration, tokens_out: int | None, latency_s: float | None) -> EnergyEstimate | None:
    """Energy of one response under its adapter's declaration; None when the inputs the
    method needs are missing (no token count) or the model is unknown to EcoLogits."""
    if decl.method == "ecologits":
        if not tokens_out or latency_s is None:
            return None
        assert decl.provider and decl.model
        return _ecologits(decl.provider, decl.model, int(tokens_out), round(float(latency_s), 3),
                          decl.electricity_mix_zone)
    if decl.method == "declared":
        wh = decl.wh_per_request + (tokens_out or 0) * (decl.wh_per_1000_output_tokens or 0.0) / 1000
        intensity = decl.g_co2_per_kwh if decl.g_co2_per_kwh is not None else WORLD_G_CO2_PER_KWH
        return EnergyEstimate(wh, wh, wh, wh / 1000 * intensity)
    return None  # measured: one measurement for the run (Meter), attributed in the manifest


class Meter:
    """CodeCarbon around the engine while systems with `method: measured` compute: offline,
    this process only, nothing written to disk. Attributes what it measured to each
    task × adapter by its share of the measured systems' computing time."""

    def __init__(self, zone: str) -> None:
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError:
            raise RuntimeError("energy `method: measured` needs CodeCarbon: pip install 'avec-harness[energy]'") \
                from None
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self.zone = zone
        self.tracker = OfflineEmissionsTracker(country_iso_code=zone, save_to_file=False, log_level="error",
                                               measure_power_secs=1, tracking_mode="process")
        self.seconds: dict[tuple[str, str], float] = {}
        self.items: dict[tuple[str, str], int] = {}

    def add(self, task: str, adapter: str, latency_s: float | None) -> None:
        key = (task, adapter)
        self.seconds[key] = self.seconds.get(key, 0.0) + (latency_s or 0.0)
        self.items[key] = self.items.get(key, 0) + 1

    def __enter__(self) -> Meter:
        self.tracker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.tracker.stop()

    def attribution(self) -> list[dict[str, Any]]:
        """Per task × adapter: measured Wh and gCO2eq, items, and the share they were given."""
        data = self.tracker.final_emissions_data
        if data is None:
            return []
        wh, g = float(data.energy_consumed) * 1000, float(data.emissions) * 1000
        total = sum(self.seconds.values())
        out = []
        for (task, adapter), seconds in self.seconds.items():
            share = seconds / total if total else 1 / len(self.seconds)
            out.append({"task": task, "adapter": adapter, "items": self.items[(task, adapter)], "share": share,
                        "wh": wh * share, "g_co2": g * share, "run_wh": wh, "duration_s": float(data.duration)})
        return out
