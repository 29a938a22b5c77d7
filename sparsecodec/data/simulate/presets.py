"""Named simulation settings: collision system, pileup and readout options.

Each preset records the band in which the mean wedge occupancy of its events falls, as
measured with this simulator (``docs/simulation.md`` gives the numbers and the command).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .collisions import CollisionModel
from .detector import SPHENIX_2021, Detector


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated dataset apart from the seed and the event count.

    ``extra_noise_adc`` adds Gaussian noise (RMS, ADC counts) in quadrature to the
    electronics noise of about 1 ADC. ``eta_acceptance_cut`` applies the public data's cut of
    wavelets beyond |eta| = 1.1. ``occupancy_band`` is the documented range of the mean
    wedge occupancy (fraction) over a few events of this configuration.
    """

    name: str
    collisions: CollisionModel = field(default_factory=CollisionModel)
    extra_noise_adc: float = 0.0
    eta_acceptance_cut: bool = True
    occupancy_band: tuple[float, float] = (0.0, 1.0)
    detector: Detector = SPHENIX_2021

    def __post_init__(self) -> None:
        if not (self.extra_noise_adc >= 0.0 and math.isfinite(self.extra_noise_adc)):
            raise ValueError(f"extra_noise_adc must be a finite non-negative RMS in ADC counts, got {self.extra_noise_adc}")

    @property
    def noise_rms_adc(self) -> float:
        """Total noise RMS in ADC counts."""
        return math.hypot(self.detector.noise_adc, self.extra_noise_adc)

    def replace(self, **changes) -> SimulationConfig:
        """Return a copy with fields of this config or of its :class:`CollisionModel` changed."""
        own = {name: value for name, value in changes.items() if name in _CONFIG_FIELDS}
        collision = {name: value for name, value in changes.items() if name in _COLLISION_FIELDS}
        unknown = sorted(set(changes) - set(own) - set(collision))
        if unknown:
            raise ValueError(
                f"unknown simulation setting(s) {unknown}; valid: {sorted(_CONFIG_FIELDS | _COLLISION_FIELDS)}"
            )
        if collision:
            own["collisions"] = dataclasses.replace(self.collisions, **collision)
        return dataclasses.replace(self, **own)


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(SimulationConfig)} - {"collisions"}
_COLLISION_FIELDS = {f.name for f in dataclasses.fields(CollisionModel)}

#: Central (0-10 %) Au+Au at 200 GeV with 170 kHz minimum-bias pileup: the conditions of the
#: public BCAE dataset (mean wedge occupancy 10.8 %).
AUAU_CENTRAL_170KHZ = SimulationConfig(
    name="auau-central-170khz",
    collisions=CollisionModel(system="auau", trigger_centrality=(0.0, 10.0), pileup_rate_khz=170.0),
    occupancy_band=(0.08, 0.14),
)

#: Minimum-bias (0-100 %) Au+Au at 200 GeV with the same pileup.
AUAU_MINBIAS = SimulationConfig(
    name="auau-minbias",
    collisions=CollisionModel(system="auau", trigger_centrality=(0.0, 100.0), pileup_rate_khz=170.0),
    occupancy_band=(0.03, 0.10),
)

#: p+p at 200 GeV with pileup at a 1 MHz collision rate (an estimate of the order of RHIC
#: p+p rates at sPHENIX).
PP = SimulationConfig(
    name="pp",
    collisions=CollisionModel(system="pp", pileup_rate_khz=1000.0),
    occupancy_band=(0.002, 0.01),
)

PRESETS = {config.name: config for config in (AUAU_CENTRAL_170KHZ, AUAU_MINBIAS, PP)}


def get_preset(name: str) -> SimulationConfig:
    """Return the preset called ``name``; raise ValueError listing the valid names otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
