"""Single tracks through the transport kernel, checked against the geometry and response formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsecodec.data.layout import EVENT_WEDGE_ORDER
from sparsecodec.data.simulate import SPHENIX_2021 as DETECTOR
from sparsecodec.data.simulate.collisions import (
    CHARGE,
    COSH_ETA,
    DRIFT_SHIFT,
    IONIZATION,
    MAX_PATH,
    PHI,
    PT,
    SINH_ETA,
    TRACK_COLUMNS,
    Z0,
)
from sparsecodec.data.simulate.engine import transport

PITCH_RAD = 2 * math.pi / 2304
TIME_BIN = 0.424
LEAD = 0.032 / 0.053  # shaping widths in samples
TAIL = 0.048 / 0.053
MIP_ADC_PER_LAYER = 71.5 * 1.0625 * 1400 * 20 * 1.6e-4 * 2.4 * 1024 / 2200
LAYER_RADII = 60.0 + (np.arange(16) + 0.5) * 1.0625


def track(pt=50.0, phi=0.3, eta=0.0, charge=1.0, z0=-50.0, ionization=1.0, drift_shift=0.0, max_path=1e9):
    row = np.zeros(len(TRACK_COLUMNS))
    row[[PT, PHI, SINH_ETA, COSH_ETA, CHARGE, Z0, IONIZATION, DRIFT_SHIFT, MAX_PATH]] = (
        pt, phi, math.sinh(eta), math.cosh(eta), charge, z0, ionization, drift_shift, max_path,
    )
    return row


def deposit(rows, seed=0):
    """Charge of the given tracks in all 24 wedges: (24, 16, 192, 249)."""
    return transport(np.array(rows), DETECTOR, EVENT_WEDGE_ORDER, seed)


def pad_position(phi: float) -> float:
    """Continuous global pad coordinate of azimuth phi (pad i covers [i, i + 1))."""
    return (phi + math.pi) / PITCH_RAD


def moments(weights: np.ndarray, axis_values: np.ndarray) -> tuple[float, float]:
    total = weights.sum()
    mean = float((weights * axis_values).sum() / total)
    variance = float((weights * (axis_values - mean) ** 2).sum() / total)
    return mean, variance


def ring(charge: np.ndarray, side: int) -> np.ndarray:
    """(16, 2304, 249) charge of one side, sectors side by side in global pad order."""
    return np.concatenate([charge[side * 12 + sector] for sector in range(12)], axis=1)


def test_stiff_track_position_and_charge():
    pt = 500.0
    charge = deposit([track(phi=0.3, z0=-50.0, pt=pt) for _ in range(40)], seed=1)
    assert charge[12:].sum() == 0, "a track at z < 0 must leave charge on side 0 only"
    side0 = ring(charge, 0)
    radius = pt * 100 / (0.299792458 * 1.4)
    expected_time = (105.5 - 50.0) / TIME_BIN - 0.5 + 0.5 * math.sqrt(2 / math.pi) * (TAIL - LEAD)
    for layer in range(16):
        # Even at 500 GeV the helix bends by about 0.1 pad at these radii.
        expected_pad = pad_position(0.3 - math.asin(LAYER_RADII[layer] / (2 * radius))) - 0.5
        pad_mean, _ = moments(side0[layer].sum(axis=1), np.arange(2304))
        time_mean, _ = moments(side0[layer].sum(axis=0), np.arange(249))
        assert pad_mean == pytest.approx(expected_pad, abs=0.08), f"layer {layer}"
        assert time_mean == pytest.approx(expected_time, abs=0.1), f"layer {layer}"
    per_layer = side0.sum(axis=(1, 2)) / 40
    assert per_layer.mean() == pytest.approx(MIP_ADC_PER_LAYER, rel=0.1)


def test_charge_spread_matches_diffusion_and_responses():
    for z0, drift in ((-100.0, 5.5), (-5.0, 100.5)):
        charge = ring(deposit([track(z0=z0, pt=500.0) for _ in range(40)], seed=2), 0)
        pitch = LAYER_RADII[:, None] * PITCH_RAD
        sigma_t2 = 0.004**2 * drift + 0.085**2
        sigma_l2 = 0.012**2 * drift + 0.105**2
        expected_pad = ((sigma_t2 + 0.04**2) / pitch**2 + 1 / 6).mean()
        shaping_mean = 0.5 * math.sqrt(2 / math.pi) * (TAIL - LEAD)
        expected_time = sigma_l2 / TIME_BIN**2 + 0.5 * (LEAD**2 + TAIL**2) - shaping_mean**2 + 1 / 12
        pad_var = np.mean([moments(charge[layer].sum(axis=1), np.arange(2304))[1] for layer in range(16)])
        time_var = np.mean([moments(charge[layer].sum(axis=0), np.arange(249))[1] for layer in range(16)])
        assert pad_var == pytest.approx(expected_pad, rel=0.1), f"drift {drift} cm"
        assert time_var == pytest.approx(expected_time, rel=0.1), f"drift {drift} cm"


@pytest.mark.parametrize("charge_sign", [1.0, -1.0])
def test_curvature_follows_helix(charge_sign):
    pt = 0.5
    radius = pt * 100 / (0.299792458 * 1.4)
    charge = ring(deposit([track(pt=pt, phi=0.3, charge=charge_sign) for _ in range(20)], seed=3), 0)
    for layer in (0, 8, 15):
        # A positive track turns clockwise in a field along +z, so its azimuth falls with radius.
        phi = 0.3 - charge_sign * math.asin(LAYER_RADII[layer] / (2 * radius))
        pad_mean, _ = moments(charge[layer].sum(axis=1), np.arange(2304))
        assert pad_mean == pytest.approx(pad_position(phi) - 0.5, abs=0.3), f"layer {layer}"


def test_side_one_time_index_runs_against_drift():
    eta, z0 = 0.3, 20.0
    charge = deposit([track(eta=eta, z0=z0, pt=500.0) for _ in range(20)], seed=4)
    assert charge[:12].sum() == 0, "a track at z > 0 must leave charge on side 1 only"
    side1 = ring(charge, 1)
    for layer in (0, 15):
        z = z0 + LAYER_RADII[layer] * math.sinh(eta)
        tau = (105.5 - z) / TIME_BIN
        # Index = floor(211 / 0.424 - 249 - tau): the shaping tail points to lower indices.
        expected = 211 / TIME_BIN - 249 - tau - 0.5 - 0.5 * math.sqrt(2 / math.pi) * (TAIL - LEAD)
        time_mean, _ = moments(side1[layer].sum(axis=0), np.arange(249))
        assert time_mean == pytest.approx(expected, abs=0.25), f"layer {layer}"


def test_pileup_shift_moves_charge_in_time():
    base = ring(deposit([track(z0=-60.0)], seed=5), 0)
    shifted = ring(deposit([track(z0=-60.0, drift_shift=10.0)], seed=5), 0)
    base_mean, _ = moments(base.sum(axis=(0, 1)), np.arange(249))
    shifted_mean, _ = moments(shifted.sum(axis=(0, 1)), np.arange(249))
    assert shifted_mean - base_mean == pytest.approx(10.0 / TIME_BIN, abs=0.3)
    early = deposit([track(z0=-60.0, drift_shift=-60.0)], seed=5)
    assert early.sum() == 0, "charge that arrived before the frame must be dropped"


def test_looper_turns_inside_outer_group():
    pt = 0.14
    top = 2 * pt * 100 / (0.299792458 * 1.4)  # 66.7 cm
    charge = deposit([track(pt=pt, eta=0.05, z0=-60.0, max_path=2 * math.pi * pt * 238.2 * 0.9)], seed=6)
    per_layer = charge.sum(axis=(0, 2, 3))
    reached = LAYER_RADII < top - 0.6
    beyond = LAYER_RADII > top + 0.6
    assert (per_layer[reached] > 0.5 * MIP_ADC_PER_LAYER).all()
    assert per_layer[beyond].sum() < 1.0


def test_path_limit_and_ionization_scale():
    stopped = deposit([track(max_path=66.0)], seed=7).sum(axis=(0, 2, 3))
    assert stopped[LAYER_RADII > 66.6].sum() == 0
    assert stopped[LAYER_RADII < 65.4].min() > 0
    single = deposit([track() for _ in range(20)], seed=8).sum()
    double = deposit([track(ionization=2.0) for _ in range(20)], seed=8).sum()
    assert double / single == pytest.approx(2.0, rel=0.15)


def test_only_requested_wedges_are_filled():
    phi = -math.pi + (5 * 192 + 96) * PITCH_RAD  # centre of sector 5
    all_wedges = deposit([track(phi=phi) for _ in range(10)], seed=9)
    one = transport(np.array([track(phi=phi) for _ in range(10)]), DETECTOR, [(0, 5)], 9)
    assert one.shape == (1, 16, 192, 249)
    assert one.sum() == pytest.approx(all_wedges[5].sum(), rel=0.1)
    assert all_wedges[5].sum() == pytest.approx(all_wedges.sum())


def test_transport_rejects_bad_tracks():
    with pytest.raises(ValueError, match="tracks must have shape"):
        transport(np.zeros((3, 4)), DETECTOR)
    with pytest.raises(ValueError, match="distinct"):
        transport(np.zeros((0, len(TRACK_COLUMNS))), DETECTOR, [(0, 1), (0, 1)])
    with pytest.raises(ValueError, match="outside"):
        transport(np.zeros((0, len(TRACK_COLUMNS))), DETECTOR, [(2, 1)])
