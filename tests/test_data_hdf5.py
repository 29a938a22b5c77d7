"""Extraction of wedges from raw HDF5 frames in the TPCMLDataInterface layout."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecodec.data import WedgeId, load_wedge, simulate_event
from sparsecodec.data.hdf5 import extract_hdf5, hdf5_frames, read_hdf5_frame

h5py = pytest.importorskip("h5py", reason="h5py is needed to write the raw HDF5 test files")


def write_raw_frames(path, frames: dict[int, np.ndarray], first_layer: int = 32, extra_layers: int = 2):
    """Write events (24, 16, 192, 249) as full-ring layers of (2304, 498), as the raw files hold them."""
    with h5py.File(path, "w") as handle:
        for frame, wedges in frames.items():
            group = handle.create_group(f"TimeFrame_{frame}")
            ring = np.zeros((16, 2304, 498), np.uint16)
            for index, wedge in enumerate(wedges):
                side, sector = divmod(index, 12)
                ring[:, 192 * sector : 192 * (sector + 1), 249 * side : 249 * (side + 1)] = wedge
            for layer in range(16):
                group.create_dataset(f"Data_Layer{first_layer + layer}", data=ring[layer])
            # Layers of the other groups are present in real files and must be ignored.
            for layer in range(extra_layers):
                group.create_dataset(f"Data_Layer{layer}", data=np.full((1152, 498), 7, np.uint16))


@pytest.fixture(scope="module")
def event():
    return simulate_event("pp", seed=2)


def test_read_frame_recovers_wedges(tmp_path, event):
    path = tmp_path / "raw.h5"
    write_raw_frames(path, {3: event, 0: event[::-1]})
    assert hdf5_frames(path) == [0, 3]
    assert np.array_equal(read_hdf5_frame(path, 3), event)
    assert np.array_equal(read_hdf5_frame(path, 0), event[::-1])


def test_extract_writes_public_layout(tmp_path, event):
    path = tmp_path / "raw.h5"
    write_raw_frames(path, {4: event})
    written = extract_hdf5(path, tmp_path / "out", experiment=17)
    assert len(written) == 24
    assert written[13] == WedgeId(17, 4, 1, 1)
    for index in (0, 13, 23):
        assert np.array_equal(load_wedge(tmp_path / "out" / written[index].relative_path()), event[index])


def test_read_frame_errors(tmp_path, event):
    path = tmp_path / "raw.h5"
    write_raw_frames(path, {0: event})
    with pytest.raises(ValueError, match="no group /TimeFrame_5"):
        read_hdf5_frame(path, 5)
    with h5py.File(path, "a") as handle:
        del handle["TimeFrame_0/Data_Layer40"]
        handle["TimeFrame_0/Data_Layer40"] = np.zeros((2304, 497), np.uint16)
    with pytest.raises(ValueError, match=r"Data_Layer40: expected shape \(2304, 498\)"):
        read_hdf5_frame(path, 0)
    with h5py.File(path, "a") as handle:
        del handle["TimeFrame_0/Data_Layer40"]
    with pytest.raises(ValueError, match="Data_Layer40 is missing"):
        read_hdf5_frame(path, 0)
    with h5py.File(path, "a") as handle:
        handle["TimeFrame_0/Data_Layer40"] = np.full((2304, 498), 2000, np.uint16)
    with pytest.raises(ValueError, match=r"Data_Layer40: ADC counts must be in 0\.\.1023"):
        read_hdf5_frame(path, 0)


def test_not_hdf5(tmp_path):
    path = tmp_path / "raw.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        hdf5_frames(path)
    with pytest.raises(FileNotFoundError, match="HDF5 file not found"):
        hdf5_frames(tmp_path / "absent.h5")
