"""Parametric simulation of sPHENIX TPC outer-layer wedges, fast enough to make datasets on a laptop.

The chain, per frame (one trigger plus pileup; modules in brackets):

1. Collisions and particles [collisions]: multiplicity by centrality, species and pT
   spectra, secondaries, pileup collisions displaced in time.
2. Transport [kernels.deposit_charge]: helices in the 1.4 T field, primary ionization
   clusters along the path, per-electron diffusion, GEM gain, zigzag pad response and split
   Gaussian shaping [responses], accumulated in ADC units per wedge.
3. Digitization [kernels.digitize]: pedestal, noise, 10-bit ADC with saturation at 1023,
   sPHENIX zero suppression in 5-sample blocks, and the public data's eta acceptance cut.

Detector parameters live in :mod:`.detector`, named settings in :mod:`.presets`. Entry points:
:func:`simulate_dataset` (files in the public layout), :func:`simulate_event` and
:func:`simulate_wedges` (arrays in memory).
"""

from __future__ import annotations

import importlib

from .collisions import CollisionModel
from .detector import SPHENIX_2021, Detector
from .presets import PRESETS, SimulationConfig, get_preset

# The engine compiles numba kernels, so it is imported on first use; the names above need
# only numpy, which keeps ``sparsecodec --help`` fast.
_LAZY = {
    "Frame": ".engine",
    "MAX_TARGET_OCCUPANCY": ".engine",
    "MIN_TARGET_OCCUPANCY": ".engine",
    "find_multiplicity_scale": ".engine",
    "simulate_event": ".engine",
    "simulate_frame": ".engine",
    "simulate_wedges": ".engine",
    "SimulationSummary": ".writer",
    "simulate_dataset": ".writer",
}

__all__ = ["CollisionModel", "Detector", "PRESETS", "SPHENIX_2021", "SimulationConfig", "get_preset", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
