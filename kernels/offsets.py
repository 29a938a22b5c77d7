"""Kernel offsets in the canonical order shared by every backend.

Offset index ``k`` enumerates ``(o0, o1, o2)`` in ``{-r .. r}^3`` (``r = kernel_size // 2``) in
C order, so it is the flattened index of the last three axes of a ``torch.nn.Conv3d`` weight.
"""

from __future__ import annotations

import torch


def kernel_offsets(kernel_size: int) -> torch.Tensor:
    """Return the (kernel_size**3, 3) int64 offsets in canonical order."""
    radius = kernel_size // 2
    steps = torch.arange(-radius, radius + 1, dtype=torch.int64)
    grid = torch.meshgrid(steps, steps, steps, indexing="ij")
    return torch.stack([axis.reshape(-1) for axis in grid], dim=1)


def canonical_to_offset_major(weight: torch.Tensor) -> torch.Tensor:
    """Reorder a (C_out, C_in, k, k, k) weight to (k**3, C_in, C_out), offsets in canonical order."""
    out_channels, in_channels = weight.shape[:2]
    return weight.permute(2, 3, 4, 1, 0).reshape(-1, in_channels, out_channels)


def offset_major_to_canonical(weight: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`canonical_to_offset_major`."""
    volume, in_channels, out_channels = weight.shape
    kernel_size = round(volume ** (1 / 3))
    if kernel_size**3 != volume:
        raise ValueError(f"first axis of an offset-major weight must be a cube, got {volume}")
    shape = (kernel_size, kernel_size, kernel_size, in_channels, out_channels)
    return weight.reshape(shape).permute(4, 3, 0, 1, 2)
