"""The numba Mersenne Twister against torch's own CPU generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecodec.kernels.mt19937 import STATE_WORDS, fill_uniform

# Each float64 takes two 32-bit outputs, so lengths around STATE_WORDS / 2 and STATE_WORDS cross
# one and two refills of the state.
LENGTHS = [0, 1, 2, STATE_WORDS // 2 - 1, STATE_WORDS // 2, STATE_WORDS // 2 + 1, STATE_WORDS, 3 * STATE_WORDS + 5]
SEEDS = [0, 1, 5489, 2**31, 2**32 - 1, 2**32, 2**32 + 7, 2**63 - 1, 2**64 - 1, 123456789012345]


@pytest.mark.parametrize("seed", SEEDS)
def test_fill_uniform_matches_torch(seed):
    for length in LENGTHS:
        expected = torch.rand(length, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
        result = np.full(length, np.nan)
        fill_uniform(np.uint64(seed), result)
        assert np.array_equal(result, expected), f"seed {seed}, length {length}"


def test_fill_uniform_range_and_spread():
    values = np.empty(100_000)
    fill_uniform(np.uint64(42), values)
    assert values.min() >= 0.0
    assert values.max() < 1.0
    assert abs(values.mean() - 0.5) < 0.005
    assert np.unique(values).shape[0] == values.shape[0]


def test_fill_uniform_into_slice():
    # The random gate fills one wedge's part of a larger array.
    values = np.zeros(30)
    fill_uniform(np.uint64(9), values[10:20])
    expected = torch.rand(10, generator=torch.Generator().manual_seed(9), dtype=torch.float64).numpy()
    assert np.array_equal(values[10:20], expected)
    assert not values[:10].any()
    assert not values[20:].any()
