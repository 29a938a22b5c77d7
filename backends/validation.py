"""Input checks shared by every backend.

Coordinates are an integer tensor of shape (N, 4) whose columns are (batch, axis 0, axis 1,
axis 2). For a TPC wedge the spatial axes are (layer, azimuth, time), but any three axes work as
long as ``spatial_shape`` lists their sizes in the same order. Every check raises ``TypeError``
for a wrong type or dtype and ``ValueError`` for a wrong value, and names the offending value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_spatial_shape(spatial_shape: Sequence[int]) -> tuple[int, int, int]:
    """Return ``spatial_shape`` as a tuple of three positive Python ints."""
    if isinstance(spatial_shape, torch.Tensor):
        spatial_shape = spatial_shape.tolist()
    try:
        shape = tuple(spatial_shape)
    except TypeError:
        raise TypeError(
            f"spatial_shape must be a sequence of 3 ints, got {type(spatial_shape).__name__}"
        ) from None
    if len(shape) != 3:
        raise ValueError(f"spatial_shape must have 3 entries, got {len(shape)}: {shape}")
    for size in shape:
        # numpy and torch integer scalars have __index__; bool is excluded on purpose.
        if isinstance(size, bool) or not hasattr(size, "__index__"):
            raise TypeError(f"spatial_shape entries must be ints, got {shape}")
        if size.__index__() <= 0:
            raise ValueError(f"spatial_shape entries must be positive, got {shape}")
    return tuple(size.__index__() for size in shape)


def check_kernel_geometry(kernel_size: int, dilation: int) -> tuple[int, int]:
    """Return (kernel_size, dilation) as ints after checking that both are usable."""
    for name, value in (("kernel_size", kernel_size), ("dilation", dilation)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd int (a submanifold convolution needs a centre "
            f"tap), got {kernel_size}"
        )
    if dilation < 1:
        raise ValueError(f"dilation must be a positive int, got {dilation}")
    return kernel_size, dilation


def check_coordinates(
    coords: torch.Tensor,
    spatial_shape: tuple[int, int, int],
    batch_size: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Check range and layout of ``coords`` and return them as contiguous int32 with the batch size.

    Duplicates are not checked here because the cheapest check differs per backend; see
    :func:`check_unique_keys`.
    """
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"coords must be a torch.Tensor, got {type(coords).__name__}")
    if coords.dtype.is_floating_point or coords.dtype.is_complex or coords.dtype == torch.bool:
        raise TypeError(f"coords must have an integer dtype (int32 preferred), got {coords.dtype}")
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(
            f"coords must have shape (N, 4) = (batch, axis 0, axis 1, axis 2), got {tuple(coords.shape)}"
        )
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"batch_size must be an int or None, got {batch_size!r}")
        if batch_size < 0:
            raise ValueError(f"batch_size must be non-negative, got {batch_size}")

    count = coords.shape[0]
    if count == 0:
        return coords.to(torch.int32).contiguous(), batch_size or 0

    # One reduction per column keeps this check cheap next to the convolution.
    lows = coords.amin(dim=0).tolist()
    highs = coords.amax(dim=0).tolist()
    if lows[0] < 0:
        raise ValueError(f"coords contain a negative batch index {lows[0]}")
    if batch_size is None:
        batch_size = int(highs[0]) + 1
    elif highs[0] >= batch_size:
        raise ValueError(f"coords contain batch index {highs[0]} but batch_size is {batch_size}")
    for axis in range(3):
        low, high, size = lows[axis + 1], highs[axis + 1], spatial_shape[axis]
        if low < 0 or high >= size:
            bad = low if low < 0 else high
            row = int(((coords[:, axis + 1] < 0) | (coords[:, axis + 1] >= size)).nonzero()[0, 0])
            raise ValueError(
                f"coordinate {bad} on spatial axis {axis} (row {row}: {coords[row].tolist()}) is "
                f"outside [0, {size}) of spatial_shape {spatial_shape}"
            )
    if batch_size * spatial_shape[0] * spatial_shape[1] * spatial_shape[2] >= 2**62:
        raise ValueError(f"batch_size {batch_size} x spatial_shape {spatial_shape} is too large to index")
    return coords.to(torch.int32).contiguous(), batch_size


def linear_keys(coords: torch.Tensor, spatial_shape: tuple[int, int, int]) -> torch.Tensor:
    """Return the int64 row-major index of each coordinate in the (batch, D, H, W) grid."""
    depth, height, width = spatial_shape
    c = coords.to(torch.int64)
    return ((c[:, 0] * depth + c[:, 1]) * height + c[:, 2]) * width + c[:, 3]


def raise_duplicate(coords: torch.Tensor, first: int, second: int) -> None:
    """Raise the error for two rows that hold the same coordinate."""
    raise ValueError(
        f"coords contain a duplicate coordinate {coords[first].tolist()} at rows {first} and "
        f"{second}; a sparse tensor holds each site at most once"
    )


def check_unique_keys(coords: torch.Tensor, keys: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the first duplicated coordinate, found by sorting ``keys``."""
    if keys.numel() < 2:
        return
    sorted_keys, order = torch.sort(keys, stable=True)
    repeated = (sorted_keys[1:] == sorted_keys[:-1]).nonzero()
    if repeated.numel():
        position = int(repeated[0, 0])
        raise_duplicate(coords, int(order[position]), int(order[position + 1]))


def check_features(features: torch.Tensor, rows: int, device: torch.device) -> None:
    """Check that ``features`` is a float (rows, C) tensor on ``device``."""
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.dtype not in FLOAT_DTYPES:
        raise TypeError(f"features must be float16, bfloat16, float32 or float64, got {features.dtype}")
    if features.dim() != 2:
        raise ValueError(f"features must have shape (N, C), got {tuple(features.shape)}")
    if features.shape[0] != rows:
        raise ValueError(
            f"features have {features.shape[0]} rows but the kernel map was built for {rows} coordinates"
        )
    if features.device != device:
        raise ValueError(
            f"features are on {features.device} but the kernel map is on {device}; move both to one device"
        )


def check_weight(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    in_channels: int,
    kernel_size: int,
    features: torch.Tensor,
) -> None:
    """Check a canonical (C_out, C_in, k, k, k) weight and an optional (C_out,) bias."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    expected = f"(C_out, {in_channels}, {kernel_size}, {kernel_size}, {kernel_size})"
    if weight.dim() != 5 or weight.shape[1] != in_channels or tuple(weight.shape[2:]) != (kernel_size,) * 3:
        raise ValueError(
            f"weight must have the torch.nn.Conv3d layout {expected} for this kernel map and "
            f"{in_channels} input channels, got {tuple(weight.shape)}"
        )
    if weight.dtype != features.dtype:
        raise TypeError(f"weight dtype {weight.dtype} differs from features dtype {features.dtype}")
    if weight.device != features.device:
        raise ValueError(f"weight is on {weight.device} but features are on {features.device}")
    if bias is None:
        return
    if not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
    if tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    if bias.dtype != features.dtype or bias.device != features.device:
        raise TypeError(
            f"bias must match features in dtype and device ({features.dtype}, {features.device}), "
            f"got ({bias.dtype}, {bias.device})"
        )
