"""Charged particles of one recorded frame: the triggered collision plus pileup collisions.

Every particle becomes one row of a float64 track table (columns :data:`TRACK_COLUMNS`) that the
transport kernel follows. Units: cm, GeV, microseconds. The collision model is deliberately
simple and every parameter that was not read from a measurement is marked as an estimate:

* Au+Au at 200 GeV: charged-particle density dNch/deta by centrality from :data:`AUAU_DNDETA`.
  The trigger draws its centrality uniformly in the preset's range, and pileup collisions are
  minimum bias (0-100 %).
* p+p at 200 GeV: dNch/deta = 2.4 (estimate) with negative-binomial fluctuations.
* Flat in pseudorapidity over |eta| < eta_max and in azimuth; pions, kaons and protons with
  exponential transverse-mass spectra whose slopes give mean pT 0.45 / 0.65 / 0.9 GeV
  (estimates). Pions and kaons may decay in flight, which ends their track.
* Secondary charged particles (decay products, particles from interactions in the material,
  conversion electrons) are modelled as pions with a softer spectrum (mean pT 0.3 GeV,
  estimate). They are emitted outwards from radii between the beam pipe and the TPC inner
  field cage, and their number per primary is the tuning knob that sets the occupancy of the
  central preset.
  Tracks of 0.13 to 0.16 GeV turn around inside the outer layers (loopers).
* Pileup collisions at ``rate`` in the window of +-1 drift time (13.19 us) around the
  trigger; their charge arrives displaced in drift time by ``drift_velocity * t0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .detector import Detector

TRACK_COLUMNS = (
    "x0", "y0", "z0", "pt", "phi", "sinh_eta", "cosh_eta", "charge",
    "ionization", "drift_shift", "max_path",
)
X0, Y0, Z0, PT, PHI, SINH_ETA, COSH_ETA, CHARGE, IONIZATION, DRIFT_SHIFT, MAX_PATH = range(len(TRACK_COLUMNS))

#: Au+Au 200 GeV charged-particle density at mid-rapidity by centrality: (centrality bin
#: centre in percent, dNch/deta). The most central value is the BRAHMS 0-5 % measurement
#: (625, Phys. Rev. Lett. 88, 202301); the centrality dependence is an estimate with the shape
#: of the published RHIC measurements. Its minimum-bias mean is about 160.
AUAU_DNDETA = (
    (2.5, 625.0), (7.5, 520.0), (12.5, 430.0), (17.5, 355.0), (22.5, 290.0), (27.5, 235.0),
    (32.5, 188.0), (37.5, 148.0), (42.5, 115.0), (47.5, 88.0), (52.5, 65.0), (57.5, 47.0),
    (62.5, 33.0), (67.5, 22.0), (72.5, 14.0), (77.5, 9.0), (85.0, 5.0), (95.0, 2.0),
)

#: (mass GeV, fraction of charged primaries, mean pT GeV, c*tau cm); fractions and mean pT
#: are estimates, masses and c*tau are PDG values.
SPECIES = {
    "pion": (0.13957, 0.80, 0.45, 780.45),
    "kaon": (0.49368, 0.12, 0.65, 371.2),
    "proton": (0.93827, 0.08, 0.90, math.inf),
}


@dataclass(frozen=True)
class CollisionModel:
    """Parameters of the collisions in one frame (see the module docstring for the physics)."""

    system: str = "auau"
    trigger_centrality: tuple[float, float] = (0.0, 10.0)
    pileup_rate_khz: float = 170.0
    pp_dndeta: float = 2.4
    pp_negative_binomial_k: float = 2.0
    multiplicity_scale: float = 1.0
    secondaries_per_primary: float = 1.2
    secondary_mean_pt: float = 0.3
    secondary_radius: tuple[float, float] = (2.0, 20.0)
    vertex_sigma_z: float = 10.0
    eta_max: float = 1.6
    max_turns: float = 3.0

    def __post_init__(self) -> None:
        if self.system not in ("auau", "pp"):
            raise ValueError(f"system must be 'auau' or 'pp', got {self.system!r}")
        low, high = self.trigger_centrality
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"trigger_centrality must satisfy 0 <= low < high <= 100 (percent), got {self.trigger_centrality}")
        for name in ("pileup_rate_khz", "multiplicity_scale", "secondaries_per_primary"):
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite non-negative number, got {value}")
        for name in ("pp_dndeta", "pp_negative_binomial_k", "secondary_mean_pt", "eta_max", "max_turns"):
            value = getattr(self, name)
            if not (value > 0.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite positive number, got {value}")


def auau_dndeta(centrality_percent: np.ndarray) -> np.ndarray:
    """Interpolate :data:`AUAU_DNDETA` at the given centralities (percent)."""
    centres, values = zip(*AUAU_DNDETA)
    return np.interp(centrality_percent, centres, values)


def _mean_pt_of_slope(mass: float, slope: float, grid: np.ndarray) -> float:
    weights = grid * np.exp(-(np.sqrt(grid * grid + mass * mass) - mass) / slope)
    return float(np.sum(weights * grid) / np.sum(weights))


@lru_cache(maxsize=16)
def pt_inverse_cdf(mass: float, mean_pt: float) -> tuple[np.ndarray, np.ndarray]:
    """Tabulated inverse CDF of dN/dpT ~ pT exp(-(mT - m)/T), with T chosen to give ``mean_pt``."""
    grid = np.linspace(1e-4, 12.0, 24000)
    low, high = 0.01, 2.0
    for _ in range(60):
        slope = 0.5 * (low + high)
        if _mean_pt_of_slope(mass, slope, grid) < mean_pt:
            low = slope
        else:
            high = slope
    density = grid * np.exp(-(np.sqrt(grid * grid + mass * mass) - mass) / slope)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return cdf, grid


def ionization_factor(beta_gamma: np.ndarray) -> np.ndarray:
    """Mean energy loss relative to a minimum-ionizing particle, as a function of beta*gamma.

    Bethe formula 1/beta^2 (ln(2 m_e c^2 beta^2 gamma^2 / I) - beta^2) with I = 35 eV
    (estimate for Ne/CF4), normalized to its minimum. Above the minimum the rise is capped at a
    Fermi plateau of 1.5 times the minimum (estimate), which replaces the density effect.
    """
    beta_gamma = np.maximum(beta_gamma, 0.05)
    beta2 = beta_gamma**2 / (1.0 + beta_gamma**2)
    log_term = math.log(2 * 0.511e6 / 35.0)

    def bethe(bg, b2):
        return (log_term + 2.0 * np.log(bg) - b2) / b2

    scan = np.geomspace(1.0, 20.0, 400)
    values = bethe(scan, scan**2 / (1 + scan**2))
    minimum = values.min()
    at_minimum = scan[values.argmin()]
    factor = bethe(beta_gamma, beta2) / minimum
    # Only the relativistic rise is capped; slow particles keep the 1/beta^2 growth.
    return np.where(beta_gamma > at_minimum, np.minimum(factor, 1.5), factor)


def _dndeta_of_collisions(model: CollisionModel, count: int, trigger: bool, rng: np.random.Generator) -> np.ndarray:
    if model.system == "pp":
        return np.full(count, model.pp_dndeta)
    low, high = model.trigger_centrality if trigger else (0.0, 100.0)
    return auau_dndeta(rng.uniform(low, high, count))


def _primary_count(model: CollisionModel, dndeta: float, rng: np.random.Generator) -> int:
    mean = dndeta * model.multiplicity_scale * 2.0 * model.eta_max
    if model.system == "pp":
        # Negative binomial as a gamma-Poisson mixture.
        mean = rng.gamma(model.pp_negative_binomial_k, mean / model.pp_negative_binomial_k)
    return int(rng.poisson(mean))


def _primaries(model: CollisionModel, detector: Detector, count: int, z_vertex: float, rng) -> np.ndarray:
    tracks = np.zeros((count, len(TRACK_COLUMNS)))
    names = list(SPECIES)
    fractions = np.array([SPECIES[name][1] for name in names])
    species = rng.choice(len(names), size=count, p=fractions / fractions.sum())
    mass = np.empty(count)
    decay_length = np.empty(count)
    for index, name in enumerate(names):
        chosen = species == index
        species_mass, _, mean_pt, ctau = SPECIES[name]
        cdf, grid = pt_inverse_cdf(species_mass, mean_pt)
        tracks[chosen, PT] = np.interp(rng.random(int(chosen.sum())), cdf, grid)
        mass[chosen] = species_mass
        decay_length[chosen] = ctau

    tracks[:, Z0] = z_vertex
    _fill_kinematics(model, detector, tracks, mass, decay_length, rng)
    return tracks


def _secondaries(model: CollisionModel, detector: Detector, count: int, z_vertex: float, rng) -> np.ndarray:
    tracks = np.zeros((count, len(TRACK_COLUMNS)))
    mass, _, _, ctau = SPECIES["pion"]
    cdf, grid = pt_inverse_cdf(mass, model.secondary_mean_pt)
    tracks[:, PT] = np.interp(rng.random(count), cdf, grid)
    _fill_kinematics(model, detector, tracks, np.full(count, mass), np.full(count, ctau), rng)

    # The parent flew straight from the vertex to the production radius, so the secondary
    # starts there with the parent's direction.
    radius = rng.uniform(*model.secondary_radius, count)
    tracks[:, X0] = radius * np.cos(tracks[:, PHI])
    tracks[:, Y0] = radius * np.sin(tracks[:, PHI])
    tracks[:, Z0] = z_vertex + radius * tracks[:, SINH_ETA]
    return tracks


def _fill_kinematics(model, detector: Detector, tracks, mass, decay_length, rng) -> None:
    count = tracks.shape[0]
    eta = rng.uniform(-model.eta_max, model.eta_max, count)
    tracks[:, PHI] = rng.uniform(-math.pi, math.pi, count)
    tracks[:, SINH_ETA] = np.sinh(eta)
    tracks[:, COSH_ETA] = np.cosh(eta)
    tracks[:, CHARGE] = rng.choice((-1.0, 1.0), size=count)

    momentum = tracks[:, PT] * tracks[:, COSH_ETA]
    beta_gamma = momentum / mass
    tracks[:, IONIZATION] = ionization_factor(beta_gamma)

    # Path limits in transverse length: decay in flight, and a cap on looper turns.
    decay_path = rng.exponential(1.0, count) * beta_gamma * np.where(np.isfinite(decay_length), decay_length, 1e12)
    turns_path = model.max_turns * 2.0 * math.pi * tracks[:, PT] * detector.radius_per_gev
    tracks[:, MAX_PATH] = np.minimum(decay_path / tracks[:, COSH_ETA], turns_path)


def _collision(model, detector, dndeta, t0, rng) -> np.ndarray:
    z_vertex = rng.normal(0.0, model.vertex_sigma_z)
    primaries = _primaries(model, detector, _primary_count(model, dndeta, rng), z_vertex, rng)
    secondary_count = int(rng.poisson(model.secondaries_per_primary * primaries.shape[0]))
    secondaries = _secondaries(model, detector, secondary_count, z_vertex, rng)
    tracks = np.concatenate([primaries, secondaries])
    tracks[:, DRIFT_SHIFT] = detector.drift_velocity * t0
    return tracks


def pileup_window_us(detector: Detector) -> float:
    """Half-width of the pileup window: one full drift time, 105.5 cm / 8 cm/us = 13.19 us."""
    return detector.drift_length / detector.drift_velocity


def generate_tracks(model: CollisionModel, detector: Detector, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Return the track table of one frame and the number of pileup collisions in it.

    The triggered collision happens at t0 = 0; pileup collisions at t0 uniform in +-1 drift
    time, their count Poisson with mean ``rate * 2 * window``.
    """
    window = pileup_window_us(detector)
    pileup = int(rng.poisson(model.pileup_rate_khz * 1e-3 * 2.0 * window))
    times = np.concatenate([[0.0], rng.uniform(-window, window, pileup)])
    densities = np.concatenate(
        [_dndeta_of_collisions(model, 1, True, rng), _dndeta_of_collisions(model, pileup, False, rng)]
    )
    tables = [_collision(model, detector, dndeta, t0, rng) for dndeta, t0 in zip(densities, times)]
    return np.ascontiguousarray(np.concatenate(tables)), pileup
