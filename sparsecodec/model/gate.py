"""Which voxels the encoder keeps: the soft gate for training and the hard gate modes.

Training uses a differentiable soft mask ``m = sigmoid(alpha * (logit(p, eps) - logit(theta, eps)))``
with ``theta ~ Uniform(0, 1)`` per voxel. Inference keeps a voxel when ``p > theta``, with theta
chosen by one of four modes:

* ``random``: theta ~ Uniform(0, 1) per voxel, the scheme BCAE-VS was trained for;
* ``fixed``: one constant theta in [0, 1);
* ``retention``: per wedge, exactly ``round(f * n)`` of its n voxels with the highest p
  (ties broken by row order);
* ``ratio``: retention with the fraction that gives a target compression ratio C by
  ``C = 4 / (9 * occupancy * kept_fraction)``. That formula counts 16 bits per voxel of the full
  wedge as input and 36 bits per kept voxel (4 + 8 + 8 coordinate bits and a 16-bit value) as
  output; occupancy is the wedge's non-zero voxel count over its volume (16 x 192 x 249).

Random draws come from a per-wedge generator seeded from (seed, wedge index) and are drawn on
the CPU in row order, so the same seed keeps the same voxels on every device.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass

import numpy as np
import torch

from ..kernels.selection import numba_rows_apply, select_rows

GATE_MODES = ("random", "fixed", "retention", "ratio")

#: Bits per input voxel and per kept voxel in the compression-ratio formula.
INPUT_BITS_PER_VOXEL = 16
KEPT_BITS_PER_VOXEL = 4 + 8 + 8 + 16


@dataclass(frozen=True)
class GateConfig:
    """A hard-gate mode, its value and the seed of its random draws.

    ``value`` is the threshold theta for ``fixed``, the kept fraction of signal voxels for
    ``retention``, the target compression ratio for ``ratio``, and unused (None) for ``random``.
    """

    mode: str = "random"
    value: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in GATE_MODES:
            raise ValueError(f"gate mode must be one of {', '.join(GATE_MODES)}, got {self.mode!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"gate seed must be an int in [0, 2**63), got {self.seed!r}")
        if self.mode == "random":
            if self.value is not None:
                raise ValueError(f"gate mode 'random' takes no value, got {self.value!r}")
            return
        if self.value is None or not isinstance(self.value, (int, float)) or math.isnan(self.value):
            raise ValueError(f"gate mode {self.mode!r} needs a numeric value, got {self.value!r}")
        if self.mode == "fixed" and not 0.0 <= self.value < 1.0:
            raise ValueError(f"fixed gate threshold must be in [0, 1), got {self.value}")
        if self.mode == "retention" and not 0.0 <= self.value <= 1.0:
            raise ValueError(f"retention fraction must be in [0, 1], got {self.value}")
        if self.mode == "ratio" and not self.value > 0.0:
            raise ValueError(f"target compression ratio must be positive, got {self.value}")

    def describe(self) -> str:
        return self.mode if self.value is None else f"{self.mode}={self.value:g}"


def logit(p: torch.Tensor, eps: float) -> torch.Tensor:
    """Return log(p / (1 - p)) with p clamped to [eps, 1 - eps]."""
    return torch.logit(p, eps=eps)


def soft_mask(probability: torch.Tensor, alpha: float = 4.0, eps: float = 1e-6,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Return the differentiable training mask for each voxel, drawing theta ~ U(0, 1) per voxel."""
    theta = torch.rand(probability.shape, generator=generator, device=probability.device, dtype=probability.dtype)
    return torch.sigmoid(alpha * (logit(probability, eps) - logit(theta, eps)))


@functools.lru_cache(maxsize=4096)
def wedge_seed(seed: int, wedge_index: int) -> int:
    """Derive the seed of one wedge's random thresholds from the run seed and the wedge index."""
    state = np.random.SeedSequence([seed, wedge_index]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _as_count(value) -> int | None:
    """Return ``value`` as a non-negative Python int when it is an integer (numpy's included, bool
    excluded), else None."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None
    try:
        count = operator.index(value)
    except TypeError:
        return None
    return count if count >= 0 else None


@functools.lru_cache(maxsize=256)
def batch_seeds(seed: int, first_wedge: int, batch_size: int) -> np.ndarray:
    """Return the read-only uint64 seeds of wedges first_wedge to first_wedge + batch_size - 1."""
    seeds = np.array([wedge_seed(seed, first_wedge + item) for item in range(batch_size)], dtype=np.uint64)
    seeds.flags.writeable = False
    return seeds


def kept_fraction_for_ratio(ratio: float, occupancy: float) -> float:
    """Return the kept fraction that gives compression ratio ``ratio``, clipped to [0, 1]."""
    if occupancy <= 0:
        return 0.0
    fraction = INPUT_BITS_PER_VOXEL / (KEPT_BITS_PER_VOXEL * occupancy * ratio)
    return min(1.0, fraction)


def paper_compression_ratio(occupancy: float, kept_fraction: float) -> float:
    """Return C = 4 / (9 * occupancy * kept_fraction); infinite when nothing is kept."""
    denominator = KEPT_BITS_PER_VOXEL * occupancy * kept_fraction
    return math.inf if denominator == 0 else INPUT_BITS_PER_VOXEL / denominator


def hard_gate(probability: torch.Tensor, batch_index: torch.Tensor, config: GateConfig,
              wedge_volume: int, batch_size: int | None = None, first_wedge: int = 0) -> torch.Tensor:
    """Return a bool mask (N,) of the voxels to keep.

    Args:
        probability: (N,) importance scores p.
        batch_index: (N,) wedge index of each row within this batch.
        config: gate mode, value and seed.
        wedge_volume: number of sites of one wedge (16 * 192 * 249 for a TPC wedge).
        batch_size: wedges in the batch; None means max batch index + 1.
        first_wedge: index of batch item 0 in the whole run, so per-wedge random draws do not
            depend on how a run is split into batches.
    """
    if probability.dim() != 1 or batch_index.shape != probability.shape:
        raise ValueError(
            f"probability and batch_index must both have shape (N,), got {tuple(probability.shape)} "
            f"and {tuple(batch_index.shape)}"
        )
    if config.mode == "fixed":
        return probability > config.value

    if batch_size is None:
        batch_size = int(batch_index.max()) + 1 if batch_index.numel() else 0
    if config.mode == "random" and batch_size == 1 and not batch_index.any():
        # One wedge that contains every row needs no row selection, which costs more than the
        # draw itself on a sparse wedge.
        return _random_keep(probability, config.seed, first_wedge)
    keep = torch.zeros(probability.shape, dtype=torch.bool, device=probability.device)
    for item in range(batch_size):
        rows = (batch_index == item).nonzero()[:, 0]
        count = rows.numel()
        if count == 0:
            continue
        p = probability[rows]
        if config.mode == "random":
            keep[rows] = _random_keep(p, config.seed, first_wedge + item)
            continue

        fraction = config.value
        if config.mode == "ratio":
            fraction = kept_fraction_for_ratio(config.value, count / wedge_volume)
        kept = min(count, round(fraction * count))
        order = torch.argsort(p, descending=True, stable=True)
        keep[rows[order[:kept]]] = True
    return keep


def _random_thresholds(count: int, seed: int, wedge_index: int) -> torch.Tensor:
    """Return the (count,) float64 CPU thresholds theta ~ U(0, 1) of one wedge, drawn from its seed."""
    generator = torch.Generator().manual_seed(wedge_seed(seed, wedge_index))
    return torch.rand(count, generator=generator, dtype=torch.float64)


def _random_keep(probability: torch.Tensor, seed: int, wedge_index: int) -> torch.Tensor:
    """Return p > theta for the (N,) scores of one wedge, theta ~ U(0, 1) drawn from the wedge's seed."""
    theta = _random_thresholds(probability.shape[0], seed, wedge_index).to(probability.device)
    return probability.double() > theta


def select_key_points(probability: torch.Tensor, values: torch.Tensor, coords: torch.Tensor, config: GateConfig,
                      wedge_volume: int, batch_size: int | None = None,
                      first_wedge: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (keep, coords[keep], values[keep]): :func:`hard_gate` and the kept rows in one step.

    ``coords`` are the (N, 4) rows (batch index first) and ``values`` the (N,) codes v. The other
    arguments are those of :func:`hard_gate`. On the CPU the random gate runs as one numba pass
    over every wedge of the batch, with the same thresholds as :func:`hard_gate`.
    """
    if config.mode == "random" and numba_rows_apply(coords, probability, values):
        from ..kernels.cpu_numba import random_gate_batch, random_gate_select, wedge_row_offsets

        coords_array = coords.numpy()
        wedges = _as_count(batch_size)
        if wedges is not None:
            # One numba call for the whole gate: on a sparse batch each further call from Python
            # costs more than its work, because the encoder's stack has just evicted the caches.
            ok, keep, kept_coords, kept_values = random_gate_batch(
                probability.numpy(), batch_seeds(config.seed, first_wedge, wedges), coords_array, values.numpy())
            if ok:
                return torch.from_numpy(keep), torch.from_numpy(kept_coords), torch.from_numpy(kept_values)
        elif batch_size is None:
            offsets = wedge_row_offsets(coords_array, -1)
            if offsets.shape[0] > 0:
                seeds = batch_seeds(config.seed, first_wedge, offsets.shape[0] - 1)
                keep, kept_coords, kept_values = random_gate_select(probability.numpy(), seeds, offsets, coords_array,
                                                                    values.numpy())
                return torch.from_numpy(keep), torch.from_numpy(kept_coords), torch.from_numpy(kept_values)
    keep = hard_gate(probability, coords[:, 0], config, wedge_volume, batch_size, first_wedge)
    kept_coords, kept_values = select_rows(keep, coords, values)
    return keep, kept_coords, kept_values
