"""Simulated events and datasets: determinism, presets, zero-suppression rules, occupancy targets."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecodec.data import WEDGE_SHAPE, load_wedge, read_manifest, read_occupancy_table
from sparsecodec.data.layout import EVENT_WEDGE_ORDER
from sparsecodec.data.simulate import (
    PRESETS,
    SPHENIX_2021,
    get_preset,
    simulate_dataset,
    simulate_event,
    simulate_wedges,
)
from sparsecodec.data.simulate.collisions import (
    CHARGE,
    COSH_ETA,
    IONIZATION,
    MAX_PATH,
    PHI,
    PT,
    SINH_ETA,
    TRACK_COLUMNS,
    Z0,
)
from sparsecodec.data.simulate.engine import digitize, eta_cut_mask, transport
from sparsecodec.data.statistics import occupancy

THRESHOLD_FLOOR = int(np.floor(SPHENIX_2021.threshold_adc))  # 78: floor of a value above 78.5


def test_same_seed_same_event():
    first = simulate_event("pp", seed=5, index=2)
    second = simulate_event("pp", seed=5, index=2)
    assert first.shape == (24, *WEDGE_SHAPE)
    assert first.dtype == np.uint16
    assert np.array_equal(first, second)
    assert not np.array_equal(first, simulate_event("pp", seed=6, index=2))
    assert not np.array_equal(first, simulate_event("pp", seed=5, index=3))


def test_same_seed_same_wedges():
    first = simulate_wedges("auau-minbias", 3, seed=9)
    second = simulate_wedges("auau-minbias", 3, seed=9)
    assert len(first) == 3
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], first[1])


def time_ordered_runs(row: np.ndarray, side: int):
    """(start, stop, touches_frame_end) of each run of recorded samples, in drift-time order."""
    ordered = row if side == 0 else row[::-1]
    recorded = np.concatenate([[False], ordered != 0, [False]])
    edges = np.flatnonzero(np.diff(recorded.astype(np.int8)))
    return [(start, stop, stop == row.size) for start, stop in zip(edges[::2], edges[1::2])]


def check_zero_suppression(event: np.ndarray, exact_blocks: bool) -> None:
    values = event[event != 0]
    assert values.min() >= 64, "every recorded value is above the BCAE cut of 64"
    assert values.max() <= 1023
    if not exact_blocks:
        return
    for (side, _), wedge in zip(EVENT_WEDGE_ORDER, event):
        for row in wedge.reshape(-1, WEDGE_SHAPE[2]):
            if not row.any():
                continue
            ordered = row if side == 0 else row[::-1]
            for start, stop, at_end in time_ordered_runs(row, side):
                assert ordered[start] >= THRESHOLD_FLOOR, "a run starts with a sample above threshold"
                assert at_end or (stop - start) % 5 == 0, "runs are whole 5-sample blocks"


@pytest.mark.parametrize("preset", ["pp", "auau-minbias"])
def test_zero_suppression_blocks(preset):
    event = simulate_event(preset, seed=1, eta_acceptance_cut=False)
    check_zero_suppression(event, exact_blocks=True)


def test_eta_cut_only_clears_samples():
    without = simulate_event("auau-minbias", seed=2, eta_acceptance_cut=False)
    with_cut = simulate_event("auau-minbias", seed=2)
    cleared = (without != 0) & (with_cut == 0)
    assert not ((with_cut != 0) & (with_cut != without)).any()
    assert cleared.any()
    mask = eta_cut_mask(SPHENIX_2021)
    for index, (side, _) in enumerate(EVENT_WEDGE_ORDER):
        layers, _, samples = np.nonzero(cleared[index])
        assert mask[side, layers, samples].all(), "only samples beyond the cut are cleared"


def test_saturation_from_heavily_ionizing_track():
    row = np.zeros(len(TRACK_COLUMNS))
    # A slow proton loses about 20 times the energy of a minimum-ionizing particle.
    row[[PT, PHI, SINH_ETA, COSH_ETA, CHARGE, IONIZATION, Z0, MAX_PATH]] = [1.0, 0.3, 0.0, 1.0, 1.0, 20.0, -40.0, 1e9]
    charge = transport(row[None, :], SPHENIX_2021, seed=3)
    adc = digitize(charge, get_preset("pp"), seed=4)
    assert adc.max() == 1023
    assert adc[adc != 0].min() >= 64


@pytest.fixture(scope="module")
def central_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("central")
    summary = simulate_dataset(root, events=1, seed=3, progress=False)
    return root, summary


def test_every_file_obeys_adc_rules(central_dataset):
    root, _ = central_dataset
    paths = read_manifest(root, "train") + read_manifest(root, "test")
    assert len(paths) == 24
    event = np.stack([load_wedge(path) for path in paths])
    check_zero_suppression(event, exact_blocks=False)


def test_dataset_summary_matches_table(central_dataset):
    root, summary = central_dataset
    records = read_occupancy_table(root)
    assert [record.occupancy for record in records] == pytest.approx(summary.occupancies.tolist(), abs=1e-6)
    assert (root / "simulation.json").is_file()
    assert {record.split for record in records} == {"train"}, "a single event goes to train"


def test_existing_dataset_needs_overwrite(central_dataset):
    root, _ = central_dataset
    with pytest.raises(FileExistsError, match="already contains a dataset"):
        simulate_dataset(root, preset="pp", events=1, progress=False)


def test_parallel_workers_write_same_files(tmp_path):
    simulate_dataset(tmp_path / "one", preset="pp", events=2, seed=8, progress=False)
    simulate_dataset(tmp_path / "two", preset="pp", events=2, seed=8, workers=2, progress=False)
    for path in read_manifest(tmp_path / "one", "test"):
        relative = path.relative_to(tmp_path / "one")
        assert np.array_equal(load_wedge(path), load_wedge(tmp_path / "two" / relative))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_occupancy_in_band(name):
    wedges = np.stack(simulate_wedges(name, 24, seed=0))
    low, high = PRESETS[name].occupancy_band
    assert low <= occupancy(wedges).mean() <= high


@pytest.mark.parametrize(("target", "count"), [(0.003, 96), (0.05, 24)])
def test_occupancy_target(target, count):
    # Sparse wedges differ a lot from frame to frame, so the sparse case averages more wedges.
    wedges = np.stack(simulate_wedges(target, count, seed=1))
    assert occupancy(wedges).mean() == pytest.approx(target, rel=0.25)


def test_bad_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'rhic'; choose one of"):
        simulate_event("rhic")
    with pytest.raises(ValueError, match=r"unknown simulation setting\(s\) \['colour'\]"):
        simulate_event("pp", colour="red")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        simulate_event("pp", seed=-1)
    with pytest.raises(ValueError, match=r"target occupancy must be in 0.0005\.\.0.4"):
        simulate_wedges(0.9, 1)
    with pytest.raises(ValueError, match="count must be a non-negative int"):
        simulate_wedges("pp", -2)
    with pytest.raises(ValueError, match="events must be a positive int"):
        simulate_dataset(tmp_path, preset="pp", events=0)
    with pytest.raises(ValueError, match="extra_noise_adc must be"):
        simulate_event("pp", extra_noise_adc=-1.0)
