"""Numba CPU kernel of the submanifold convolution, reading neighbours straight from the grid.

Each output row is computed by one thread from its own neighbours, so results do not depend on
the thread count and repeated calls are bit-identical. The kernel has no backward; the native
backend uses it only when no gradient is needed.
"""

from __future__ import annotations

import numba
import numpy as np
import torch


@numba.njit(parallel=True, cache=True, nogil=True)
def _conv_grid(x, flat, grid, deltas, weight, out):  # pragma: no cover - compiled by numba
    count = flat.shape[0]
    volume, in_channels, out_channels = weight.shape
    for i in numba.prange(count):
        base = flat[i]
        for o in range(out_channels):
            out[i, o] = 0.0
        for k in range(volume):
            j = grid[base + deltas[k]]
            if j >= 0:
                for c in range(in_channels):
                    value = x[j, c]
                    for o in range(out_channels):
                        out[i, o] += value * weight[k, c, o]


def conv_grid(
    features: torch.Tensor,
    flat: torch.Tensor,
    grid: torch.Tensor,
    deltas: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    """Convolve contiguous float32/float64 CPU ``features`` (N, C_in) with an offset-major
    (K, C_in, C_out) ``weight`` through the index grid; return (N, C_out)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    out = torch.empty((features.shape[0], weight.shape[2]), dtype=features.dtype)
    _conv_grid(
        features.detach().numpy(),
        flat.numpy(),
        grid.numpy(),
        deltas.numpy(),
        np.ascontiguousarray(weight.detach().numpy()),
        out.numpy(),
    )
    return out
