"""The project's own sparse-convolution kernels, used by the ``native`` backend.

The kernel map is direct addressing in a padded grid (:mod:`.grid`). The convolution runs
either as a numba CPU stencil over a zero-padded feature grid (:mod:`.cpu_numba`, inference on
CPU) or as a torch gather and matmul over a neighbour table (:mod:`.gather_conv`: autograd,
CUDA, half precision). numba is imported only when its kernels are first used.
"""

from .grid import PaddedGrid, build_padded_grid, find_duplicate, grid_positions, offset_deltas, padding_for
from .offsets import canonical_to_offset_major, kernel_offsets, offset_major_to_canonical

__all__ = [
    "PaddedGrid",
    "build_padded_grid",
    "canonical_to_offset_major",
    "find_duplicate",
    "grid_positions",
    "kernel_offsets",
    "offset_deltas",
    "offset_major_to_canonical",
    "padding_for",
]
