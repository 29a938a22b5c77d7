"""The ``native`` backend: this project's own kernels (:mod:`sparsecodec.kernels`).

Kernel map: a direct-address index grid, padded so neighbour lookups need no bounds check.
Convolution: on CPU without autograd, a numba kernel that reads neighbours from the grid; with
autograd, on CUDA, in half precision or without numba, a torch gather and matmul over the
neighbour table. Both paths compute the same sums in the same order per output row and give
bit-identical results on repeated calls.
"""

from __future__ import annotations

import torch

from ..kernels import build_index_grid, canonical_to_offset_major, find_duplicate, offset_major_to_canonical
from ..kernels import capabilities
from ..kernels.gather_conv import gather_conv
from .base import KernelMap, SparseConvBackend
from .validation import raise_duplicate


def probe() -> str:
    """Return "ok": the native backend needs only torch (numba is an optional speed-up)."""
    return "ok"


class NativeBackend(SparseConvBackend):
    """Submanifold convolution with the project's own kernels, on CPU and CUDA."""

    name = "native"
    dtypes = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

    def convert_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return canonical_to_offset_major(weight).contiguous()

    def weight_from_library(self, converted: torch.Tensor) -> torch.Tensor:
        return offset_major_to_canonical(converted)

    def _build(self, coords, spatial_shape, batch_size, kernel_size, dilation):
        index_grid = build_index_grid(coords, spatial_shape, batch_size, kernel_size, dilation)
        duplicate = find_duplicate(index_grid)
        if duplicate is not None:
            raise_duplicate(coords, *duplicate)
        return index_grid

    def _conv(self, features: torch.Tensor, kernel_map: KernelMap, weight: torch.Tensor) -> torch.Tensor:
        index_grid = kernel_map.data
        use_numba = (
            features.device.type == "cpu"
            and features.dtype in (torch.float32, torch.float64)
            and not (torch.is_grad_enabled() and (features.requires_grad or weight.requires_grad))
            and capabilities.numba_enabled()
        )
        if use_numba:
            from ..kernels.cpu_numba import conv_grid

            return conv_grid(features, index_grid.flat, index_grid.grid, index_grid.deltas, weight)
        return gather_conv(features, index_grid.neighbors(), weight)
