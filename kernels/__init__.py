"""The project's own sparse-convolution kernels, used by the ``native`` backend.

The kernel map is a direct-address index grid (:mod:`.grid`); the convolution runs either as a
numba CPU kernel over that grid (:mod:`.cpu_numba`, inference on CPU) or as a torch gather and
matmul over a neighbour table (:mod:`.gather_conv`, autograd, CUDA, half precision). numba is
imported only when its kernel is first used.
"""

from .grid import IndexGrid, build_index_grid, find_duplicate
from .offsets import canonical_to_offset_major, kernel_offsets, offset_major_to_canonical

__all__ = [
    "IndexGrid",
    "build_index_grid",
    "canonical_to_offset_major",
    "find_duplicate",
    "kernel_offsets",
    "offset_major_to_canonical",
]
