"""Portable sparse layers written only against :mod:`sparsecodec.backends`."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import backends
from ..backends import KernelMap, SparseConvBackend


class SubmanifoldConv3d(nn.Module):
    """Submanifold 3D convolution whose weight has the ``torch.nn.Conv3d`` layout.

    The weight is (C_out, C_in, k, k, k), a cross-correlation over kernel offsets in C order (see
    :mod:`sparsecodec.backends.base`), so a dense ``Conv3d`` weight can be copied in unchanged.
    The layer holds no kernel map: :meth:`forward` takes one built for its kernel size and
    dilation, so layers that share a dilation can share a map.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 bias: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The same initialisation as torch.nn.Conv3d, so a sparse model starts like a dense one.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_channels * self.kernel_size**3
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, bias={self.bias is not None}")

    def forward(self, features: torch.Tensor, kernel_map: KernelMap,
                backend: str | SparseConvBackend | None = None, activation: str | None = None) -> torch.Tensor:
        """Convolve (N, C_in) ``features`` over ``kernel_map``; return (N, C_out) in input row order.

        ``activation`` ("relu", "sigmoid" or None) follows the convolution; backends that can
        fuse it into their kernel do so.
        """
        if (kernel_map.kernel_size, kernel_map.dilation) != (self.kernel_size, self.dilation):
            raise ValueError(
                f"kernel map was built for kernel_size={kernel_map.kernel_size}, "
                f"dilation={kernel_map.dilation} but this layer has kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}"
            )
        chosen = backends.get(backend if backend is not None else kernel_map.backend)
        return chosen.conv(features, kernel_map, self.weight, self.bias, activation)
