"""Wedges from the raw sPHENIX HDF5 frames written by TPCMLDataInterface (needs h5py).

A raw file contains groups ``/TimeFrame_{frame}``, each with one dataset ``Data_Layer{L}`` per
TPC layer: a uint16 array (azimuth pads, 498 time samples) over the full ring and both
halves. The outer layer group is ``Data_Layer32`` to ``Data_Layer47`` (2304 pads each). Wedge
(side, sector) is pads ``192 * sector .. 192 * sector + 191`` and samples ``249 * side ..
249 * side + 248``, the split that produced the public ``.npy`` files.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .layout import EVENT_WEDGE_ORDER, MAX_ADC, NUM_SECTORS, NUM_SIDES, WEDGE_SHAPE, WedgeId
from .reader import save_wedge

#: Index of the first outer-group layer among the ``Data_Layer{L}`` datasets.
OUTER_FIRST_LAYER = 32

_FRAME = re.compile(r"^TimeFrame_(\d+)$")


def _open(path):
    try:
        import h5py
    except ImportError as error:
        raise ImportError(
            "reading raw HDF5 frames needs h5py; install it with: pip install 'sparsecodec[hdf5]'"
        ) from error
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HDF5 file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error})") from error


def hdf5_frames(path) -> list[int]:
    """Return the frame numbers (``TimeFrame_{n}`` groups) in a raw HDF5 file, sorted."""
    with _open(path) as handle:
        return sorted(int(match.group(1)) for name in handle if (match := _FRAME.match(name)))


def read_hdf5_frame(path, frame: int, first_layer: int = OUTER_FIRST_LAYER) -> np.ndarray:
    """Read one frame and return its 24 wedges as uint16 (24, 16, 192, 249) in :data:`~sparsecodec.data.layout.EVENT_WEDGE_ORDER`.

    Raises ValueError naming the file and dataset when a layer is missing, has the wrong shape
    or dtype, or contains values outside 0..1023.
    """
    layers, pads, samples = WEDGE_SHAPE
    ring = (pads * NUM_SECTORS, samples * NUM_SIDES)
    stack = np.empty((layers, *ring), dtype=np.uint16)
    with _open(path) as handle:
        group_name = f"TimeFrame_{frame}"
        if group_name not in handle:
            raise ValueError(f"{path}: no group /{group_name}; frames present: {sorted(handle)}")
        group = handle[group_name]
        for layer in range(layers):
            key = f"Data_Layer{first_layer + layer}"
            where = f"{path}:/{group_name}/{key}"
            if key not in group:
                raise ValueError(f"{where} is missing")
            data = group[key]
            if data.shape != ring:
                raise ValueError(f"{where}: expected shape {ring} (azimuth, time), got {data.shape}")
            if data.dtype.kind not in "ui":
                raise TypeError(f"{where}: expected integer ADC counts, got {data.dtype}")
            values = data[()]
            if values.size and (values.min() < 0 or values.max() > MAX_ADC):
                raise ValueError(f"{where}: ADC counts must be in 0..{MAX_ADC}, got range {values.min()}..{values.max()}")
            stack[layer] = values

    wedges = np.empty((len(EVENT_WEDGE_ORDER), *WEDGE_SHAPE), dtype=np.uint16)
    for index, (side, sector) in enumerate(EVENT_WEDGE_ORDER):
        wedges[index] = stack[:, pads * sector : pads * (sector + 1), samples * side : samples * (side + 1)]
    return wedges


def extract_hdf5(path, root, experiment: int, frames=None, first_layer: int = OUTER_FIRST_LAYER) -> list[WedgeId]:
    """Write the wedges of ``frames`` (default all) of a raw HDF5 file under ``root`` in the public layout.

    Frame ``n`` becomes event ``n`` of ``experiment``. Returns the ids written; list them in
    ``train.txt``/``test.txt`` with :func:`sparsecodec.data.write_manifest`.
    """
    frames = hdf5_frames(path) if frames is None else list(frames)
    written = []
    for frame in frames:
        wedges = read_hdf5_frame(path, frame, first_layer)
        for (side, sector), adc in zip(EVENT_WEDGE_ORDER, wedges):
            wedge_id = WedgeId(experiment, frame, side, sector)
            save_wedge(Path(root) / wedge_id.relative_path(), adc)
            written.append(wedge_id)
    return written
