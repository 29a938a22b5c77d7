"""The vector run kernels against the scalar stencil kernels, which they must match bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecodec.kernels.simd import LANES
from sparsecodec.kernels.stack_jobs import GRID_SLACK, position_runs
from sparsecodec.kernels.stencil_runs import FUSED_KERNELS, RUN_KERNELS
from sparsecodec.kernels.stencil_small import KERNELS

#: A padded grid of 12 x 14 x 40 sites: large enough for dilation-2 offsets around every site.
PADDED = (12, 14, 40)
PAD = 2


def python_runs(flat):
    """Return the run offsets of ``flat`` by the definition: breaks where a position does not follow the last."""
    offsets = [0]
    for i in range(1, len(flat)):
        if flat[i] != flat[i - 1] + 1 or i - offsets[-1] == LANES:
            offsets.append(i)
    offsets.append(len(flat))
    return np.array(offsets, dtype=np.int64)


def positions_with_runs(seed, shuffle=False):
    """Return int64 grid positions made of time runs of 1 to 12 sites, inside the padding."""
    rng = np.random.default_rng(seed)
    sites = set()
    for _ in range(60):
        layer = rng.integers(PAD, PADDED[0] - PAD)
        row = rng.integers(PAD, PADDED[1] - PAD)
        length = int(rng.integers(1, 13))
        time = int(rng.integers(PAD, PADDED[2] - PAD - length))
        base = (layer * PADDED[1] + row) * PADDED[2]
        sites.update(base + time + step for step in range(length))
    flat = np.array(sorted(sites), dtype=np.int64)
    if shuffle:
        flat = flat[rng.permutation(flat.shape[0])]
    return flat


def dilated_deltas(dilation):
    steps = []
    for dl in (-dilation, 0, dilation):
        for dr in (-dilation, 0, dilation):
            for dt in (-dilation, 0, dilation):
                steps.append((dl * PADDED[1] + dr) * PADDED[2] + dt)
    return np.array(steps, dtype=np.int64)


@pytest.mark.parametrize("shuffle", [False, True], ids=["sorted", "shuffled"])
def test_position_runs_match_definition(shuffle):
    flat = positions_with_runs(1, shuffle)
    assert np.array_equal(position_runs(flat), python_runs(flat))


def test_position_runs_cap_and_single_row():
    flat = np.arange(100, 100 + 2 * LANES + 3, dtype=np.int64)
    assert np.array_equal(position_runs(flat), [0, LANES, 2 * LANES, 2 * LANES + 3])
    assert np.array_equal(position_runs(flat[:1]), [0, 1])
    assert np.array_equal(position_runs(flat[:0]), [0])


@pytest.mark.parametrize("channels", sorted(RUN_KERNELS), ids=lambda c: f"{c[0]}to{c[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("activation", [0, 1, 2], ids=["none", "relu", "sigmoid"])
@pytest.mark.parametrize("target_rows", [False, True], ids=["to_grid", "to_rows"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["sorted", "shuffled"])
def test_run_kernel_matches_scalar_kernel(channels, dtype, activation, target_rows, shuffle):
    c_in, c_out = channels
    flat = positions_with_runs(2, shuffle)
    runs = position_runs(flat)
    assert (np.diff(runs) > 1).any()
    assert (np.diff(runs) == 1).any()
    deltas = dilated_deltas(2)
    rng = np.random.default_rng(3)
    weight = rng.standard_normal(deltas.shape[0] * c_in * c_out).astype(dtype)
    sites = PADDED[0] * PADDED[1] * PADDED[2]
    # Every site contains a value, so the lanes past the end of a run read non-zero neighbours too.
    source = rng.standard_normal(2 * sites + GRID_SLACK).astype(dtype)
    size = flat.shape[0] * c_out if target_rows else 2 * sites
    expected = np.zeros(size, dtype=dtype)
    KERNELS[(c_in, c_out, 2)](0, flat.shape[0], flat, deltas, weight, activation, source, expected, target_rows)
    result = np.zeros(size, dtype=dtype)
    RUN_KERNELS[channels](0, runs.shape[0] - 1, runs, flat, deltas, weight, activation, source, result, target_rows)
    assert np.array_equal(result, expected)


def test_run_kernel_near_grid_end_without_slack():
    # Runs whose vector load would pass the end of a grid without slack still give the scalar result.
    sites = PADDED[0] * PADDED[1] * PADDED[2]
    deltas = dilated_deltas(1)
    last = sites - PADDED[1] * PADDED[2] - PADDED[2] - 6
    flat = np.arange(last, last + 4, dtype=np.int64)
    runs = position_runs(flat)
    rng = np.random.default_rng(4)
    weight = rng.standard_normal(deltas.shape[0] * 4).astype(np.float32)
    source = rng.standard_normal(2 * sites).astype(np.float32)
    expected = np.zeros(flat.shape[0] * 2, dtype=np.float32)
    KERNELS[(2, 2, 2)](0, flat.shape[0], flat, deltas, weight, 1, source, expected, True)
    result = np.zeros_like(expected)
    RUN_KERNELS[(2, 2)](0, runs.shape[0] - 1, runs, flat, deltas, weight, 1, source, result, True)
    assert np.array_equal(result, expected)


def test_run_kernel_range_of_runs():
    # Only the runs [first_run, stop_run) are written.
    flat = positions_with_runs(5)
    runs = position_runs(flat)
    deltas = dilated_deltas(1)
    rng = np.random.default_rng(6)
    weight = rng.standard_normal(deltas.shape[0] * 4).astype(np.float32)
    source = rng.standard_normal(2 * PADDED[0] * PADDED[1] * PADDED[2] + GRID_SLACK).astype(np.float32)
    result = np.full(flat.shape[0] * 2, np.nan, dtype=np.float32)
    RUN_KERNELS[(2, 2)](2, 5, runs, flat, deltas, weight, 0, source, result, True)
    written = ~np.isnan(result.reshape(-1, 2)[:, 0])
    assert np.array_equal(np.flatnonzero(written), np.arange(runs[2], runs[5]))


@pytest.mark.parametrize("channels", sorted(FUSED_KERNELS), ids=lambda c: f"{c[0]}to{c[1]}to{c[2]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["sorted", "shuffled"])
def test_fused_kernel_matches_two_layers(channels, dtype, shuffle):
    # A layer then a 1 x 1 x 1 layer, each through its own kernel and a grid, must give the
    # fused kernel's rows bit for bit, with every activation pair.
    c_in, c_mid, c_out = channels
    flat = positions_with_runs(7, shuffle)
    runs = position_runs(flat)
    deltas = dilated_deltas(1)
    rng = np.random.default_rng(8)
    weight = rng.standard_normal(deltas.shape[0] * c_in * c_mid).astype(dtype)
    point_weight = rng.standard_normal(c_mid * c_out).astype(dtype)
    sites = PADDED[0] * PADDED[1] * PADDED[2]
    source = rng.standard_normal(2 * sites + GRID_SLACK).astype(dtype)
    for activation in (0, 1, 2):
        for point_activation in (0, 1, 2):
            middle = np.zeros(2 * sites + GRID_SLACK, dtype=dtype)
            RUN_KERNELS[(c_in, c_mid)](0, runs.shape[0] - 1, runs, flat, deltas, weight, activation, source, middle,
                                       False)
            expected = np.zeros(flat.shape[0] * c_out, dtype=dtype)
            KERNELS[(c_mid, c_out, 2)](0, flat.shape[0], flat, np.zeros(1, dtype=np.int64), point_weight,
                                       point_activation, middle, expected, True)
            result = np.zeros_like(expected)
            FUSED_KERNELS[channels](0, runs.shape[0] - 1, runs, flat, deltas, weight, activation, point_weight,
                                    point_activation, source, result)
            assert np.array_equal(result, expected), f"activations {activation}, {point_activation}"
