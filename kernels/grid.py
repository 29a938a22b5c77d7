"""Direct addressing in a padded grid: the native kernel map.

A TPC wedge has only 16 x 192 x 249 = 765,312 sites, so instead of a hash table the native
backend addresses sites directly. Each spatial axis is padded on both ends by
``max(MIN_PAD, dilation * (k // 2))`` sites; in that padded grid a row's position is ``flat[i]``
and its k-th neighbour is at ``flat[i] + deltas[k]``, never outside the row's own batch item, so
lookups need no bounds check. With the common padding, the maps of all BCAE-VS layers over one
coordinate set share one ``flat``. The kernel map is just ``flat`` and ``deltas``: O(N) to build, whatever the grid size.
A dense int32 grid of row indices (-1 where empty) is built only when the torch path needs a
neighbour table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch

from .offsets import kernel_offsets


@dataclass(eq=False)
class PaddedGrid:
    """The native kernel map of one coordinate set, kernel size and dilation.

    ``flat`` (N,) int64: each row's position in the padded grid of ``grid_size`` sites
    (``batch_size * prod(padded_shape)``); ``deltas`` (K,) int64: flat steps of the K kernel
    offsets in canonical C order, scaled by the dilation.
    """

    flat: torch.Tensor
    deltas: torch.Tensor
    padded_shape: tuple[int, int, int]
    grid_size: int
    _neighbors: torch.Tensor | None = field(default=None, repr=False)

    def index_grid(self) -> torch.Tensor:
        """Return the dense (grid_size,) int32 grid of row indices, -1 at empty sites."""
        grid = torch.full((self.grid_size,), -1, dtype=torch.int32, device=self.flat.device)
        grid[self.flat] = torch.arange(self.flat.shape[0], dtype=torch.int32, device=self.flat.device)
        return grid

    def neighbors(self) -> torch.Tensor:
        """Return the (N, K) int64 neighbour table; a missing neighbour is N (a zero row)."""
        if self._neighbors is None:
            table = self.index_grid()[self.flat[:, None] + self.deltas[None, :]].to(torch.int64)
            self._neighbors = torch.where(table < 0, self.flat.shape[0], table)
        return self._neighbors


#: Padding of every native map unless its reach is larger: dilation 4 x radius 1, the largest
#: reach in BCAE-VS.
MIN_PAD = 4


def padding_for(kernel_size: int, dilation: int) -> int:
    return max(MIN_PAD, dilation * (kernel_size // 2))


@lru_cache(maxsize=64)
def offset_deltas(kernel_size: int, dilation: int, padded_shape: tuple[int, int, int]) -> torch.Tensor:
    """Return the (K,) int64 flat steps of the canonical kernel offsets in a padded grid."""
    steps = torch.tensor([padded_shape[1] * padded_shape[2], padded_shape[2], 1], dtype=torch.int64)
    return (kernel_offsets(kernel_size) * dilation) @ steps


def grid_positions(coords: torch.Tensor, padded_shape: tuple[int, int, int], pad: int,
                   use_numba: bool = False) -> torch.Tensor:
    """Return the (N,) int64 positions of int32 ``coords`` (N, 4) in the padded grid."""
    if use_numba and coords.device.type == "cpu":
        from .cpu_numba import grid_positions as positions_with_numba

        return positions_with_numba(coords, padded_shape, pad)
    c = coords.to(torch.int64)
    depth, height, width = padded_shape
    return ((c[:, 0] * depth + c[:, 1] + pad) * height + c[:, 2] + pad) * width + c[:, 3] + pad


def build_padded_grid(
    coords: torch.Tensor,
    spatial_shape: tuple[int, int, int],
    batch_size: int,
    kernel_size: int,
    dilation: int,
    use_numba: bool = False,
    flat: torch.Tensor | None = None,
) -> PaddedGrid:
    """Build the kernel map of range-checked int32 ``coords`` (N, 4) = (batch, axis 0, 1, 2).

    ``flat`` may be passed when the positions for this padding are already known.
    Duplicate coordinates are not rejected here; call :func:`find_duplicate` on the result.
    """
    pad = padding_for(kernel_size, dilation)
    padded = tuple(size + 2 * pad for size in spatial_shape)
    if flat is None:
        flat = grid_positions(coords, padded, pad, use_numba)
    deltas = offset_deltas(kernel_size, dilation, padded).to(coords.device)
    grid_size = batch_size * padded[0] * padded[1] * padded[2]
    return PaddedGrid(flat, deltas, padded, grid_size)


def find_duplicate(flat: torch.Tensor, grid_size: int, use_numba: bool) -> tuple[int, int] | None:
    """Return two row indices whose grid positions ``flat`` are equal, or None if all differ."""
    if use_numba and flat.device.type == "cpu":
        from .cpu_numba import find_duplicate as find_with_numba

        return find_with_numba(flat, grid_size)

    # Of the rows that share a site only one can own its grid entry, so the others read back a
    # different row index.
    rows = torch.arange(flat.shape[0], dtype=torch.int32, device=flat.device)
    grid = torch.full((grid_size,), -1, dtype=torch.int32, device=flat.device)
    grid[flat] = rows
    owner = grid[flat]
    clash = (owner != rows).nonzero()
    if clash.numel() == 0:
        return None
    row = int(clash[0, 0])
    first, second = sorted((row, int(owner[row])))
    return first, second
