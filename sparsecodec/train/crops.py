"""Training batches: random crops of wedges, drawn as a pure function of (seed, rank, step).

A crop keeps all 16 layers and takes a window of ``crop = (azimuth, time)`` voxels at a random
offset of a random wedge, so the dense decoders run on (16, azimuth, time) instead of the whole
(16, 192, 249) wedge. Because every draw is seeded from (seed, rank, step, item), batch ``step``
is the same whether a run goes straight through or resumes from a checkpoint, and data-parallel
processes (ranks) draw different crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import WEDGE_SHAPE, load_wedge, log_adc
from ..data.validation import check_adc_array

#: Stream number that separates crop draws from other uses of the run seed.
CROP_STREAM = 1
#: Stream of the crops that recalibrate BatchNorm after training, apart from the training crops.
RECALIBRATION_CROP_STREAM = 3


class Batch(NamedTuple):
    """One training batch in the sparse form the encoder takes.

    ``coords`` int32 (M, 4) = (batch, layer, azimuth, time) within the crop, ``log_adc`` float32
    (M,) = log2(ADC + 1) of those voxels, ``spatial_shape`` (layer, azimuth, time) of a crop.
    """

    coords: torch.Tensor
    log_adc: torch.Tensor
    batch_size: int
    spatial_shape: tuple[int, int, int]


def check_crop(crop) -> tuple[int, int] | None:
    """Return ``crop`` as (azimuth, time) window sizes, or None for whole wedges.

    Raises ValueError unless both sizes are whole numbers in 1..192 and 1..249.
    """
    if crop is None:
        return None
    if not isinstance(crop, (tuple, list)) or len(crop) != 2:
        raise ValueError(f"crop must be (azimuth, time) window sizes or None, got {crop!r}")
    sizes = []
    for name, size, limit in zip(("azimuth", "time"), crop, WEDGE_SHAPE[1:]):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= limit:
            raise ValueError(f"crop {name} size must be an int in 1..{limit}, got {size!r}")
        sizes.append(int(size))
    return tuple(sizes)


def crop_shape(crop) -> tuple[int, int, int]:
    """Return the (layer, azimuth, time) shape of a crop; the whole wedge for None."""
    crop = check_crop(crop)
    return WEDGE_SHAPE if crop is None else (WEDGE_SHAPE[0], crop[0], crop[1])


def sparse_window(adc: np.ndarray, azimuth_start: int, time_start: int,
                  shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return (coords (N, 3) int32, log ADC (N,) float32) of the non-zero voxels of one window.

    The window is ``adc[:, azimuth_start:azimuth_start + shape[1], time_start:time_start +
    shape[2]]`` of a (16, 192, 249) = (layer, azimuth, time) wedge of raw ADC counts, and the
    coordinates are relative to its corner.
    """
    window = adc[:, azimuth_start:azimuth_start + shape[1], time_start:time_start + shape[2]]
    if window.shape != tuple(shape):
        raise ValueError(
            f"window at azimuth {azimuth_start}, time {time_start} of shape {tuple(shape)} does not fit "
            f"in a wedge of shape {adc.shape}"
        )
    coords = np.argwhere(window).astype(np.int32)
    return coords, log_adc(window[window != 0])


class CropBatches(Dataset):
    """Map-style dataset whose item ``step`` is the batch of training step ``step`` on one rank.

    Args:
        wedges: wedge files (the public layout, read with :func:`sparsecodec.data.load_wedge`)
            or uint16 arrays (16, 192, 249) = (layer, azimuth, time) of raw ADC counts.
        batch_size: crops per batch (per rank).
        crop: (azimuth, time) window sizes, or None for whole wedges.
        seed: run seed.
        rank: data-parallel rank; ranks draw independent crops.
        stream: number that separates this sequence of batches from others of the same seed
            (:data:`CROP_STREAM` for training).

    Wedges and offsets are drawn uniformly with replacement. Use it with
    ``DataLoader(batches, batch_size=None, sampler=range(first_step, last_step))``.
    """

    def __init__(self, wedges: Sequence, batch_size: int, crop=None, seed: int = 0, rank: int = 0,
                 stream: int = CROP_STREAM) -> None:
        super().__init__()
        if len(wedges) == 0:
            raise ValueError("training needs at least one wedge, got none")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.wedges = [wedge if isinstance(wedge, np.ndarray) else Path(wedge) for wedge in wedges]
        for index, wedge in enumerate(self.wedges):
            if isinstance(wedge, np.ndarray):
                check_adc_array(wedge, WEDGE_SHAPE, f"wedge {index}")
        self.batch_size = batch_size
        self.crop = check_crop(crop)
        self.shape = crop_shape(self.crop)
        self.seed = int(seed)
        self.rank = int(rank)
        self.stream = int(stream)

    def draw(self, step: int, item: int) -> tuple[int, int, int]:
        """Return (wedge index, azimuth start, time start) of crop ``item`` of batch ``step``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.stream, self.rank, step, item]))
        wedge = int(rng.integers(len(self.wedges)))
        azimuth = int(rng.integers(WEDGE_SHAPE[1] - self.shape[1] + 1))
        time = int(rng.integers(WEDGE_SHAPE[2] - self.shape[2] + 1))
        return wedge, azimuth, time

    def _adc(self, index: int) -> np.ndarray:
        wedge = self.wedges[index]
        return wedge if isinstance(wedge, np.ndarray) else load_wedge(wedge)

    def __getitem__(self, step: int) -> Batch:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        coords = []
        values = []
        for item in range(self.batch_size):
            wedge, azimuth, time = self.draw(int(step), item)
            window_coords, window_values = sparse_window(self._adc(wedge), azimuth, time, self.shape)
            batch_column = np.full((window_coords.shape[0], 1), item, dtype=np.int32)
            coords.append(np.concatenate([batch_column, window_coords], axis=1))
            values.append(window_values)
        return Batch(torch.from_numpy(np.concatenate(coords)), torch.from_numpy(np.concatenate(values)),
                     self.batch_size, self.shape)
