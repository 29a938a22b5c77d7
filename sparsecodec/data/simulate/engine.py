"""Simulation of frames, single wedges and occupancy targets in memory.

Seeds: every frame draws all its random numbers from ``SeedSequence(seed, spawn_key=(stream,
index))``, so frame ``index`` of a run is the same whatever else is simulated, in whichever
order or process. ``stream`` separates datasets (0), single wedges (1), calibration probes (2)
and the choice of side and sector of single wedges (3).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..layout import EVENT_WEDGE_ORDER, NUM_SECTORS, NUM_SIDES, WEDGE_SHAPE
from ..statistics import occupancy
from . import kernels
from .collisions import TRACK_COLUMNS, generate_tracks
from .detector import Detector
from .presets import SimulationConfig, get_preset
from .responses import build_tables

log = logging.getLogger(__name__)

DATASET_STREAM = 0
WEDGE_STREAM = 1
PROBE_STREAM = 2
WEDGE_CHOICE_STREAM = 3

#: Transverse step (cm) along a helix; a chord of 0.5 cm deviates from the arc by < 1 um.
STEP_CM = 0.5

#: Occupancy targets accepted by the sweep mode: below about 5e-4 the noise floor of the
#: zero suppression dominates, above 0.4 the wedge fills up.
MIN_TARGET_OCCUPANCY = 5e-4
MAX_TARGET_OCCUPANCY = 0.4


@dataclass(frozen=True)
class Frame:
    """One simulated frame: ``adc`` uint16 (len(wedges), 16, 192, 249) = (wedge, layer, azimuth,
    time), the (side, sector) of each wedge, and counts of what went into it."""

    adc: np.ndarray
    wedges: tuple[tuple[int, int], ...]
    pileup_collisions: int
    tracks: int


def seed_sequence(seed: int, stream: int, index: int) -> np.random.SeedSequence:
    """Return the seed sequence of frame ``index`` in ``stream`` of a run seeded with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.SeedSequence(int(seed), spawn_key=(stream, index))


@lru_cache(maxsize=8)
def _transport_parameters(detector: Detector) -> np.ndarray:
    tables = build_tables(detector)
    parameters = np.zeros(kernels.PARAMETER_COUNT)
    parameters[kernels.P_INNER_RADIUS] = detector.inner_radius
    parameters[kernels.P_LAYER_THICKNESS] = detector.layer_thickness
    parameters[kernels.P_OUTER_CAGE] = detector.outer_field_cage_radius
    parameters[kernels.P_DRIFT_LENGTH] = detector.drift_length
    parameters[kernels.P_TIME_BIN] = detector.time_bin_length
    parameters[kernels.P_MEMBRANE_INDEX] = detector.membrane_index
    parameters[kernels.P_DIFFUSION_T] = detector.transverse_diffusion
    parameters[kernels.P_DIFFUSION_L] = detector.longitudinal_diffusion
    parameters[kernels.P_SMEAR_T] = detector.transverse_smear
    parameters[kernels.P_SMEAR_L] = detector.longitudinal_smear
    # Cluster density that, with the truncated cluster-size distribution, gives exactly
    # electrons_per_cm electrons per cm for a minimum-ionizing track.
    parameters[kernels.P_CLUSTERS_PER_CM] = detector.electrons_per_cm / tables.mean_cluster_size
    parameters[kernels.P_GAIN_ADC] = detector.gem_gain * detector.adc_per_electron
    parameters[kernels.P_RADIUS_PER_GEV] = detector.radius_per_gev
    parameters[kernels.P_STEP] = STEP_CM
    parameters.setflags(write=False)
    return parameters


@lru_cache(maxsize=8)
def eta_cut_mask(detector: Detector) -> np.ndarray:
    """Boolean (side, layer, time index) mask of samples beyond the public data's eta cut.

    A sample at the centre z of its time bin and the radius of its layer is beyond the cut
    when the pseudorapidity of (r, |z| - 10 cm) exceeds 1.1. Uses the full-frame z binning:
    bin b of 498 has its centre at -105.5 + (b + 0.5) * 0.424 cm, and side 1 contains b = 249..497.
    """
    samples = detector.time_samples
    bins = np.arange(NUM_SIDES)[:, None] * samples + np.arange(samples)[None, :]
    z_centre = -detector.drift_length + (bins + 0.5) * detector.time_bin_length
    radii = np.array([detector.layer_radius(layer) for layer in range(detector.layers)])
    ratio = (np.abs(z_centre)[:, None, :] - detector.eta_cut_vertex_offset) / radii[None, :, None]
    mask = ratio > math.sinh(detector.eta_cut)
    mask.setflags(write=False)
    return mask


@lru_cache(maxsize=8)
def _eta_cut_bounds(detector: Detector) -> tuple[np.ndarray, np.ndarray]:
    # First and last cut index of each (side, layer), -1 when none. The cut region grows with
    # |z|, so per row it is one run at the readout end; the digitizer relies on that.
    mask = eta_cut_mask(detector)
    first = np.where(mask.any(axis=2), mask.argmax(axis=2), -1).astype(np.int64)
    last = np.where(mask.any(axis=2), mask.shape[2] - 1 - mask[:, :, ::-1].argmax(axis=2), -1).astype(np.int64)
    for side, layer in zip(*np.nonzero(first >= 0)):
        if mask[side, layer, first[side, layer] : last[side, layer] + 1].sum() != last[side, layer] - first[side, layer] + 1:
            raise ValueError(f"eta cut of side {side}, layer {layer} is not one contiguous run of samples")
    return first, last


def _check_wedges(wedges) -> tuple[tuple[int, int], ...]:
    checked = []
    for item in wedges:
        side, sector = item
        if not (0 <= side < NUM_SIDES and 0 <= sector < NUM_SECTORS):
            raise ValueError(f"wedge (side, sector) = {item} is outside 0..{NUM_SIDES - 1} x 0..{NUM_SECTORS - 1}")
        checked.append((int(side), int(sector)))
    if len(set(checked)) != len(checked) or not checked:
        raise ValueError(f"wedges must be a non-empty list of distinct (side, sector) pairs, got {checked}")
    return tuple(checked)


def _slots(wedges) -> tuple[np.ndarray, np.ndarray]:
    slot_of = np.full((NUM_SIDES, NUM_SECTORS), -1, dtype=np.int32)
    for slot, (side, sector) in enumerate(wedges):
        slot_of[side, sector] = slot
    slot_side = np.array([side for side, _ in wedges], dtype=np.int32)
    return slot_of, slot_side


def transport(tracks: np.ndarray, detector: Detector, wedges=EVENT_WEDGE_ORDER, seed: int = 0) -> np.ndarray:
    """Return the charge (ADC counts, before pedestal, noise and zero suppression) of ``tracks``.

    ``tracks`` is a float64 table with the columns of
    :data:`~sparsecodec.data.simulate.collisions.TRACK_COLUMNS`. The result is float32
    (len(wedges), 16, 192, 249) for the requested (side, sector) wedges.
    """
    wedges = _check_wedges(wedges)
    tracks = np.ascontiguousarray(tracks, dtype=np.float64)
    if tracks.ndim != 2 or tracks.shape[1] != len(TRACK_COLUMNS):
        raise ValueError(f"tracks must have shape (N, {len(TRACK_COLUMNS)}) with columns {TRACK_COLUMNS}, got {tracks.shape}")
    tables = build_tables(detector)
    slot_of, _ = _slots(wedges)
    grid = np.zeros((len(wedges), *WEDGE_SHAPE), dtype=np.float32)
    kernels.deposit_charge(
        grid, slot_of, (slot_of >= 0).any(axis=0), tracks, _transport_parameters(detector), int(seed),
        tables.pad_share, tables.pad_first, tables.pad_last,
        tables.time_share, tables.time_first, tables.time_last, tables.cluster_size_cdf,
    )
    return grid


def digitize(charge: np.ndarray, config: SimulationConfig, wedges=EVENT_WEDGE_ORDER, seed: int = 0) -> np.ndarray:
    """Digitize a charge grid from :func:`transport` into zero-suppressed uint16 ADC counts."""
    wedges = _check_wedges(wedges)
    if charge.dtype != np.float32 or charge.shape != (len(wedges), *WEDGE_SHAPE):
        raise ValueError(f"charge must be float32 {(len(wedges), *WEDGE_SHAPE)}, got {charge.dtype} {charge.shape}")
    detector = config.detector
    _, slot_side = _slots(wedges)
    eta_first, eta_last = _eta_cut_bounds(detector)
    adc = np.zeros(charge.shape, dtype=np.uint16)
    kernels.digitize(
        charge, adc, slot_side, eta_cut_mask(detector), eta_first, eta_last,
        detector.pedestal_adc, config.noise_rms_adc, detector.threshold_adc,
        float(detector.max_adc), detector.zero_suppression_block, config.eta_acceptance_cut, int(seed),
    )
    return adc


def simulate_frame(config: SimulationConfig, seeds: np.random.SeedSequence, wedges=EVENT_WEDGE_ORDER) -> Frame:
    """Simulate one frame and return the requested wedges (default all 24).

    Charge is transported only into the requested wedges, so one wedge costs about a tenth of
    a whole frame.
    """
    wedges = _check_wedges(wedges)
    rng = np.random.default_rng(seeds)
    transport_seed, digitize_seed = (int(word) for word in seeds.generate_state(2, dtype=np.uint32))
    tracks, pileup = generate_tracks(config.collisions, config.detector, rng)
    charge = transport(tracks, config.detector, wedges, transport_seed)
    adc = digitize(charge, config, wedges, digitize_seed)
    return Frame(adc=adc, wedges=wedges, pileup_collisions=pileup, tracks=int(tracks.shape[0]))


def resolve_config(source, **changes) -> SimulationConfig:
    """Turn a preset name or a :class:`SimulationConfig` into a config with ``changes`` applied."""
    if isinstance(source, SimulationConfig):
        config = source
    elif isinstance(source, str):
        config = get_preset(source)
    else:
        raise TypeError(f"expected a preset name or a SimulationConfig, got {type(source).__name__}")
    return config.replace(**changes) if changes else config


def simulate_event(preset="auau-central-170khz", seed: int = 0, index: int = 0, **changes) -> np.ndarray:
    """Simulate frame ``index`` of a dataset run with ``seed`` and return its 24 wedges.

    Returns uint16 (24, 16, 192, 249): side 0 sectors 0..11, then side 1 sectors 0..11. The
    result equals the files that :func:`simulate_dataset` writes for that event.
    """
    config = resolve_config(preset, **changes)
    return simulate_frame(config, seed_sequence(seed, DATASET_STREAM, index)).adc


def simulate_wedges(source="auau-central-170khz", count: int = 1, seed: int = 0, **changes) -> list[np.ndarray]:
    """Simulate ``count`` wedges, each from its own frame, and return them as uint16 arrays.

    ``source`` is a preset name, a :class:`SimulationConfig`, or a float: a target mean
    occupancy between 5e-4 and 0.4, reached by scaling the track multiplicity of the central
    Au+Au preset (see :func:`find_multiplicity_scale`). The scale is found once per target and
    does not depend on ``seed``. Each wedge has a random side and sector. Every array is (16, 192, 249) = (layer, azimuth, time) of raw ADC counts.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative int, got {count!r}")
    if isinstance(source, (float, np.floating)) and not isinstance(source, bool):
        base = resolve_config("auau-central-170khz", **changes)
        scale = find_multiplicity_scale(base, float(source))
        config = base.replace(multiplicity_scale=base.collisions.multiplicity_scale * scale)
    else:
        config = resolve_config(source, **changes)

    wedges = []
    for index in range(count):
        choice = np.random.default_rng(seed_sequence(seed, WEDGE_CHOICE_STREAM, index)).integers(len(EVENT_WEDGE_ORDER))
        frame = simulate_frame(config, seed_sequence(seed, WEDGE_STREAM, index), [EVENT_WEDGE_ORDER[choice]])
        wedges.append(frame.adc[0])
    return wedges


def _noise_floor(config: SimulationConfig) -> float:
    detector = config.detector
    z = (detector.threshold_adc - detector.pedestal_adc) / config.noise_rms_adc
    crossing = 0.5 * math.erfc(z / math.sqrt(2.0))
    return detector.zero_suppression_block * crossing


def _probe_occupancy(config: SimulationConfig, scale: float, seed: int, probes: int) -> float:
    # Mean occupancy of single-wedge probe frames. Sparse wedges vary a lot from frame to
    # frame, so probes are added (up to 16 times ``probes``) until the standard error of the
    # mean is below 8 %. Probe i always uses the same seed, so successive scales compare like
    # with like.
    scaled = config.replace(multiplicity_scale=config.collisions.multiplicity_scale * scale)
    values = []
    while True:
        for index in range(len(values), len(values) + probes):
            wedge = EVENT_WEDGE_ORDER[index % len(EVENT_WEDGE_ORDER)]
            values.append(occupancy(simulate_frame(scaled, seed_sequence(seed, PROBE_STREAM, index), [wedge]).adc)[0])
        mean = float(np.mean(values))
        error = float(np.std(values)) / math.sqrt(len(values))
        if error <= 0.08 * mean or len(values) >= 16 * probes:
            return mean


@lru_cache(maxsize=64)
def find_multiplicity_scale(config: SimulationConfig, target: float, seed: int = 0, probes: int = 16) -> float:
    """Return the factor on the track multiplicity of ``config`` that gives mean occupancy ``target``.

    Occupancy saturates as tracks overlap, so the search works on the coverage
    ``-ln(1 - occupancy)`` above the noise floor, which grows about as a power of the
    multiplicity: secant steps in log-log space, measuring ``probes`` single-wedge frames at each
    step, until the measured mean is within 8 % of the target (at most 6 steps). The probes use
    their own seed stream, so the default ``seed`` gives one scale per (config, target) whatever
    the seed of the wedges simulated with it. Results are cached.
    """
    if not MIN_TARGET_OCCUPANCY <= target <= MAX_TARGET_OCCUPANCY:
        raise ValueError(
            f"target occupancy must be in {MIN_TARGET_OCCUPANCY:g}..{MAX_TARGET_OCCUPANCY:g}, got {target:g}"
        )
    floor = -math.log1p(-_noise_floor(config))

    def coverage(value: float) -> float:
        return max(-math.log1p(-value) - floor, 1e-9)

    target_coverage = coverage(target)
    scales = [1.0]
    measured = [_probe_occupancy(config, 1.0, seed, probes)]
    exponent = 1.0
    for _ in range(6):
        if abs(measured[-1] - target) <= 0.08 * target:
            break
        if len(scales) >= 2:
            rise = math.log(coverage(measured[-1])) - math.log(coverage(measured[-2]))
            run = math.log(scales[-1]) - math.log(scales[-2])
            if run != 0.0 and rise > 0.0:
                exponent = min(max(rise / run, 0.3), 3.0)
        step = (math.log(target_coverage) - math.log(coverage(measured[-1]))) / exponent
        scales.append(scales[-1] * math.exp(min(max(step, -5.0), 5.0)))
        measured.append(_probe_occupancy(config, scales[-1], seed, probes))
        log.debug("occupancy search: scale %.4g gives %.4g (target %.4g)", scales[-1], measured[-1], target)

    best = int(np.argmin([abs(value - target) for value in measured]))
    if abs(measured[best] - target) > 0.25 * target:
        log.warning(
            "occupancy target %.4g reached only %.4g (multiplicity scale %.4g)", target, measured[best], scales[best]
        )
    return scales[best]
