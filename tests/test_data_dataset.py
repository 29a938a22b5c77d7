"""The torch Dataset and sparse collation on a small simulated dataset in the public layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sparsecodec.data import (
    WEDGE_SHAPE,
    TPCDataset,
    WedgeId,
    collate_sparse,
    load_wedge,
    log_adc,
    read_manifest,
    read_occupancy_table,
    save_wedge,
    simulate_dataset,
    simulate_event,
    to_dense,
    to_sparse,
)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("simulated")
    simulate_dataset(root, preset="pp", events=2, seed=4, progress=False)
    return root


def test_simulated_layout_is_complete(dataset_root):
    train = read_manifest(dataset_root, "train")
    test = read_manifest(dataset_root, "test")
    assert len(train) == 24
    assert len(test) == 24
    ids = {WedgeId.from_path(path) for path in train + test}
    assert ids == {WedgeId(0, event, side, sector) for event in range(2) for side in range(2) for sector in range(12)}
    assert {WedgeId.from_path(path).event for path in test} == {1}
    records = read_occupancy_table(dataset_root)
    assert len(records) == 48
    assert {record.split for record in records if record.wedge.event == 0} == {"train"}


def test_files_match_in_memory_simulation(dataset_root):
    event = simulate_event("pp", seed=4, index=1)
    for index, (side, sector) in enumerate([(0, 0), (1, 7)]):
        wedge = WedgeId(0, 1, side, sector)
        assert np.array_equal(load_wedge(dataset_root / wedge.relative_path()), event[side * 12 + sector])


def test_occupancy_table_matches_files(dataset_root):
    for record in read_occupancy_table(dataset_root)[:6]:
        adc = load_wedge(dataset_root / record.wedge.relative_path())
        assert record.occupancy == pytest.approx(np.count_nonzero(adc) / adc.size, abs=1e-6)


def test_dataset_forms_agree(dataset_root):
    raw = TPCDataset(dataset_root, "train", form="adc")
    logged = TPCDataset(dataset_root, "train", form="log_adc")
    sparse = TPCDataset(dataset_root, "train", form="sparse")
    assert len(raw) == len(logged) == len(sparse) == 24

    wedge_id, adc = raw[3]
    assert wedge_id == str(WedgeId.from_path(raw.paths[3]))
    assert adc.dtype == torch.int16
    assert tuple(adc.shape) == WEDGE_SHAPE
    _, dense_log = logged[3]
    assert dense_log.dtype == torch.float32
    assert torch.equal(dense_log, torch.from_numpy(log_adc(adc.numpy())))
    _, (coords, values) = sparse[3]
    assert np.array_equal(to_dense(coords.numpy(), values.numpy()), adc.numpy().astype(np.uint16))


def test_dataloader_collates_sparse_batch(dataset_root):
    dataset = TPCDataset(dataset_root, "test", form="sparse")
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate_sparse)
    ids, coords, values = next(iter(loader))
    assert ids == dataset.wedge_ids[:4]
    assert coords.dtype == torch.int32
    assert coords.shape[1] == 4
    assert values.shape == (coords.shape[0],)
    for index in range(4):
        expected_coords, expected_values = to_sparse(load_wedge(dataset.paths[index]))
        rows = coords[:, 0] == index
        assert np.array_equal(coords[rows, 1:].numpy(), expected_coords)
        assert np.array_equal(values[rows].numpy(), expected_values)


def test_dataset_names_bad_file(tmp_path):
    wedge = WedgeId(0, 0, 0, 0)
    save_wedge(tmp_path / wedge.relative_path(), np.zeros(WEDGE_SHAPE, np.uint16))
    (tmp_path / "train.txt").write_text(wedge.relative_path().as_posix() + "\n")
    np.save(tmp_path / wedge.relative_path(), np.full((192, 249, 16), 5000, np.uint16))
    dataset = TPCDataset(tmp_path, "train")
    with pytest.raises(ValueError, match=r"TPCMLDataInterface_0\.npy: ADC counts must be in 0\.\.1023"):
        dataset[0]


def test_dataset_ids_of_foreign_file_names(tmp_path):
    save_wedge(tmp_path / "mine" / "w.npy", np.zeros(WEDGE_SHAPE, np.uint16))
    (tmp_path / "test.txt").write_text("mine/w.npy\n")
    dataset = TPCDataset(tmp_path, "test")
    assert dataset.wedge_ids == ["mine/w.npy"]


def test_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        TPCDataset(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        TPCDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="form must be one of"):
        TPCDataset(tmp_path, "train", form="dense")
    with pytest.raises(ValueError, match="empty batch"):
        collate_sparse([])
