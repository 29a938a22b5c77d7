"""Dense <-> sparse conversion of wedges and batching of several wedges into one sparse batch.

The sparse form of a wedge is ``(coords, log_adc)``: ``coords`` int32 (N, 3) with columns
(layer, azimuth, time) in C order of the dense array (rows sorted lexicographically), and
``log_adc`` float32 (N,) holding ``log2(ADC + 1)`` of the non-zero voxels. A batch prepends the
wedge's position in the batch as column 0, giving the (batch, layer, azimuth, time)
coordinates that :mod:`sparsecodec.backends` takes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .layout import MAX_ADC, WEDGE_SHAPE
from .validation import check_adc_array

#: Raw ADC value below which the BCAE papers zero a voxel. sPHENIX zero suppression records
#: nothing below the pedestal (about 74 ADC), so this cut removes no recorded value.
ZERO_SUPPRESSION_ADC = 64
#: Largest log ADC value, ``log2(1023 + 1)``.
MAX_LOG_ADC = 10.0


def log_adc(adc) -> np.ndarray:
    """Return ``log2(adc + 1)`` as float32 (the log-ADC convention of this project)."""
    return np.log2(np.asarray(adc, dtype=np.float32) + np.float32(1.0))


def adc_from_log_adc(values) -> np.ndarray:
    """Return the ADC counts (uint16) nearest to ``2**values - 1``, the inverse of :func:`log_adc`.

    Raises ValueError for NaN or values outside 0..10 (ADC 0..1023).
    """
    values = np.asarray(values)
    if values.dtype.kind != "f":
        raise TypeError(f"log ADC values must be floating point, got {values.dtype}")
    if values.size:
        if not np.isfinite(values).all():
            raise ValueError("log ADC values must be finite, found NaN or infinity")
        low, high = float(values.min()), float(values.max())
        # A small tolerance admits float16 rounding of log2(1024) = 10.
        if low < 0.0 or high > MAX_LOG_ADC + 1e-3:
            raise ValueError(f"log ADC values must be in 0..{MAX_LOG_ADC:g}, got range [{low:g}, {high:g}]")
    counts = np.rint(np.exp2(values.astype(np.float64)) - 1.0)
    return np.clip(counts, 0, MAX_ADC).astype(np.uint16)


def to_sparse(adc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert a dense wedge of raw ADC counts to ``(coords, log_adc)``.

    ``adc`` has shape (16, 192, 249) = (layer, azimuth, time). Returns int32 coordinates (N, 3)
    of the non-zero voxels in C order and their float32 log ADC values.
    """
    adc = check_adc_array(adc, WEDGE_SHAPE, "adc")
    coords = np.argwhere(adc).astype(np.int32)
    values = log_adc(adc[adc != 0])
    return coords, values


def _check_coords(coords, shape=WEDGE_SHAPE, columns: int = 3, name: str = "coords") -> None:
    if not isinstance(coords, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(coords).__name__}")
    if coords.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype (int32 preferred), got {coords.dtype}")
    if coords.ndim != 2 or coords.shape[1] != columns:
        raise ValueError(f"{name} must have shape (N, {columns}), got {coords.shape}")
    if coords.shape[0] == 0:
        return
    upper = np.asarray(shape)
    outside = (coords < 0) | (coords >= upper)
    if outside.any():
        row = int(np.argwhere(outside.any(axis=1))[0, 0])
        raise ValueError(
            f"{name} row {row} = {coords[row].tolist()} is outside the wedge shape {tuple(shape)}"
        )


def to_dense(coords: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Convert ``(coords, log_adc)`` back to a dense uint16 wedge of raw ADC counts.

    ``coords`` (N, 3) = (layer, azimuth, time); ``values`` (N,) log ADC. Values are rounded to
    the nearest ADC count, so the round trip ``to_dense(*to_sparse(adc))`` returns ``adc``.

    Raises ValueError for coordinates outside (16, 192, 249), duplicate coordinates, a length
    mismatch, or log ADC values outside 0..10.
    """
    _check_coords(coords)
    values = np.asarray(values)
    if values.ndim != 1 or values.shape[0] != coords.shape[0]:
        raise ValueError(
            f"values must have shape ({coords.shape[0]},) to match coords, got {values.shape}"
        )
    counts = adc_from_log_adc(values)

    dense = np.zeros(WEDGE_SHAPE, dtype=np.uint16)
    if coords.shape[0] == 0:
        return dense
    flat = np.ravel_multi_index(coords.T.astype(np.int64), WEDGE_SHAPE)
    unique, first, repeats = np.unique(flat, return_index=True, return_counts=True)
    if unique.shape[0] != flat.shape[0]:
        duplicate = coords[first[np.argmax(repeats > 1)]].tolist()
        raise ValueError(f"coords contain duplicate voxel {duplicate}")
    dense.reshape(-1)[flat] = counts
    return dense


def _rows_of(item, index: int):
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"batch item {index} must be a (coords, values) pair, got {type(item).__name__}")
    return item


def batch_sparse(items: Sequence) -> tuple:
    """Stack sparse wedges into one batch: coordinates (M, 4) = (batch, layer, azimuth, time).

    ``items`` is a sequence of ``(coords, values)`` pairs with coords (N_i, 3) and values
    (N_i,) or (N_i, C). Returns int32 coordinates whose column 0 is the item's position and
    the values concatenated in the same row order. numpy inputs give numpy outputs; torch
    inputs give torch outputs on the items' device, which :mod:`sparsecodec.backends` takes
    directly (pass ``batch_size=len(items)``, since trailing empty wedges leave no row).
    """
    if len(items) == 0:
        raise ValueError("batch_sparse needs at least one (coords, values) pair, got none")
    pairs = [_rows_of(item, index) for index, item in enumerate(items)]
    use_torch = isinstance(pairs[0][0], torch.Tensor)

    for index, (coords, values) in enumerate(pairs):
        if isinstance(coords, torch.Tensor) != use_torch or isinstance(values, torch.Tensor) != use_torch:
            raise TypeError(
                f"batch item {index}: mix of numpy and torch inputs; convert all items to one kind"
            )
        if len(values) != len(coords):
            raise ValueError(
                f"batch item {index}: {len(coords)} coordinate rows but {len(values)} value rows"
            )
        if use_torch:
            if coords.dtype.is_floating_point or coords.dtype == torch.bool or coords.dim() != 2 or coords.shape[1] != 3:
                raise ValueError(
                    f"batch item {index}: coords must be an integer tensor of shape (N, 3), "
                    f"got {coords.dtype} {tuple(coords.shape)}"
                )
            if coords.device != pairs[0][0].device or values.device != pairs[0][0].device:
                raise ValueError(
                    f"batch item {index} is on {coords.device}/{values.device}, item 0 on {pairs[0][0].device}"
                )
            upper = torch.tensor(WEDGE_SHAPE, device=coords.device)
            outside = ((coords < 0) | (coords >= upper)).any(dim=1)
            if bool(outside.any()):
                row = int(torch.nonzero(outside)[0, 0])
                raise ValueError(
                    f"batch item {index} coords row {row} = {coords[row].tolist()} is outside the "
                    f"wedge shape {WEDGE_SHAPE}"
                )
        else:
            _check_coords(coords, name=f"batch item {index} coords")

    if use_torch:
        device = pairs[0][0].device
        columns = [
            torch.full((coords.shape[0], 1), index, dtype=torch.int32, device=device)
            for index, (coords, _) in enumerate(pairs)
        ]
        batch_coords = torch.cat(
            [torch.cat([column, coords.to(torch.int32)], dim=1) for column, (coords, _) in zip(columns, pairs)]
        )
        batch_values = torch.cat([values for _, values in pairs])
        return batch_coords, batch_values

    blocks = []
    for index, (coords, _) in enumerate(pairs):
        block = np.empty((coords.shape[0], 4), dtype=np.int32)
        block[:, 0] = index
        block[:, 1:] = coords
        blocks.append(block)
    return np.concatenate(blocks), np.concatenate([np.asarray(values) for _, values in pairs])


def split_batch(coords, values, batch_size: int | None = None) -> list:
    """Split a batch made by :func:`batch_sparse` back into per-wedge ``(coords, values)`` pairs.

    Rows keep their order within each wedge. ``batch_size`` (default: largest batch index + 1)
    sets the number of pairs returned, so trailing empty wedges come back as empty pairs.
    """
    if coords.shape[0] != values.shape[0]:
        raise ValueError(f"{coords.shape[0]} coordinate rows but {values.shape[0]} value rows")
    if coords.ndim != 2 or coords.shape[1] != 4:
        raise ValueError(f"coords must have shape (M, 4) = (batch, layer, azimuth, time), got {tuple(coords.shape)}")
    batch_index = coords[:, 0]
    if batch_size is None:
        batch_size = int(batch_index.max()) + 1 if coords.shape[0] else 0
    pairs = []
    for index in range(batch_size):
        rows = batch_index == index
        pairs.append((coords[rows][:, 1:], values[rows]))
    return pairs
