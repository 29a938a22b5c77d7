"""Direct-address index grid: the native kernel map.

A TPC wedge has only 16 x 192 x 249 = 765,312 sites, so instead of a hash table the native
backend keeps a dense int32 grid that stores, for every site, the row index of the active voxel
there or -1. The grid is padded by ``pad`` sites on both ends of each spatial axis, so a
neighbour lookup ``grid[flat[i] + delta[k]]`` never leaves the voxel's own batch item and needs
no bounds check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .offsets import kernel_offsets


@dataclass(eq=False)
class IndexGrid:
    """Index grid of one coordinate set.

    ``grid`` is flat, of size ``batch_size * prod(padded_shape)``; ``flat`` (N,) int64 is each
    row's position in it; ``deltas`` (K,) int64 are the flat steps of the K kernel offsets in
    canonical order, already scaled by the dilation.
    """

    grid: torch.Tensor
    flat: torch.Tensor
    deltas: torch.Tensor
    padded_shape: tuple[int, int, int]
    _neighbors: torch.Tensor | None = field(default=None, repr=False)

    def neighbors(self) -> torch.Tensor:
        """Return the (N, K) int64 neighbour table; a missing neighbour is N (a zero row)."""
        if self._neighbors is None:
            table = self.grid[self.flat[:, None] + self.deltas[None, :]].to(torch.int64)
            self._neighbors = torch.where(table < 0, self.flat.shape[0], table)
        return self._neighbors


def build_index_grid(
    coords: torch.Tensor,
    spatial_shape: tuple[int, int, int],
    batch_size: int,
    kernel_size: int,
    dilation: int,
) -> IndexGrid:
    """Build the index grid of range-checked int32 ``coords`` (N, 4).

    Duplicate coordinates are not rejected here; call :func:`find_duplicate` on the result.
    """
    pad = dilation * (kernel_size // 2)
    padded = tuple(size + 2 * pad for size in spatial_shape)
    device = coords.device
    c = coords.to(torch.int64)
    flat = ((c[:, 0] * padded[0] + c[:, 1] + pad) * padded[1] + c[:, 2] + pad) * padded[2] + c[:, 3] + pad

    count = coords.shape[0]
    rows = torch.arange(count, dtype=torch.int32, device=device)
    grid = torch.full((batch_size * padded[0] * padded[1] * padded[2],), -1, dtype=torch.int32, device=device)
    grid[flat] = rows

    steps = torch.tensor([padded[1] * padded[2], padded[2], 1], dtype=torch.int64)
    deltas = (kernel_offsets(kernel_size) * dilation) @ steps
    return IndexGrid(grid, flat, deltas.to(device), padded)


def find_duplicate(index_grid: IndexGrid) -> tuple[int, int] | None:
    """Return two row indices that share a site, or None when every site is held once.

    Of the rows that share a site only one can own its grid entry, so the others read back a
    different row index. This costs one gather instead of a sort.
    """
    flat = index_grid.flat
    rows = torch.arange(flat.shape[0], dtype=torch.int32, device=flat.device)
    owner = index_grid.grid[flat]
    clash = (owner != rows).nonzero()
    if clash.numel() == 0:
        return None
    row = int(clash[0, 0])
    first, second = sorted((row, int(owner[row])))
    return first, second
