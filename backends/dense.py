"""The ``dense`` backend: scatter to a dense grid, ``torch.nn.functional.conv3d``, re-mask.

It computes exactly the submanifold convolution, only with dense arithmetic over every site of
the grid. Run in float64 it is the reference (oracle) that every other backend is tested
against, and it is the "dense + mask" baseline of the benchmarks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import KernelMap, SparseConvBackend


def probe() -> str:
    """Return "ok": the dense backend needs only torch."""
    return "ok"


class DenseBackend(SparseConvBackend):
    """Dense 3D convolution restricted to the active sites."""

    name = "dense"
    dtypes = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

    @property
    def version(self) -> str:
        return torch.__version__

    def convert_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return weight

    def weight_from_library(self, converted: torch.Tensor) -> torch.Tensor:
        return converted

    def _build(self, coords, spatial_shape, batch_size, kernel_size, dilation):
        # The kernel map of a dense convolution is just the site index of each row.
        return self._check_unique(coords, spatial_shape)

    def _conv(self, features: torch.Tensor, kernel_map: KernelMap, weight: torch.Tensor) -> torch.Tensor:
        depth, height, width = kernel_map.spatial_shape
        batch_size = kernel_map.batch_size
        in_channels = features.shape[1]
        keys = kernel_map.data

        grid = features.new_zeros((batch_size * depth * height * width, in_channels))
        grid = grid.index_copy(0, keys, features)
        grid = grid.reshape(batch_size, depth, height, width, in_channels).permute(0, 4, 1, 2, 3)

        padding = kernel_map.dilation * (kernel_map.kernel_size // 2)
        out = F.conv3d(grid, weight, padding=padding, dilation=kernel_map.dilation)
        out = out.permute(0, 2, 3, 4, 1).reshape(-1, weight.shape[0])
        return out[keys]
