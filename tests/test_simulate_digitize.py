"""Digitization: pedestal, noise, 5-sample zero suppression, saturation and the eta cut."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from sparsecodec.data.simulate import SPHENIX_2021 as DETECTOR
from sparsecodec.data.simulate.engine import eta_cut_mask
from sparsecodec.data.simulate.kernels import digitize

PEDESTAL = DETECTOR.pedestal_adc
THRESHOLD = DETECTOR.threshold_adc
SAMPLES = 249


def run(grid, sides=(0,), noise=1.0, cut=None, seed=0):
    """Digitize a (slots, layers, pads, 249) float32 charge grid with the detector's ADC settings."""
    grid = np.ascontiguousarray(grid, dtype=np.float32)
    slots, layers = grid.shape[:2]
    out = np.zeros(grid.shape, np.uint16)
    mask = np.zeros((2, layers, SAMPLES), bool) if cut is None else cut
    first = np.where(mask.any(axis=2), mask.argmax(axis=2), -1).astype(np.int64)
    last = np.where(mask.any(axis=2), SAMPLES - 1 - mask[:, :, ::-1].argmax(axis=2), -1).astype(np.int64)
    digitize(
        grid, out, np.array(sides, np.int32), mask, first, last, PEDESTAL, noise, THRESHOLD, 1023.0, 5,
        cut is not None, seed,
    )
    return out


def test_detector_adc_constants():
    assert PEDESTAL == pytest.approx(74.47, abs=0.01)
    assert THRESHOLD == pytest.approx(78.49, abs=0.01)
    assert DETECTOR.noise_adc == pytest.approx(0.998, abs=0.001)
    assert DETECTOR.adc_per_electron == pytest.approx(3.575e-3, rel=1e-3)


def test_spike_records_block_of_five_in_drift_order():
    grid = np.zeros((2, 1, 1, SAMPLES), np.float32)
    grid[:, 0, 0, 100] = 50.0
    out = run(grid, sides=(0, 1))
    assert np.nonzero(out[0, 0, 0])[0].tolist() == [100, 101, 102, 103, 104]
    # On side 1 the index runs against drift time, so the block extends to lower indices.
    assert np.nonzero(out[1, 0, 0])[0].tolist() == [96, 97, 98, 99, 100]
    assert 120 <= out[0, 0, 0, 100] <= 129
    trailing = out[0, 0, 0, 101:105]
    assert (trailing >= 68).all()
    assert (trailing <= 78).all()


def test_long_signal_retriggers_blocks():
    grid = np.zeros((1, 1, 1, SAMPLES), np.float32)
    grid[0, 0, 0, 100:108] = 40.0
    out = run(grid)
    assert np.nonzero(out[0, 0, 0])[0].tolist() == list(range(100, 110))


def test_block_is_cut_at_frame_end():
    grid = np.zeros((1, 1, 1, SAMPLES), np.float32)
    grid[0, 0, 0, 247] = 40.0
    assert np.nonzero(run(grid)[0, 0, 0])[0].tolist() == [247, 248]


def test_saturation_at_1023():
    grid = np.zeros((1, 1, 1, SAMPLES), np.float32)
    grid[0, 0, 0, 10:13] = [5000.0, 960.0, 900.0]
    values = run(grid)[0, 0, 0, 10:13]
    assert values[0] == 1023
    assert values[1] == 1023
    assert 972 <= values[2] <= 978


def test_small_signal_below_threshold_is_dropped():
    grid = np.zeros((1, 1, 8, SAMPLES), np.float32)
    grid[0, 0, :, 50] = 1.0  # 75.5 + noise stays below 78.5 unless the noise exceeds 3 sigma
    out = run(grid, noise=0.5)
    assert not out.any()


def test_noise_crossings_follow_gaussian_tail():
    rows = 4000
    out = run(np.zeros((1, 1, rows, SAMPLES), np.float32), noise=1.0, seed=3)
    starts = 0
    for row in out[0, 0]:
        recorded = row != 0
        starts += int(recorded[0]) + int(np.count_nonzero(recorded[1:] & ~recorded[:-1]))
    # Each crossing opens a block that hides the next four samples from the scan.
    probability = 1 - NormalDist().cdf(THRESHOLD - PEDESTAL)
    expected = rows * SAMPLES * probability / (1 + 4 * probability)
    assert starts == pytest.approx(expected, rel=5 / math.sqrt(expected))
    values = out[out != 0]
    assert values.min() >= 68
    assert values.max() <= 84


def reference_eta_cut(recorded: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Apply the public data's rule, written independently of the kernel.

    Samples are walked in index order. A sample beyond the cut survives only when it continues
    a wavelet that already survived.
    """
    kept = recorded.copy()
    previous_kept = False
    for index in range(recorded.size):
        if recorded[index] == 0:
            previous_kept = False
        elif cut[index] and not previous_kept:
            kept[index] = 0
            previous_kept = False
        else:
            previous_kept = True
    return kept


def test_eta_cut_matches_reference_rule():
    rng = np.random.default_rng(5)
    grid = np.where(rng.random((2, 16, 24, SAMPLES)) < 0.03, 60.0, 0.0).astype(np.float32)
    mask = eta_cut_mask(DETECTOR)
    without = run(grid, sides=(0, 1), seed=11)
    with_cut = run(grid, sides=(0, 1), cut=np.array(mask), seed=11)
    for slot, side in enumerate((0, 1)):
        for layer in range(16):
            for pad in range(24):
                expected = reference_eta_cut(without[slot, layer, pad], mask[side, layer])
                assert np.array_equal(with_cut[slot, layer, pad], expected), (side, layer, pad)
    assert with_cut.sum() < without.sum()


def test_eta_cut_region():
    mask = eta_cut_mask(DETECTOR)
    # Layer 0 (r = 60.53 cm) is cut for |z| > 10 + 60.53 * sinh(1.1) = 90.85 cm: the first 35
    # samples from the readout on side 0 and the last 35 on side 1.
    assert np.nonzero(mask[0, 0])[0].tolist() == list(range(35))
    assert np.nonzero(mask[1, 0])[0].tolist() == list(range(214, 249))
    # From layer 11 (r = 72.2 cm) on the cut lies beyond the drift volume.
    assert not mask[:, 11:].any()
    assert mask[:, 10].any()
