"""Collision model (multiplicity, spectra, pileup) and the readout response tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsecodec.data.simulate import SPHENIX_2021 as DETECTOR
from sparsecodec.data.simulate import CollisionModel
from sparsecodec.data.simulate.collisions import (
    DRIFT_SHIFT,
    PT,
    SPECIES,
    X0,
    Y0,
    auau_dndeta,
    generate_tracks,
    ionization_factor,
    pt_inverse_cdf,
)
from sparsecodec.data.simulate.responses import (
    PAD_REACH,
    SUBDIVISIONS,
    TIME_REACH,
    build_tables,
    cluster_size_distribution,
    zigzag_pad_share,
)


@pytest.mark.parametrize("name", sorted(SPECIES))
def test_pt_spectrum_has_requested_mean(name):
    mass, _, mean_pt, _ = SPECIES[name]
    cdf, grid = pt_inverse_cdf(mass, mean_pt)
    samples = np.interp(np.random.default_rng(0).random(200_000), cdf, grid)
    assert samples.mean() == pytest.approx(mean_pt, rel=0.01)
    assert samples.min() >= 0.0


def test_ionization_factor_shape():
    assert ionization_factor(np.array([3.5]))[0] == pytest.approx(1.0, abs=0.01)
    assert ionization_factor(np.array([1e4]))[0] == pytest.approx(1.5)
    low = ionization_factor(np.array([0.3, 0.5, 1.0]))
    assert low[0] > low[1] > low[2] > 1.0
    # 1/beta^2 growth: a proton of 0.3 GeV/c loses several times the minimum.
    assert low[0] > 5.0


def test_auau_multiplicity_by_centrality():
    assert auau_dndeta(np.array([2.5]))[0] == 625.0
    values = auau_dndeta(np.linspace(0, 100, 1001))
    assert (np.diff(values) <= 0).all()
    assert values.mean() == pytest.approx(160, rel=0.05)


def test_central_trigger_track_count():
    model = CollisionModel(pileup_rate_khz=0.0, secondaries_per_primary=0.0)
    counts = [generate_tracks(model, DETECTOR, np.random.default_rng(seed))[0].shape[0] for seed in range(20)]
    # 0-10 % central: dNch/deta between 520 and 625 over |eta| < 1.6.
    assert 520 * 3.2 * 0.97 < np.mean(counts) < 625 * 3.2 * 1.03


def test_pileup_count_and_time_shift():
    model = CollisionModel(system="pp", pileup_rate_khz=170.0, pp_dndeta=0.5, secondaries_per_primary=0.0)
    pileups = []
    shifts = []
    for seed in range(3000):
        tracks, pileup = generate_tracks(model, DETECTOR, np.random.default_rng(seed))
        pileups.append(pileup)
        shifts.append(tracks[:, DRIFT_SHIFT])
    window = DETECTOR.drift_length / DETECTOR.drift_velocity
    assert np.mean(pileups) == pytest.approx(0.170 * 2 * window, rel=0.05)
    shifts = np.concatenate(shifts)
    assert np.abs(shifts).max() <= DETECTOR.drift_length
    assert np.count_nonzero(shifts) > 0.5 * shifts.size


def test_secondaries_start_between_beam_pipe_and_field_cage():
    model = CollisionModel(pileup_rate_khz=0.0, secondaries_per_primary=1.0, multiplicity_scale=0.1)
    tracks, _ = generate_tracks(model, DETECTOR, np.random.default_rng(1))
    start = np.hypot(tracks[:, X0], tracks[:, Y0])
    secondary = start > 0
    assert secondary.sum() == pytest.approx((~secondary).sum(), rel=0.3)
    assert start[secondary].min() >= 2.0
    assert start[secondary].max() <= 20.0
    assert tracks[secondary, PT].mean() == pytest.approx(0.3, rel=0.1)


def test_collision_model_rejects_bad_settings():
    with pytest.raises(ValueError, match="system must be"):
        CollisionModel(system="pbpb")
    with pytest.raises(ValueError, match="trigger_centrality"):
        CollisionModel(trigger_centrality=(20.0, 10.0))
    with pytest.raises(ValueError, match="pileup_rate_khz must be a finite non-negative"):
        CollisionModel(pileup_rate_khz=-1.0)
    with pytest.raises(ValueError, match="max_turns must be a finite positive"):
        CollisionModel(max_turns=0.0)


def test_pad_share_of_centred_electron_matches_numerical_convolution():
    sigma = 0.2
    offsets = np.array([-1.0, 0.0, 1.0])
    grid = np.linspace(-3, 3, 60001)
    gauss = np.exp(-0.5 * (grid / sigma) ** 2)
    gauss /= gauss.sum()
    for offset in offsets:
        tent = np.clip(1 - np.abs(grid - offset), 0, None)
        assert zigzag_pad_share(np.array([offset]), sigma)[0] == pytest.approx((tent * gauss).sum(), abs=1e-6)


def test_response_tables_are_normalized_and_symmetric():
    tables = build_tables(DETECTOR)
    assert np.allclose(tables.pad_share.sum(axis=-1), 1.0, atol=1e-6)
    assert np.allclose(tables.time_share.sum(axis=-1), 1.0, atol=1e-6)
    mirrored = tables.pad_share[:, ::-1, ::-1]
    assert np.allclose(tables.pad_share, mirrored, atol=1e-6)
    assert np.allclose(tables.time_share[1], tables.time_share[0, ::-1, ::-1], atol=1e-6)
    assert tables.pad_share.shape[-1] == 2 * PAD_REACH + 1
    assert tables.time_share.shape == (2, SUBDIVISIONS, 2 * TIME_REACH + 1)
    near_centre = tables.pad_share[8, SUBDIVISIONS // 2]
    assert near_centre[PAD_REACH] > 0.75
    assert near_centre[PAD_REACH - 1] + near_centre[PAD_REACH + 1] == pytest.approx(1 - near_centre[PAD_REACH], abs=1e-3)


def test_cluster_sizes_have_mean_and_inverse_square_tail():
    cdf = cluster_size_distribution(71.5 / 31.5)
    probabilities = np.diff(np.concatenate([[0.0], cdf]))
    sizes = np.arange(1, cdf.size + 1)
    assert (probabilities * sizes).sum() == pytest.approx(71.5 / 31.5)
    assert probabilities[9] / probabilities[19] == pytest.approx(4.0)
    assert 0.5 < probabilities[0] < 0.95
    with pytest.raises(ValueError, match="cannot reach a mean cluster size"):
        cluster_size_distribution(0.9)
    assert math.isclose(cdf[-1], 1.0)
