"""One-call submanifold convolution on any backend."""

from __future__ import annotations

import torch

from .base import SparseConvBackend
from .registry import get


def submanifold_conv3d(
    coords: torch.Tensor,
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    dilation: int = 1,
    spatial_shape=(16, 192, 249),
    backend: str | SparseConvBackend | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Apply a submanifold 3D convolution and return (N, C_out) rows in input row order.

    ``coords`` (N, 4) = (batch, axis 0, axis 1, axis 2); ``features`` (N, C_in); ``weight`` in
    ``torch.nn.Conv3d`` layout (C_out, C_in, k, k, k), whose k sets the kernel size. The default
    ``spatial_shape`` is one TPC wedge, (layer, azimuth, time) = (16, 192, 249). ``backend`` is a
    name, a backend object, or None for SPARSE_BACKEND / the preferred installed backend. The
    kernel map is cached on ``coords``, so repeated calls on the same tensor build it once.
    """
    chosen = get(backend)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 5:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must have the torch.nn.Conv3d layout (C_out, C_in, k, k, k), got {shape}")
    kernel_map = chosen.build_kernel_map(coords, spatial_shape, int(weight.shape[-1]), dilation, batch_size)
    return chosen.conv(features, kernel_map, weight, bias)
