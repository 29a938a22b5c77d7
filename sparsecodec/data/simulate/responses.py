"""Lookup tables of the readout response, built once per detector with numpy.

Each electron's charge is shared among pads and time samples by tables indexed by the
electron's position within its pad (or sample) in :data:`SUBDIVISIONS` steps, so the transport
kernel does no special-function evaluation per electron. A step of 1/64 pad is 3 um at 60 cm,
far below the 0.09 cm diffusion it is added to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .detector import Detector

SUBDIVISIONS = 64
#: Pads on either side of the electron's pad that may receive charge.
PAD_REACH = 2
#: Time samples on either side of the electron's sample that may receive charge.
TIME_REACH = 4
#: Shares below this fraction of an electron's charge are dropped. The sPHENIX readout drops
#: shares below one electron of the ~1400 out of the GEM stack, a comparable cut; 1e-3 of an
#: average electron is 0.005 ADC counts.
MIN_SHARE = 1e-3


@dataclass(frozen=True)
class ResponseTables:
    """Charge-sharing tables for the transport kernel.

    ``pad_share[layer, sub, j]``: fraction of an electron's charge on pad ``pad + j - PAD_REACH``
    when it arrives at ``pad + (sub + 0.5) / SUBDIVISIONS`` (pad units). ``time_share[side, sub,
    j]``: fraction on sample ``index + j - TIME_REACH`` when it arrives at continuous sample index
    ``index + (sub + 0.5) / SUBDIVISIONS`` on that side. ``*_first``/``*_last`` bound the
    entries above :data:`MIN_SHARE`, so the kernel loops only over those.
    ``cluster_size_cdf[k - 1]``: probability that a primary cluster has at most k electrons.
    """

    pad_share: np.ndarray
    pad_first: np.ndarray
    pad_last: np.ndarray
    time_share: np.ndarray
    time_first: np.ndarray
    time_last: np.ndarray
    cluster_size_cdf: np.ndarray
    mean_cluster_size: float


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def zigzag_pad_share(offset: np.ndarray, sigma: float) -> np.ndarray:
    """Share of charge on a pad whose centre is ``offset`` pitches from a Gaussian cloud.

    The zigzag pad is modelled as a triangular response of half-width one pitch, convolved
    with the Gaussian charge cloud of width ``sigma`` (pitch units), as in the sPHENIX
    simulation. Written as ramp(x+1) - 2 ramp(x) + ramp(x-1) with the Gaussian-smeared ramp
    E[max(0, x + sigma Z)] = x Phi(x/sigma) + sigma phi(x/sigma).
    """

    def smeared_ramp(x):
        return x * _normal_cdf(x / sigma) + sigma * _normal_pdf(x / sigma)

    return smeared_ramp(offset + 1.0) - 2.0 * smeared_ramp(offset) + smeared_ramp(offset - 1.0)


def split_gaussian_cdf(x: np.ndarray, lead: float, tail: float) -> np.ndarray:
    """CDF of a split Gaussian centred at 0: width ``lead`` below 0, ``tail`` above, half the mass each."""
    sigma = np.where(x < 0.0, lead, tail)
    return _normal_cdf(x / sigma)


def _bounds(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = table >= MIN_SHARE
    first = keep.argmax(axis=-1).astype(np.int32)
    last = (table.shape[-1] - 1 - keep[..., ::-1].argmax(axis=-1)).astype(np.int32)
    return first, last


def _normalized(table: np.ndarray) -> np.ndarray:
    table = np.where(table >= MIN_SHARE, table, 0.0)
    return table / table.sum(axis=-1, keepdims=True)


def cluster_size_distribution(mean: float, largest: int = 300) -> np.ndarray:
    """CDF of primary-cluster sizes: P(k) = c / k**2 for 2 <= k <= ``largest``, and P(1) the rest.

    The 1/k**2 tail follows the 1/E**2 spectrum of energy transfers in ionizing collisions and
    gives the charge per track segment its Landau-like tail; ``c`` is set so that the mean is
    ``mean`` electrons. ``largest`` = 300 electrons (about 10 keV, a delta electron whose range
    in the gas is still below a pad) is an estimate. Raises ValueError when ``mean`` cannot be
    reached with sizes 1..largest.
    """
    sizes = np.arange(2, largest + 1, dtype=np.float64)
    tail_mass = np.sum(1.0 / sizes**2)
    tail_mean = np.sum(1.0 / sizes)
    # With P(1) = 1 - c * tail_mass the mean is 1 + c * (tail_mean - tail_mass).
    scale = (mean - 1.0) / (tail_mean - tail_mass)
    single = 1.0 - scale * tail_mass
    if not (mean > 1.0 and 0.0 < single < 1.0):
        raise ValueError(f"cannot reach a mean cluster size of {mean} with sizes 1..{largest}")
    probabilities = np.concatenate([[single], scale / sizes**2])
    return np.cumsum(probabilities) / probabilities.sum()


@lru_cache(maxsize=8)
def build_tables(detector: Detector) -> ResponseTables:
    """Build the pad, time and cluster-size tables of ``detector``."""
    positions = (np.arange(SUBDIVISIONS) + 0.5) / SUBDIVISIONS

    # Pad centres sit at pad + 0.5; pad j relative to the electron's pad is at offset
    # (j + 0.5) - position pitches from the electron.
    pad_offsets = np.arange(-PAD_REACH, PAD_REACH + 1, dtype=np.float64)
    pad_share = np.empty((detector.layers, SUBDIVISIONS, pad_offsets.size))
    for layer in range(detector.layers):
        pitch = detector.layer_radius(layer) * detector.pad_angle
        offsets = pad_offsets[None, :] + 0.5 - positions[:, None]
        pad_share[layer] = zigzag_pad_share(offsets, detector.gem_cloud_sigma / pitch)
    pad_share = _normalized(pad_share)

    # Time samples: the sample j relative to the electron's covers [j, j + 1) - position in
    # sample units. The tail follows drift time, which runs with the index on side 0 and
    # against it on side 1.
    lead = detector.shaping_lead_us / detector.adc_clock_us
    tail = detector.shaping_tail_us / detector.adc_clock_us
    time_offsets = np.arange(-TIME_REACH, TIME_REACH + 1, dtype=np.float64)
    low = time_offsets[None, :] - positions[:, None]
    side0 = split_gaussian_cdf(low + 1.0, lead, tail) - split_gaussian_cdf(low, lead, tail)
    side1 = split_gaussian_cdf(low + 1.0, tail, lead) - split_gaussian_cdf(low, tail, lead)
    time_share = _normalized(np.stack([side0, side1]))

    pad_first, pad_last = _bounds(pad_share)
    time_first, time_last = _bounds(time_share)
    mean_cluster = detector.electrons_per_cm / detector.clusters_per_cm
    cdf = cluster_size_distribution(mean_cluster)
    sizes = np.arange(1, cdf.size + 1)
    realized_mean = float(np.sum(np.diff(np.concatenate([[0.0], cdf])) * sizes))
    return ResponseTables(
        pad_share=np.ascontiguousarray(pad_share, dtype=np.float32),
        pad_first=pad_first,
        pad_last=pad_last,
        time_share=np.ascontiguousarray(time_share, dtype=np.float32),
        time_first=time_first,
        time_last=time_last,
        cluster_size_cdf=cdf,
        mean_cluster_size=realized_mean,
    )
