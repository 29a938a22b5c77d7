"""Row selection by a boolean mask, the last step of encoding (the kept key points).

``tensor[mask]`` on CPU finds the kept rows first and then gathers each tensor separately. One
numba pass copies the kept coordinates and values together: 0.36 ms against 0.57 ms for 228,000
rows with 13 % kept (2-core development machine, torch 2.13.0, numba 0.68.1).
"""

from __future__ import annotations

import torch

from . import capabilities


def numba_rows_apply(coords: torch.Tensor, *values: torch.Tensor) -> bool:
    """Return True when the numba row kernels can take ``coords`` and ``values``.

    That needs numba enabled, int32 or int64 (N, 4) coordinates, float32 or float64 (N,) values,
    and CPU tensors without gradient.
    """
    return (
        capabilities.numba_enabled()
        and all(isinstance(tensor, torch.Tensor) for tensor in (coords, *values))
        and coords.dim() == 2 and coords.shape[1] == 4 and coords.dtype in (torch.int32, torch.int64)
        and all(value.dim() == 1 and value.shape[0] == coords.shape[0]
                and value.dtype in (torch.float32, torch.float64) for value in values)
        and all(tensor.device.type == "cpu" and not tensor.requires_grad for tensor in (coords, *values))
    )


def select_rows(keep: torch.Tensor, coords: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``coords[keep]`` (K, D) and ``values[keep]`` (K,) for a bool (N,) ``keep``.

    One numba pass copies the rows where :func:`numba_rows_apply` allows it, and torch indexes
    anything else.
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
    if not (numba_rows_apply(coords, values) and keep.device.type == "cpu"):
        return coords[keep], values[keep]

    from .cpu_numba import gather_kept_rows

    kept_coords, kept_values = gather_kept_rows(keep.numpy(), coords.numpy(), values.numpy())
    return torch.from_numpy(kept_coords), torch.from_numpy(kept_values)
