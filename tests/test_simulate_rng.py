"""The simulator's xoshiro256** generator and its distributions."""

from __future__ import annotations

import math
from statistics import NormalDist

import numba
import numpy as np
import pytest

from sparsecodec.data.simulate.rng import (
    fill_normal,
    fill_uniform,
    geometric_gap,
    inverse_normal_cdf,
    new_state,
    normal_above,
    normal_below,
)


@numba.njit
def _draw(kind, seed, count, parameter):
    state = new_state(seed)
    out = np.empty(count)
    for i in range(count):
        if kind == 0:
            out[i] = normal_above(state, parameter)
        elif kind == 1:
            out[i] = normal_below(state, parameter)
        else:
            out[i] = geometric_gap(state, math.log1p(-parameter))
    return out


def test_same_seed_same_stream():
    first = np.empty(1000)
    second = np.empty(1000)
    fill_uniform(new_state(7), first)
    fill_uniform(new_state(7), second)
    assert np.array_equal(first, second)
    fill_uniform(new_state(8), second)
    assert not np.array_equal(first, second)


def test_uniform_moments():
    values = np.empty(400_000)
    fill_uniform(new_state(1), values)
    assert values.min() > 0.0
    assert values.max() < 1.0
    assert values.mean() == pytest.approx(0.5, abs=0.002)
    assert values.var() == pytest.approx(1 / 12, rel=0.01)
    counts = np.histogram(values, bins=10, range=(0, 1))[0]
    assert np.abs(counts - 40_000).max() < 5 * math.sqrt(40_000)


@pytest.mark.parametrize("u", [1e-12, 1e-6, 0.001, 0.02425, 0.1, 0.3, 0.5, 0.7, 0.97, 0.999, 1 - 1e-9])
def test_inverse_normal_cdf_matches_stdlib(u):
    expected = NormalDist().inv_cdf(u)
    assert inverse_normal_cdf(u) == pytest.approx(expected, rel=1e-8, abs=1e-9)


def test_normal_moments():
    values = np.empty(400_000)
    fill_normal(new_state(2), values)
    assert values.mean() == pytest.approx(0.0, abs=0.005)
    assert values.std() == pytest.approx(1.0, abs=0.005)
    assert np.mean(values > 2.0) == pytest.approx(1 - NormalDist().cdf(2.0), rel=0.05)


def test_normal_tail_samples():
    threshold = 4.0
    values = _draw(0, 3, 100_000, threshold)
    assert values.min() > threshold
    # Mean of a standard normal above a: pdf(a) / (1 - cdf(a)).
    expected = NormalDist().pdf(threshold) / (1 - NormalDist().cdf(threshold))
    assert values.mean() == pytest.approx(expected, abs=0.005)


def test_normal_below_samples():
    values = _draw(1, 4, 100_000, 1.0)
    assert values.max() <= 1.0
    expected = -NormalDist().pdf(1.0) / NormalDist().cdf(1.0)
    assert values.mean() == pytest.approx(expected, abs=0.01)


def test_geometric_gap_mean():
    probability = 0.01
    values = _draw(2, 5, 200_000, probability)
    assert values.min() >= 0
    assert values.mean() == pytest.approx((1 - probability) / probability, rel=0.02)
